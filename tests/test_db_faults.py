"""Database faults against a real `pcg serve` whose PostgreSQL is reached through a TCP proxy
the test controls: the database going away, a network partition, and every pooled backend
terminated. Each answer is JSON with `extensions.code`; a dependency failure is HTTP 503 with
Retry-After on a connection that stays usable; nothing is applied twice."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from models import Task
from tests.conftest import PG_ADMIN_URL, SECRET, gid
from tests.processes import aserving, free_port, subprocess_env
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.postgres_only

VIEWER = "{ viewer { user { id name } } }"
PROJECT = "query($id: ID!) { project(id: $id) { id name } }"
CREATE = "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id title } } }"
# A generous bound: every answer below must come long before a hung request would.
CLIENT_TIMEOUT = 25


@pytest.fixture
async def world(factory):
    owner = await factory.user("Dora")
    org = await factory.org(owner)
    project = await factory.project(org, owner, "Faults")
    return owner, gid("Project", project.id)


@pytest.fixture
def proxy():
    proxy = TcpProxy("127.0.0.1", 5432).start()
    yield proxy
    proxy.stop()


def proxied_url(settings, proxy: TcpProxy) -> str:
    return settings.database_url.replace("127.0.0.1:5432", proxy.url_host_port, 1)


def server_env(tmp_path, url: str, **extra: str) -> dict:
    return subprocess_env(tmp_path / "srv", PCG_DATABASE_URL=url, PCG_SECRET_KEY=SECRET, **extra)


async def post(client: httpx.AsyncClient, port: int, query: str, variables=None, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": query, "variables": variables or {}},
        headers=headers, timeout=CLIENT_TIMEOUT,
    )


def local_port(response: httpx.Response) -> int:
    """The client-side port of the connection that carried the response."""
    return response.extensions["network_stream"].get_extra_info("client_addr")[1]


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert int(response.headers["retry-after"]) >= 1
    errors = response.json()["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["SERVICE_UNAVAILABLE"], errors
    assert errors[0]["extensions"]["requestId"] == response.headers["x-request-id"]


async def test_database_gone_answers_json_503_and_keeps_the_connection(tmp_path, settings, world, proxy):
    owner, project_id = world
    port = free_port()
    env = server_env(tmp_path, proxied_url(settings, proxy), PCG_DB_CONNECT_TIMEOUT="2")
    async with aserving(env, port, tmp_path / "s.log"):
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=1)) as client:
            first = await post(client, port, VIEWER, token=owner.token)
            assert first.json()["data"]["viewer"]["user"]["name"] == "Dora"

            proxy.cut()
            # The credential lookup (an extension) and a resolver's read both fail on the database.
            for query, variables, token in ((VIEWER, None, owner.token), (PROJECT, {"id": project_id}, owner.token)):
                assert_unavailable(await post(client, port, query, variables, token))
            health = await client.get(f"http://127.0.0.1:{port}/api/health", timeout=CLIENT_TIMEOUT)
            assert health.status_code == 503
            assert health.json()["checks"]["database"] == "down"

            proxy.heal()
            after = await post(client, port, PROJECT, {"id": project_id}, owner.token)
            assert after.status_code == 200
            assert after.json()["data"]["project"]["name"] == "Faults"
            # Every answer above went over the one keep-alive connection.
            assert local_port(after) == local_port(first)


async def test_partition_answers_503_within_the_statement_budget(tmp_path, settings, world, proxy):
    owner, project_id = world
    port = free_port()
    env = server_env(tmp_path, proxied_url(settings, proxy),
                     PCG_DB_STATEMENT_TIMEOUT="1", PCG_DB_CONNECT_TIMEOUT="1")
    async with aserving(env, port, tmp_path / "s.log"):
        async with httpx.AsyncClient() as client:
            assert (await post(client, port, VIEWER, token=owner.token)).status_code == 200

            proxy.partition()
            # Answered (not hung until the client gives up) and answered as unavailable.
            assert_unavailable(await post(client, port, PROJECT, {"id": project_id}, owner.token))
            health = await client.get(f"http://127.0.0.1:{port}/api/health", timeout=CLIENT_TIMEOUT)
            assert health.status_code == 503
            assert health.json()["checks"]["database"] in ("timeout", "down")

            proxy.heal()
            for _ in range(3):
                r = await post(client, port, PROJECT, {"id": project_id}, owner.token)
                assert r.status_code == 200 and r.json()["data"]["project"]["name"] == "Faults", r.text


async def terminate_backends(database: str) -> int:
    conn = await asyncpg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://", 1))
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()", database,
        )
        return len(rows)
    finally:
        await conn.close()


async def backends_of(database: str) -> int:
    conn = await asyncpg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://", 1))
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", database,
        )
    finally:
        await conn.close()


POOL_MAX = 4


async def test_terminated_backends_never_reach_the_client(tmp_path, settings, world):
    owner, project_id = world
    database = settings.database_url.rsplit("/", 1)[1]
    port = free_port()
    env = server_env(tmp_path, settings.database_url, PCG_DB_POOL_MIN=str(POOL_MAX), PCG_DB_POOL_MAX=str(POOL_MAX))
    async with aserving(env, port, tmp_path / "s.log"):
        async with httpx.AsyncClient() as client:
            # Fill the pool: concurrent reads hold every connection at once.
            warm = await asyncio.gather(*(post(client, port, PROJECT, {"id": project_id}, owner.token) for _ in range(8)))
            assert all(r.status_code == 200 for r in warm)
            assert await terminate_backends(database) >= POOL_MAX

            reads = [await post(client, port, PROJECT, {"id": project_id}, owner.token) for _ in range(2 * POOL_MAX)]
            bodies = [r.json() for r in reads]
            assert [b.get("errors") for b in bodies] == [None] * len(bodies), bodies
            assert all(b["data"]["project"]["name"] == "Faults" for b in bodies)

            # Concurrent readers on a freshly killed pool as well.
            await asyncio.gather(*(post(client, port, PROJECT, {"id": project_id}, owner.token) for _ in range(8)))
            assert await terminate_backends(database) >= 1
            concurrent = await asyncio.gather(*(post(client, port, PROJECT, {"id": project_id}, owner.token) for _ in range(2 * POOL_MAX)))
            assert [r.json().get("errors") for r in concurrent] == [None] * len(concurrent)

            # A write on a dead pool: done once, or refused as unavailable; never internal.
            await asyncio.gather(*(post(client, port, PROJECT, {"id": project_id}, owner.token) for _ in range(8)))
            assert await terminate_backends(database) >= 1
            title = f"after-terminate-{uuid.uuid4().hex[:8]}"
            write = await post(client, port, CREATE, {"i": {"projectId": project_id, "title": title}}, owner.token)
            if write.status_code == 503:
                assert_unavailable(write)
                expected = 0
            else:
                assert write.json().get("errors") is None, write.text
                expected = 1
    assert await Task.filter(title=title).count() == expected


async def test_statement_timeout_and_pool_sizes_reach_the_pool(settings):
    """The settings arrive typed (not as URL strings) on every pooled connection, and a
    statement over its budget is cut by the server and reported as unavailable."""
    from dataclasses import replace

    from tortoise import Tortoise
    from tortoise.context import TortoiseContext

    from resolvers.errors import ServiceUnavailable, unavailable_from
    from server.db import tortoise_config

    tuned = replace(settings, db_statement_timeout=1, db_pool_min=2, db_pool_max=3)
    with TortoiseContext():
        await Tortoise.init(config=tortoise_config(tuned.database_url, tuned))
        try:
            conn = Tortoise.get_connection("default")
            rows = await conn.execute_query_dict("SHOW statement_timeout")
            assert rows == [{"statement_timeout": "1s"}]
            assert (conn._pool.get_min_size(), conn._pool.get_max_size()) == (2, 3)
            with pytest.raises(Exception) as caught:
                await conn.execute_query("SELECT pg_sleep(5)")
            assert isinstance(unavailable_from(caught.value), ServiceUnavailable)
        finally:
            await Tortoise.close_connections()
