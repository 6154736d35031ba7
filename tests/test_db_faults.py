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

postgres_only = pytest.mark.postgres_only

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


@postgres_only
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


@postgres_only
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


@postgres_only
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


@postgres_only
async def test_statement_timeout_and_pool_sizes_reach_the_pool(settings):
    """The settings arrive typed (not as URL strings) on every pooled connection, and a
    statement over its budget is cut by the server and reported as unavailable."""
    from tortoise import Tortoise
    from tortoise.context import TortoiseContext

    from resolvers.errors import ServiceUnavailable, unavailable_from
    from server.db import tortoise_config
    from server.settings import replace

    tuned = replace(settings, db_statement_timeout=1, db_pool_min=2, db_pool_max=3, db_pool_timeout=1)
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

            # Every pooled connection busy beyond the pool wait: unavailable, not queued for ever.
            from tortoise.transactions import in_transaction

            holders = [in_transaction() for _ in range(3)]
            for h in holders:
                await h.__aenter__()
            try:
                with pytest.raises(Exception) as caught:
                    await conn.execute_query("SELECT 1")
                assert isinstance(unavailable_from(caught.value), ServiceUnavailable)
            finally:
                for h in reversed(holders):
                    await h.__aexit__(None, None, None)
            assert await conn.execute_query_dict("SELECT 1 AS one") == [{"one": 1}]
        finally:
            await Tortoise.close_connections()


@postgres_only
async def test_client_errors_and_bugs_are_never_unavailable(settings):
    """Errors of the statement itself (data, integrity, syntax) stay what they are; a refused
    connection is a dependency failure."""
    from tortoise import Tortoise
    from tortoise.context import TortoiseContext

    from resolvers.errors import ServiceUnavailable, unavailable_from
    from server.db import tortoise_config

    with TortoiseContext():
        await Tortoise.init(config=tortoise_config(settings.database_url, settings))
        try:
            conn = Tortoise.get_connection("default")
            for statement in ("SELECT 1/0", "SELECT 'x'::int", "SELECT 2147483648::int4",
                              "SELECT * FROM no_such_table", "INSERT INTO project (id) VALUES (NULL)"):
                with pytest.raises(Exception) as caught:
                    await conn.execute_query(statement)
                assert unavailable_from(caught.value) is None, (statement, caught.value)
        finally:
            await Tortoise.close_connections()
    assert unavailable_from(KeyError("bug")) is None
    assert unavailable_from(FileNotFoundError(2, "No such file")) is None
    with pytest.raises(OSError) as refused:
        await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    assert isinstance(unavailable_from(refused.value), ServiceUnavailable)


async def test_sqlite_locked_beyond_busy_timeout_answers_503(client, acme, factory, settings):
    """Another writer holds SQLite's write lock longer than busy_timeout (5 s)."""
    import sqlite3

    org, owner, _, _ = acme
    project = await factory.project(org, owner, "Locked")
    path = settings.database_url.removeprefix("sqlite://")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        r = await client.post("/graphql", headers={"Authorization": f"Bearer {owner.token}"}, json={
            "query": CREATE, "variables": {"i": {"projectId": gid("Project", project.id), "title": "blocked"}},
        })
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert_unavailable(r)
    assert await Task.filter(title="blocked").count() == 0


async def test_unhandled_errors_outside_graphql_are_json_on_a_kept_connection(app, live):
    """A route that fails outside GraphQL's error handling: JSON 503 for a dependency, JSON
    500 for a bug, both with the request id, and the connection survives both."""
    from starlette.routing import Route

    async def database_down(request):
        raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")

    async def bug(request):
        raise KeyError("bug")

    app.router.routes.extend([Route("/test/database-down", database_down), Route("/test/bug", bug)])
    async with httpx.AsyncClient(base_url=f"http://{live}", limits=httpx.Limits(max_connections=1)) as c:
        down = await c.get("/test/database-down")
        assert_unavailable(down)
        broken = await c.get("/test/bug")
        assert broken.status_code == 500 and broken.headers["content-type"].startswith("application/json")
        assert broken.json()["errors"][0]["extensions"] == {
            "code": "INTERNAL_SERVER_ERROR", "requestId": broken.headers["x-request-id"]}
        assert "KeyError" not in broken.text
        after = await c.get("/api/health/live")
        assert after.status_code == 200
        assert local_port(after) == local_port(down) == local_port(broken)


