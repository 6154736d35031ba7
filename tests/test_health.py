"""Health endpoints: live without I/O, ready naming the failing part (database, migrations,
broadcast), the combined /api/health with its old keys. Against real processes whose
database sits behind a TCP proxy the test cuts, and a private Redis it stops."""

from __future__ import annotations

import asyncio
import shutil
import time

import httpx
import pytest
from asgi_lifespan import LifespanManager

from server.app import create_app
from server.settings import replace
from tests.conftest import SECRET
from tests.processes import aserving, free_port, subprocess_env
from tests.tcpproxy import TcpProxy

TIMEOUT = 25  # far beyond any health budget: an answer must come well before


async def get(client: httpx.AsyncClient, port: int, path: str) -> httpx.Response:
    return await client.get(f"http://127.0.0.1:{port}{path}", timeout=TIMEOUT)


async def until_status(client, port: int, path: str, status: int, within: float = 20) -> httpx.Response:
    deadline = time.monotonic() + within
    while True:
        r = await get(client, port, path)
        if r.status_code == status or time.monotonic() > deadline:
            return r
        await asyncio.sleep(0.2)


async def test_live_ready_and_combined_on_a_healthy_server(client):
    live = await client.get("/api/health/live")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    ready = await client.get("/api/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "migrations": "ok", "broadcast": "ok"}}
    combined = await client.get("/api/health")
    assert combined.json()["status"] == "ok" and combined.json()["database"] == "ok"
    assert combined.json()["checks"] == ready.json()["checks"]


async def test_ready_reports_a_migration_this_code_expects_but_the_database_lacks(settings, tmp_path):
    migrations = tmp_path / "migrations"
    shutil.copytree(settings.migrations_dir, migrations)
    (migrations / "models" / "9_20991231000000_future.py").write_text(
        "async def upgrade(db):\n    return ''\n\n\nasync def downgrade(db):\n    return ''\n"
    )
    app = create_app(replace(settings, migrations_dir=migrations))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            ready = await c.get("/api/health/ready")
            assert ready.status_code == 503
            assert ready.json() == {"status": "unavailable",
                                    "checks": {"database": "ok", "migrations": "pending", "broadcast": "ok"}}
            assert (await c.get("/api/health/live")).status_code == 200


@pytest.mark.postgres_only
async def test_ready_follows_the_database_through_a_cut_and_a_partition(tmp_path, settings):
    proxy = TcpProxy("127.0.0.1", 5432).start()
    try:
        url = settings.database_url.replace("127.0.0.1:5432", proxy.url_host_port, 1)
        env = subprocess_env(tmp_path / "srv", PCG_DATABASE_URL=url, PCG_SECRET_KEY=SECRET,
                             PCG_DB_CONNECT_TIMEOUT="1", PCG_DB_STATEMENT_TIMEOUT="1")
        port = free_port()
        async with aserving(env, port, tmp_path / "s.log"):
            async with httpx.AsyncClient() as client:
                assert (await get(client, port, "/api/health/ready")).status_code == 200

                proxy.cut()
                ready = await get(client, port, "/api/health/ready")
                assert ready.status_code == 503
                assert ready.json()["status"] == "unavailable"
                assert ready.json()["checks"]["database"] == "down"
                assert ready.json()["checks"]["broadcast"] == "ok"
                assert int(ready.headers["retry-after"]) >= 1
                # Liveness does no I/O: a database outage does not get the process restarted.
                assert (await get(client, port, "/api/health/live")).status_code == 200
                combined = await get(client, port, "/api/health")
                assert (combined.status_code, combined.json()["database"]) == (503, "unavailable")

                proxy.heal()
                assert (await until_status(client, port, "/api/health/ready", 200)).status_code == 200

                proxy.partition()
                ready = await get(client, port, "/api/health/ready")
                assert ready.status_code == 503
                assert ready.json()["checks"]["database"] == "timeout"

                proxy.heal()
                healed = await until_status(client, port, "/api/health/ready", 200)
                assert healed.json() == {"status": "ok", "checks": {"database": "ok", "migrations": "ok", "broadcast": "ok"}}
    finally:
        proxy.stop()


async def test_ready_follows_the_broadcast_redis(tmp_path, settings, redis_server):
    env = subprocess_env(tmp_path / "srv", PCG_DATABASE_URL=settings.database_url,
                         PCG_SECRET_KEY=SECRET, PCG_BROADCAST_URL=redis_server.url)
    port = free_port()
    async with aserving(env, port, tmp_path / "s.log"):
        async with httpx.AsyncClient() as client:
            assert (await get(client, port, "/api/health/ready")).status_code == 200

            redis_server.stop()
            ready = await until_status(client, port, "/api/health/ready", 503)
            assert ready.status_code == 503
            assert ready.json() == {"status": "unavailable",
                                    "checks": {"database": "ok", "migrations": "ok", "broadcast": "down"}}
            assert (await get(client, port, "/api/health/live")).status_code == 200

            redis_server.start()  # same port: the backend reconnects by itself
            assert (await until_status(client, port, "/api/health/ready", 200)).status_code == 200
