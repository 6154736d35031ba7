"""The mainstream clients on their defaults (npm packages pinned by tests/clients'
lock file) against a real `pcg serve`: urql's GET queries, Apollo Client's automatic
persisted queries and its multipart subscriptions, and the graphql-sse client."""

from __future__ import annotations

import json
import re
import subprocess

from server.settings import PROJECT_ROOT
from tests.processes import free_port, serving, subprocess_env
from tests.schema_tools import npm_ci

CLIENTS = PROJECT_ROOT / "tests" / "clients"
EXPECTED = {
    "urql on its defaults (queries as GET)",
    "Apollo Client PersistedQueryLink (automatic persisted queries)",
    "graphql-sse client (distinct connections mode)",
    "Apollo Client HttpLink subscription (multipart/mixed)",
}


def test_every_client_works_on_its_defaults(tmp_path):
    npm_ci(CLIENTS)
    port = free_port()
    with serving(subprocess_env(tmp_path / "data"), port, tmp_path / "serve.log", "--demo") as output:
        token = re.search(r'"Bearer ([A-Za-z0-9._-]+)"', output).group(1)
        project = re.search(r"\b(UHJvamVjdDo[A-Za-z0-9_-]*)\b", output)
        project_id = project.group(1) if project else "UHJvamVjdDox"
        done = subprocess.run(["node", "matrix.mjs", f"http://127.0.0.1:{port}/graphql", token, project_id],
                              cwd=CLIENTS, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results = {r["case"]: r for r in map(json.loads, filter(None, done.stdout.splitlines()))}
    assert set(results) == EXPECTED, done.stdout
    failing = [r for r in results.values() if not r["ok"]]
    assert not failing, json.dumps(failing, indent=2)
