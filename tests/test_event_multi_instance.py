"""Several stateless instances: two real `pcg serve` processes sharing PostgreSQL and a
broker. A write on instance A reaches a subscriber on instance B, and survives a broker
restart (what the broker lost is refilled from the event log)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import SECRET, gid
from tests.processes import aserving, free_port, subprocess_env
from tests.wsclient import GraphQLWS

pytestmark = pytest.mark.postgres_only

BOARD = """subscription($p: ID!) { boardEvents(projectId: $p) {
  __typename seq ... on TaskCreated { task { title } } } }"""
CREATE = "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }"


@pytest.fixture
async def world(factory):
    owner = await factory.user("Olga")
    org = await factory.org(owner)
    project = await factory.project(org, owner, "Shared")
    return owner, gid("Project", project.id)


async def create_on(port: int, token: str, project_id: str, title: str) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": CREATE, "variables": {"i": {"projectId": project_id, "title": title}}},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert not r.json().get("errors"), r.text


def _env(tmp_path, name: str, settings, broadcast_url: str) -> dict:
    return subprocess_env(
        tmp_path / name,
        PCG_DATABASE_URL=settings.database_url,
        PCG_BROADCAST_URL=broadcast_url,
        PCG_SECRET_KEY=SECRET,
    )


@pytest.mark.parametrize("broker", ["redis", "postgres"])
async def test_write_on_a_reaches_subscriber_on_b(tmp_path, settings, world, broker, request):
    owner, project_id = world
    broadcast_url = request.getfixturevalue("redis_server").url if broker == "redis" else settings.database_url
    port_a, port_b = free_port(), free_port()
    async with aserving(_env(tmp_path, "a", settings, broadcast_url), port_a, tmp_path / "a.log"), \
            aserving(_env(tmp_path, "b", settings, broadcast_url), port_b, tmp_path / "b.log"):
        ws = await GraphQLWS.connect(f"ws://127.0.0.1:{port_b}/graphql", token=owner.token)
        try:
            await ws.subscribe(BOARD, {"p": project_id})
            await asyncio.sleep(0.3)
            for i in range(3):
                await create_on(port_a, owner.token, project_id, f"from A {i}")
            events = [(await ws.next_data())["data"]["boardEvents"] for _ in range(3)]
            assert [(e["seq"], e["task"]["title"]) for e in events] == [
                (1, "from A 0"), (2, "from A 1"), (3, "from A 2")
            ]
        finally:
            await ws.close()


async def test_redis_restart_mid_stream_loses_nothing(tmp_path, settings, world, redis_server):
    owner, project_id = world
    port_a, port_b = free_port(), free_port()
    env_a = _env(tmp_path, "a", settings, redis_server.url)
    env_b = _env(tmp_path, "b", settings, redis_server.url)
    async with aserving(env_a, port_a, tmp_path / "a.log"), aserving(env_b, port_b, tmp_path / "b.log"):
        ws = await GraphQLWS.connect(f"ws://127.0.0.1:{port_b}/graphql", token=owner.token)
        try:
            await ws.subscribe(BOARD, {"p": project_id})
            await asyncio.sleep(0.3)
            await create_on(port_a, owner.token, project_id, "before")
            assert (await ws.next_data())["data"]["boardEvents"]["seq"] == 1

            await asyncio.to_thread(redis_server.stop)
            for i in range(3):  # committed while the broker is down: their publishes are lost
                await create_on(port_a, owner.token, project_id, f"during {i}")
            await asyncio.to_thread(redis_server.start)

            # B reconnects, resubscribes, and refills from the log.
            refilled = [(await ws.next_data(timeout=15))["data"]["boardEvents"] for _ in range(3)]
            assert [(e["seq"], e["task"]["title"]) for e in refilled] == [
                (2, "during 0"), (3, "during 1"), (4, "during 2")
            ]
            await asyncio.sleep(0.5)  # A's publisher reconnects on its next publish
            await create_on(port_a, owner.token, project_id, "after")
            after = (await ws.next_data(timeout=15))["data"]["boardEvents"]
            assert (after["seq"], after["task"]["title"]) == (5, "after")
        finally:
            await ws.close()
    log_b = (tmp_path / "b.log").read_text()
    assert "reconnected" in log_b


async def test_workers_share_events_through_redis(tmp_path, settings, world, redis_server):
    """`pcg serve --workers 2`: events cross worker processes through the broker."""
    owner, project_id = world
    port = free_port()
    env = _env(tmp_path, "w", settings, redis_server.url)
    async with aserving(env, port, tmp_path / "w.log", "--workers", "2"):
        sockets = [await GraphQLWS.connect(f"ws://127.0.0.1:{port}/graphql", token=owner.token) for _ in range(4)]
        try:
            for ws in sockets:
                await ws.subscribe(BOARD, {"p": project_id})
            await asyncio.sleep(0.3)
            for i in range(4):  # requests land on either worker
                await create_on(port, owner.token, project_id, f"w{i}")
            for ws in sockets:
                seqs = [(await ws.next_data())["data"]["boardEvents"]["seq"] for _ in range(4)]
                assert seqs == [1, 2, 3, 4]
        finally:
            for ws in sockets:
                await ws.close()
