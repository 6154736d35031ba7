"""The production profile's parts a test can run: the client IP behind a trusted proxy, and an
online SQLite backup that restores into a working server."""

from __future__ import annotations

import subprocess
import threading

import httpx
import pytest

from models import AuditEntry
from tests.processes import PCG, free_port, serving, subprocess_env

SIGN_UP = """mutation($i: SignUpInput!) { signUp(input: $i) { ok } }"""


async def _sign_up_ip(gql, email: str, headers: dict) -> str:
    response = await gql.http.post(
        "/graphql",
        json={"query": SIGN_UP, "variables": {"i": {"email": email, "name": "N", "password": "p" * 12}}},
        headers=headers,
    )
    assert not response.json().get("errors"), response.json()
    entry = await AuditEntry.filter(action="user.sign_up").order_by("-id").first()
    return entry.ip


async def test_forwarded_for_is_ignored_without_a_trusted_proxy(gql):
    # The test client connects from 203.0.113.7 (tests/conftest.py).
    ip = await _sign_up_ip(gql, "a@example.test", {"x-forwarded-for": "198.51.100.9"})
    assert ip == "203.0.113.7"


@pytest.mark.settings(trusted_proxies=("203.0.113.0/24",))
async def test_a_trusted_proxy_gives_the_client_ip_to_audit_and_rate_limits(gql):
    ip = await _sign_up_ip(gql, "b@example.test", {"x-forwarded-for": "198.51.100.9, 203.0.113.7"})
    assert ip == "198.51.100.9"


def _sign_up(port: int, email: str) -> None:
    response = httpx.post(
        f"http://127.0.0.1:{port}/graphql", timeout=10,
        json={"query": SIGN_UP, "variables": {"i": {"email": email, "name": "N", "password": "p" * 12}}},
    )
    assert not response.json().get("errors"), response.text


def test_online_backup_restores_into_a_working_server(tmp_path):
    port = free_port()
    env = subprocess_env(tmp_path / "data", PCG_RATE_LIMIT_SIGNUP_IP="0")
    backup = tmp_path / "backups" / "pcg.db"
    with serving(env, port, tmp_path / "serve.log"):
        for i in range(20):
            _sign_up(port, f"before{i}@example.test")
        # Writes go on while the copy is taken: the copy is a committed state, whole.
        stop = threading.Event()

        def keep_writing() -> None:
            i = 0
            while not stop.is_set() and i < 200:
                _sign_up(port, f"during{i}@example.test")
                i += 1

        writer = threading.Thread(target=keep_writing)
        writer.start()
        try:
            done = subprocess.run([*PCG, "backup", str(backup)], env=env, capture_output=True,
                                  text=True, timeout=60)
        finally:
            stop.set()
            writer.join(30)
        assert done.returncode == 0, done.stderr
        assert "Backed up" in done.stdout
        again = subprocess.run([*PCG, "backup", str(backup)], env=env, capture_output=True,
                               text=True, timeout=60)
        assert again.returncode == 1 and "never overwrites" in again.stderr
    assert not list(backup.parent.glob("*-wal")) and not list(backup.parent.glob("*.partial"))

    restored_port = free_port()
    restored = subprocess_env(tmp_path / "restored", PCG_DATABASE_URL=f"sqlite://{backup}",
                              PCG_SECRET_KEY="k" * 40)
    with serving(restored, restored_port, tmp_path / "restored.log"):
        for i in range(20):
            response = httpx.post(
                f"http://127.0.0.1:{restored_port}/graphql", timeout=10,
                json={"query": "mutation($i: LogInInput!) { logIn(input: $i) { user { id } } }",
                      "variables": {"i": {"email": f"before{i}@example.test", "password": "p" * 12}}},
            )
            assert response.json()["data"]["logIn"]["user"]["id"], response.text
        _sign_up(restored_port, "after@example.test")  # and it takes writes


def test_backup_of_postgres_points_to_pg_dump(tmp_path):
    env = subprocess_env(tmp_path / "data", PCG_DATABASE_URL="postgres://postgres@127.0.0.1:5432/x")
    done = subprocess.run([*PCG, "backup", str(tmp_path / "x.db")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and "pg_dump" in done.stderr
