"""The response cache across instances: two real `pcg serve` processes on one database and a
private Redis share answers; a write on either is seen through the other's cache at once; a
Redis outage only costs speed."""

from __future__ import annotations

import re

import httpx

from tests.api_catalog import arrange, gid
from tests.conftest import SECRET
from tests.processes import aserving, free_port, subprocess_env
from tests.test_response_cache import BOARD


def _env(tmp_path, name: str, settings, redis_url: str) -> dict:
    return subprocess_env(
        tmp_path / name, PCG_DATABASE_URL=settings.database_url, PCG_BROADCAST_URL=redis_url,
        PCG_SECRET_KEY=SECRET, PCG_RATE_LIMIT="0",
    )


async def _post(client: httpx.AsyncClient, port: int, query: str, variables: dict, token: str) -> dict:
    r = await client.post(f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables},
                          headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body.get("errors"), body
    return body["data"]


async def _count(client: httpx.AsyncClient, port: int, outcome: str) -> float:
    text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    found = re.search(rf'^pcg_response_cache_total{{outcome="{outcome}"}} ([0-9.e+]+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def _titles(data: dict) -> set[str]:
    return {e["node"]["title"] for c in data["project"]["board"]["columns"] for e in c["tasks"]["edges"]}


async def test_two_instances_share_answers_and_see_each_others_writes(tmp_path, settings, factory, redis_server):
    world = await arrange(factory)
    variables = {"p": gid("Project", world.project.id)}
    token = world.owner.token
    a, b = free_port(), free_port()
    async with aserving(_env(tmp_path, "a", settings, redis_server.url), a, tmp_path / "a.log"), \
            aserving(_env(tmp_path, "b", settings, redis_server.url), b, tmp_path / "b.log"), \
            httpx.AsyncClient(timeout=10) as client:
        first = await _post(client, a, BOARD, variables, token)
        assert await _count(client, a, "miss") == 1
        assert await _post(client, b, BOARD, variables, token) == first
        assert await _count(client, b, "hit") == 1  # B answered with what A stored

        await _post(client, b, "mutation($i: UpdateTaskInput!) { updateTask(input: $i) { task { id } } }",
                    {"i": {"id": gid("Task", world.task.id), "title": "Renamed on B"}}, token)
        assert "Renamed on B" in _titles(await _post(client, a, BOARD, variables, token))
        assert await _count(client, a, "miss") == 2

        redis_server.stop()
        try:
            for port in (a, b):
                assert "Renamed on B" in _titles(await _post(client, port, BOARD, variables, token))
                assert await _count(client, port, "error") >= 1
        finally:
            redis_server.start()
