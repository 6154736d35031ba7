"""The live audit log across instances: two real `pcg serve` processes sharing PostgreSQL and a
broker. An entry written on instance A reaches an admin subscribed on instance B, and a broker
restart loses nothing (what it dropped is refilled from the audit table by seq)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from models import OrgRole
from tests.conftest import SECRET, gid
from tests.processes import aserving, free_port, subprocess_env
from tests.wsclient import GraphQLWS

pytestmark = pytest.mark.postgres_only

AUDIT = """subscription($o: ID!, $after: String) { auditEntries(organizationId: $o, after: $after) {
  __typename seq cursor ... on AuditEntryAdded { entry { action userAgent after } } } }"""
CREATE = "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }"


@pytest.fixture
async def world(factory):
    owner = await factory.user("Olga")
    admin = await factory.user("Ada")
    org = await factory.org(owner)
    await factory.org_member(org, admin, OrgRole.ADMIN)
    project = await factory.project(org, owner, "Shared")
    return owner, admin, gid("Organization", org.id), gid("Project", project.id)


async def create_on(port: int, token: str, project_id: str, title: str) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": CREATE, "variables": {"i": {"projectId": project_id, "title": title}}},
            headers={"Authorization": f"Bearer {token}", "User-Agent": "instance-test/1"},
        )
    assert not r.json().get("errors"), r.text


def _env(tmp_path, name: str, settings, broadcast_url: str) -> dict:
    return subprocess_env(
        tmp_path / name,
        PCG_DATABASE_URL=settings.database_url,
        PCG_BROADCAST_URL=broadcast_url,
        PCG_SECRET_KEY=SECRET,
    )


async def _titles(ws: GraphQLWS, n: int, timeout: float = 5.0) -> list[tuple[int, str]]:
    out = []
    for _ in range(n):
        payload = await ws.next_data(timeout)
        assert not payload.get("errors"), payload
        event = payload["data"]["auditEntries"]
        out.append((event["seq"], event["entry"]["after"]["title"]))
    return out


@pytest.mark.parametrize("broker", ["redis", "postgres"])
async def test_an_entry_written_on_a_reaches_a_subscriber_on_b(tmp_path, settings, world, broker, request):
    owner, admin, org_id, project_id = world
    broadcast_url = request.getfixturevalue("redis_server").url if broker == "redis" else settings.database_url
    port_a, port_b = free_port(), free_port()
    async with aserving(_env(tmp_path, "a", settings, broadcast_url), port_a, tmp_path / "a.log"), \
            aserving(_env(tmp_path, "b", settings, broadcast_url), port_b, tmp_path / "b.log"):
        ws = await GraphQLWS.connect(f"ws://127.0.0.1:{port_b}/graphql", token=admin.token)
        try:
            await ws.subscribe(AUDIT, {"o": org_id})
            await asyncio.sleep(0.3)
            for i in range(3):
                await create_on(port_a, owner.token, project_id, f"from A {i}")
            assert await _titles(ws, 3) == [(1, "from A 0"), (2, "from A 1"), (3, "from A 2")]
        finally:
            await ws.close()


async def test_redis_restart_mid_stream_loses_no_entry(tmp_path, settings, world, redis_server):
    owner, admin, org_id, project_id = world
    port_a, port_b = free_port(), free_port()
    env_a = _env(tmp_path, "a", settings, redis_server.url)
    env_b = _env(tmp_path, "b", settings, redis_server.url)
    async with aserving(env_a, port_a, tmp_path / "a.log"), aserving(env_b, port_b, tmp_path / "b.log"):
        ws = await GraphQLWS.connect(f"ws://127.0.0.1:{port_b}/graphql", token=admin.token)
        try:
            await ws.subscribe(AUDIT, {"o": org_id})
            await asyncio.sleep(0.3)
            await create_on(port_a, owner.token, project_id, "before")
            assert await _titles(ws, 1) == [(1, "before")]

            await asyncio.to_thread(redis_server.stop)
            for i in range(3):  # committed while the broker is down: their publishes are lost
                await create_on(port_a, owner.token, project_id, f"during {i}")
            await asyncio.to_thread(redis_server.start)

            # B reconnects, resubscribes, and refills from the audit table.
            assert await _titles(ws, 3, timeout=15) == [(2, "during 0"), (3, "during 1"), (4, "during 2")]
            await asyncio.sleep(0.5)  # A's publisher reconnects on its next publish
            await create_on(port_a, owner.token, project_id, "after")
            assert await _titles(ws, 1, timeout=15) == [(5, "after")]
        finally:
            await ws.close()


async def test_resuming_on_the_other_instance_replays_from_the_cursor(tmp_path, settings, world, redis_server):
    owner, admin, org_id, project_id = world
    port_a, port_b = free_port(), free_port()
    async with aserving(_env(tmp_path, "a", settings, redis_server.url), port_a, tmp_path / "a.log"), \
            aserving(_env(tmp_path, "b", settings, redis_server.url), port_b, tmp_path / "b.log"):
        ws = await GraphQLWS.connect(f"ws://127.0.0.1:{port_a}/graphql", token=admin.token)
        await ws.subscribe(AUDIT, {"o": org_id})
        await asyncio.sleep(0.3)
        await create_on(port_a, owner.token, project_id, "seen on A")
        first = (await ws.next_data())["data"]["auditEntries"]
        await ws.close()
        for i in range(4):
            await create_on(port_b, owner.token, project_id, f"missed {i}")
        ws = await GraphQLWS.connect(f"ws://127.0.0.1:{port_b}/graphql", token=admin.token)
        try:
            await ws.subscribe(AUDIT, {"o": org_id, "after": first["cursor"]})
            assert await _titles(ws, 4) == [(2 + i, f"missed {i}") for i in range(4)]
        finally:
            await ws.close()
