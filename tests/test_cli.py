"""The `pcg` command line: real subprocesses where startup behaviour is the point (serve),
in-process `main()` where only the command's effect matters (faster, same code)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from server.cli import main, schema_sdl
from server.settings import PROJECT_ROOT, Settings, documented
from tests.processes import PCG, TIMEOUT, free_port, serving, subprocess_env

COUNTS = """
query {
  viewer { user { email } }
  organization(slug: "demo") {
    name plan
    members { totalCount }
    projects {
      totalCount
      nodes {
        name taskCount memberCount
        labels { name }
        customFields { key }
        board { columns { status tasks { totalCount } } }
      }
    }
  }
}"""


@pytest.fixture
def cli_env(monkeypatch, tmp_path) -> Path:
    """In-process runs of main() against a fresh data dir and default settings."""
    for name in list(os.environ):
        if name.startswith("PCG_"):
            monkeypatch.delenv(name)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("PCG_DATA_DIR", str(data_dir))
    return data_dir


def bearer(output: str) -> str:
    match = re.search(r'\{"Authorization": "Bearer ([A-Za-z0-9._-]+)"\}', output)
    assert match, f"no header JSON with a token in the output:\n{output}"
    return match.group(1)


def post(port: int, token: str, query: str) -> dict:
    response = httpx.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": query},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body.get("errors"), body["errors"]
    return body["data"]


def summary(data: dict) -> dict:
    org = data["organization"]
    return {
        "org": (org["name"], org["plan"], org["members"]["totalCount"]),
        "projects": {
            p["name"]: (
                p["taskCount"],
                p["memberCount"],
                sorted(label["name"] for label in p["labels"]),
                sorted(f["key"] for f in p["customFields"]),
                [(c["status"], c["tasks"]["totalCount"]) for c in p["board"]["columns"]],
            )
            for p in org["projects"]["nodes"]
        },
    }


def test_serve_demo_seeds_once_and_the_printed_token_works(tmp_path):
    port = free_port()
    env = subprocess_env(tmp_path / "data")

    with serving(env, port, tmp_path / "first.log", "--demo") as output:
        assert "Applied migration 0_" in output
        assert 'Demo organization "Demo Org" (slug: demo) created.' in output
        assert "demo-password" in output
        assert f"http://127.0.0.1:{port}/graphql" in output
        first_token = bearer(output)
        data = post(port, first_token, COUNTS)
        # The first query it tells a newcomer to run runs (within the default limits).
        printed = output[output.index("query Demo {"):]
        printed = printed[:printed.index("\n}") + 2]
        demo = post(port, first_token, printed)
        assert {p["name"] for p in demo["organization"]["projects"]["nodes"]} >= {"Website relaunch"}

    assert data["viewer"]["user"]["email"] == "ada@demo.pcg"
    first = summary(data)
    assert first["org"] == ("Demo Org", "PRO", 4)
    website, mobile = first["projects"]["Website relaunch"], first["projects"]["Mobile app"]
    assert website[0] >= 30 and mobile[0] >= 10
    assert website[2] == ["bug", "design", "feature", "infra"]
    assert website[3] == ["area", "estimate"]
    for task_count, _, _, _, columns in (website, mobile):
        # Every column has tasks, and the board shows every open task exactly once.
        assert all(n > 0 for _, n in columns), columns
        assert sum(n for _, n in columns) == task_count

    with serving(env, port, tmp_path / "second.log", "--demo") as output:
        assert "Database is up to date" in output
        assert "already existed; nothing was changed" in output
        second_token = bearer(output)
        assert second_token != first_token
        # The secret key persisted in the data dir, so the first token is still valid.
        again = post(port, first_token, COUNTS)
        assert summary(post(port, second_token, COUNTS)) == summary(again)

    assert summary(again) == first


def test_production_without_secret_key_refuses_in_one_line(tmp_path):
    data_dir = tmp_path / "data"
    result = subprocess.run(
        [*PCG, "serve", "--port", str(free_port())],
        env=subprocess_env(data_dir, PCG_ENV="production"),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "pcg: error: PCG_ENV=production requires an explicit PCG_SECRET_KEY"
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert not data_dir.exists(), "nothing may be created before the configuration is valid"


def test_several_workers_with_memory_broadcast_refuse(tmp_path):
    data_dir = tmp_path / "data"
    result = subprocess.run(
        [*PCG, "serve", "--workers", "2", "--port", str(free_port())],
        env=subprocess_env(data_dir),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode != 0
    assert "--workers 2 needs a shared broadcast" in result.stderr
    assert "memory://" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (data_dir / "pcg.db").exists()


def test_migrate_applies_the_initial_migration_then_reports_up_to_date(cli_env, capsys):
    assert main(["migrate"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^Applied migration 0_\d+_init\.py$", out, re.M), out
    assert (cli_env / "pcg.db").exists()

    assert main(["migrate"]) == 0
    out = capsys.readouterr().out
    assert "Database is up to date" in out
    assert "Applied" not in out


def test_export_schema_to_stdout_and_to_a_file(cli_env, tmp_path, capsys):
    assert main(["export-schema", "-"]) == 0
    out = capsys.readouterr().out
    assert "type Query {" in out
    assert out == schema_sdl()

    target = tmp_path / "out.graphql"
    assert main(["export-schema", "--output", str(target)]) == 0
    assert target.read_text() == schema_sdl()


def test_create_api_key_prints_a_working_key_and_audits_it(cli_env, capsys):
    assert main(["seed", "--demo"]) == 0
    assert "created." in capsys.readouterr().out

    assert main(["create-api-key", "--org", "demo", "--name", "CI bot"]) == 0
    out = capsys.readouterr().out
    keys = re.findall(r"^(pcg_\S+)$", out, re.M)
    assert len(keys) == 1, out
    key = keys[0]
    assert "acting as ada@demo.pcg" in out

    # The mutation's rules hold: members may not create keys, and a key may not exceed its
    # creator's role. Refusals write nothing (checked below: one key, one audit entry).
    assert main(["create-api-key", "--org", "demo", "--name", "x", "--user", "linus@demo.pcg"]) == 1
    assert "as linus@demo.pcg: Your organization role (member) does not allow this" in (
        capsys.readouterr().err
    )
    assert main(["create-api-key", "--org", "demo", "--name", "x", "--role", "owner",
                 "--user", "grace@demo.pcg"]) == 1
    assert "cannot exceed your own (admin)" in capsys.readouterr().err
    assert main(["create-api-key", "--org", "nope", "--name", "x"]) == 1
    assert "no organization with slug 'nope'" in capsys.readouterr().err

    asyncio.run(_check_key(key))


async def _check_key(key: str) -> None:
    from models import ApiKey, AuditEntry, User
    from server.app import create_app

    app = create_app(Settings.from_env())
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.post(
                "/graphql",
                json={"query": "{ viewer { user { email } organizations { organization { slug viewerRole } } } }"},
                headers={"Authorization": f"Bearer {key}"},
            )
        body = response.json()
        assert not body.get("errors"), body
        viewer = body["data"]["viewer"]
        assert viewer["user"]["email"] == "ada@demo.pcg"
        # Ada owns the org, but the key was created with the default admin role.
        assert viewer["organizations"] == [{"organization": {"slug": "demo", "viewerRole": "ADMIN"}}]

        rows = await ApiKey.all().values("id", "name", "prefix", "key_hash", "role", "created_by_id")
        ada = await User.get(email="ada@demo.pcg")
        assert len(rows) == 1
        row = rows[0]
        assert (row["name"], row["prefix"], row["role"], row["created_by_id"]) == (
            "CI bot", key[:12], "admin", ada.id,
        )
        assert row["key_hash"] != key and key not in row["key_hash"]
        audit = await AuditEntry.filter(action="api_key.create").values(
            "actor_id", "resource_type", "resource_id", "after"
        )
        assert len(audit) == 1
        assert audit[0]["actor_id"] == ada.id
        assert (audit[0]["resource_type"], audit[0]["resource_id"]) == ("ApiKey", str(row["id"]))
        assert audit[0]["after"]["prefix"] == key[:12]
        assert key not in str(audit[0]["after"])


def test_every_documented_setting_is_in_serve_help(capsys):
    # The README's table is checked whole by tests/test_settings.py.
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--help"])
    assert exit_.value.code == 0
    help_text = capsys.readouterr().out
    for name, _default, _ in documented():
        assert re.search(rf"^  {name}\s+default: ", help_text, re.M), name


@pytest.mark.parametrize("argv", [["serve", "--demo"], ["seed", "--demo"]])
def test_the_demo_is_refused_in_production(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.setenv("PCG_ENV", "production")
    monkeypatch.setenv("PCG_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("PCG_DATA_DIR", str(tmp_path / "data"))
    assert main(argv) == 1
    assert "--demo is refused with PCG_ENV=production" in capsys.readouterr().err
    assert not (tmp_path / "data" / "pcg.db").exists()  # refused before migrating anything
