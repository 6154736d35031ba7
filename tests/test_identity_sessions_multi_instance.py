"""Ending a session across instances: two real `pcg serve` processes sharing PostgreSQL and a
broker (a private Redis, or PostgreSQL's LISTEN/NOTIFY). The session is ended on A; its
websockets on both instances close within a second, its access token is refused on both,
an instance started afterwards refuses it from the database, and a revocation published
while the broker was down reaches B once B reconnects."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import PASSWORD, SECRET, gid
from tests.processes import aserving, free_port, subprocess_env
from tests.wsclient import Closed, GraphQLWS, closed_within

pytestmark = pytest.mark.postgres_only

BOARD = "subscription($p: ID!) { boardEvents(projectId: $p) { __typename seq } }"
LOG_IN = "mutation($i: LogInInput!) { logIn(input: $i) { accessToken session { id } } }"
REVOKE = "mutation($i: RevokeSessionInput!) { revokeSession(input: $i) { session { id } } }"
VIEWER = "{ viewer { user { id } } }"


@pytest.fixture
async def world(factory):
    owner = await factory.user("Olga")
    org = await factory.org(owner)
    project = await factory.project(org, owner, "Shared")
    return owner, gid("Project", project.id)


async def call(port: int, query: str, variables: dict | None = None, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient() as client:
        r = await client.post(f"http://127.0.0.1:{port}/graphql", headers=headers,
                              json={"query": query, "variables": variables or {}})
    return r.json()


def reason(body: dict) -> str | None:
    return body["errors"][0]["extensions"].get("reason") if body.get("errors") else None


def _env(tmp_path, name: str, settings, broadcast_url: str) -> dict:
    return subprocess_env(
        tmp_path / name,
        PCG_DATABASE_URL=settings.database_url,
        PCG_BROADCAST_URL=broadcast_url,
        PCG_SECRET_KEY=SECRET,
    )


@pytest.mark.parametrize("broker", ["redis", "postgres"])
async def test_a_session_ended_on_a_is_ended_on_b(tmp_path, settings, world, broker, request):
    owner, project_id = world
    url = request.getfixturevalue("redis_server").url if broker == "redis" else settings.database_url
    port_a, port_b, port_c = free_port(), free_port(), free_port()
    async with aserving(_env(tmp_path, "a", settings, url), port_a, tmp_path / "a.log"), \
            aserving(_env(tmp_path, "b", settings, url), port_b, tmp_path / "b.log"):
        login = (await call(port_b, LOG_IN, {"i": {"email": owner.user.email, "password": PASSWORD}}))
        token = login["data"]["logIn"]["accessToken"]
        on_a = await GraphQLWS.connect(f"ws://127.0.0.1:{port_a}/graphql", token=token)
        on_b = await GraphQLWS.connect(f"ws://127.0.0.1:{port_b}/graphql", token=token)
        try:
            for ws in (on_a, on_b):
                await ws.subscribe(BOARD, {"p": project_id})
            await asyncio.sleep(0.3)
            body = await call(port_a, REVOKE, {"i": {"sessionId": login["data"]["logIn"]["session"]["id"]}},
                              owner.token)
            assert not body.get("errors"), body
            # A applied it before answering.
            assert reason(await call(port_a, VIEWER, token=token)) == "SESSION_REVOKED"
            for ws in (on_a, on_b):
                closed = await closed_within(ws, 1.0)
                assert (closed.code, closed.reason) == (4403, "UNAUTHENTICATED: Session ended (SESSION_REVOKED)")
            assert reason(await call(port_b, VIEWER, token=token)) == "SESSION_REVOKED"
            # The session that ended it goes on, on both.
            for port in (port_a, port_b):
                assert not (await call(port, VIEWER, token=owner.token)).get("errors")
        finally:
            await on_a.close()
            await on_b.close()
        # An instance that starts later learns it from the database.
        async with aserving(_env(tmp_path, "c", settings, url), port_c, tmp_path / "c.log"):
            assert reason(await call(port_c, VIEWER, token=token)) == "SESSION_REVOKED"
            with pytest.raises(Closed) as refused:
                await GraphQLWS.connect(f"ws://127.0.0.1:{port_c}/graphql", token=token)
            assert refused.value.code == 4403


async def test_a_revocation_lost_by_a_down_broker_reaches_b_when_it_reconnects(
    tmp_path, settings, world, redis_server
):
    owner, project_id = world
    port_a, port_b = free_port(), free_port()
    async with aserving(_env(tmp_path, "a", settings, redis_server.url), port_a, tmp_path / "a.log"), \
            aserving(_env(tmp_path, "b", settings, redis_server.url), port_b, tmp_path / "b.log"):
        login = await call(port_a, LOG_IN, {"i": {"email": owner.user.email, "password": PASSWORD}})
        token = login["data"]["logIn"]["accessToken"]
        on_b = await GraphQLWS.connect(f"ws://127.0.0.1:{port_b}/graphql", token=token)
        try:
            await on_b.subscribe(BOARD, {"p": project_id})
            await asyncio.sleep(0.3)
            await asyncio.to_thread(redis_server.stop)
            body = await call(port_a, REVOKE, {"i": {"sessionId": login["data"]["logIn"]["session"]["id"]}},
                              owner.token)
            assert not body.get("errors"), body  # committed: the lost publish does not fail it
            assert reason(await call(port_a, VIEWER, token=token)) == "SESSION_REVOKED"
            await asyncio.to_thread(redis_server.start)
            # B reconnects, reloads the ended sessions from the database, closes the socket.
            closed = await closed_within(on_b, 15.0)
            assert closed.code == 4403
            assert reason(await call(port_b, VIEWER, token=token)) == "SESSION_REVOKED"
        finally:
            await on_b.close()
