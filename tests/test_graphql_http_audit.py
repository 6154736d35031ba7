"""graphql-http's own server audit suite (the GraphQL-over-HTTP spec's reference
implementation), run with node against a real `pcg serve`: every audit must pass, warnings
included."""

from __future__ import annotations

import json
import subprocess

from server.settings import PROJECT_ROOT
from tests.processes import free_port, serving, subprocess_env
from tests.schema_tools import npm_ci

AUDIT = PROJECT_ROOT / "tests" / "audit"


def test_every_graphql_over_http_audit_passes(tmp_path):
    npm_ci(AUDIT)
    port = free_port()
    # ~60 anonymous requests in a burst: above the default anonymous budget per IP.
    env = subprocess_env(tmp_path / "data", PCG_RATE_LIMIT_ANONYMOUS="10000")
    with serving(env, port, tmp_path / "serve.log"):
        done = subprocess.run(["node", "audit.mjs", f"http://127.0.0.1:{port}/graphql"], cwd=AUDIT,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert len(results) >= 50, done.stdout
    failing = [r for r in results if r["status"] != "ok"]
    assert failing == [], json.dumps(failing, indent=2)