def test_tortoise_seams_the_adapter_relies_on():
    """server/db_resilience.py subclasses Tortoise internals; if one of these changes, this
    fails first and names it (upgrade tortoise-orm deliberately, re-reading the adapter)."""
    import inspect

    import tortoise
    from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
    from tortoise.backends.base.client import PoolConnectionWrapper, TransactionContextPooled
    from tortoise.connection import ConnectionHandler

    from server import db_resilience

    assert tortoise.__version__.startswith("1."), tortoise.__version__
    assert issubclass(db_resilience.client_class, AsyncpgDBClient)
    assert "client_class" in inspect.getsource(ConnectionHandler._discover_client_class)
    create = inspect.getsource(AsyncpgDBClient.create_connection)
    assert "self._pool = await self.create_pool(" in create
    assert "PoolConnectionWrapper(self, self._pool_init_lock)" in inspect.getsource(
        AsyncpgDBClient.acquire_connection)
    assert "TransactionContextPooled(TransactionWrapper(self), self._pool_init_lock)" in inspect.getsource(
        AsyncpgDBClient._in_transaction)
    assert "connection" in PoolConnectionWrapper.__slots__
    assert "self.client._connection = await self.client._parent._pool.acquire()" in inspect.getsource(
        TransactionContextPooled.__aenter__)
    assert "self.token = get_connections().set(" in inspect.getsource(TransactionContextPooled.__aenter__)
    assert "if not self.client._finalized:" in inspect.getsource(TransactionContextPooled.__aexit__)
    assert "self._connection.transaction()" in inspect.getsource(TransactionWrapper.begin)
    for name in ("execute_query", "execute_query_dict", "execute_insert", "execute_many"):
        assert "async with self.acquire_connection() as connection" in inspect.getsource(
            getattr(AsyncpgDBClient, name)), name
    # The asyncpg pool API the adapter wraps.
    assert {"timeout"} <= set(inspect.signature(asyncpg.Pool.acquire).parameters)
    assert hasattr(asyncpg.Pool, "expire_connections")
    # A checkout without a timeout when a connection is idle; asyncpg's reset replaced.
    assert hasattr(asyncpg.Pool, "get_idle_size")
    assert "reset" in inspect.signature(asyncpg.create_pool).parameters
    assert "connection is closed" in inspect.getsource(asyncpg.connection.Connection._check_open)


@postgres_only
async def test_a_transaction_on_a_terminated_pool_is_applied_exactly_once(settings):
    """Every pooled backend terminated, then a write transaction (as every mutation is): its
    BEGIN fails on the dead connection, it starts again on a fresh one, and lands once.
    (Tortoise's own client raises InternalClientError here.)"""
    from tortoise import Tortoise
    from tortoise.context import TortoiseContext
    from tortoise.transactions import in_transaction

    from server.db import tortoise_config
    from server.settings import replace

    database = settings.database_url.rsplit("/", 1)[1]
    tuned = replace(settings, db_pool_min=3, db_pool_max=3)
    with TortoiseContext():
        await Tortoise.init(config=tortoise_config(tuned.database_url, tuned))
        try:
            conn = Tortoise.get_connection("default")
            await conn.execute_script("CREATE TABLE fault_probe (n int)")
            # Touch every pooled connection so each has run a statement before it dies.
            await asyncio.gather(*(conn.execute_query("SELECT pg_sleep(0.05)") for _ in range(3)))
            assert await terminate_backends(database) >= 3
            async with in_transaction() as tx:
                await tx.execute_query("INSERT INTO fault_probe VALUES (1)")
            assert await conn.execute_query_dict("SELECT count(*) AS n FROM fault_probe") == [{"n": 1}]
        finally:
            await Tortoise.close_connections()
