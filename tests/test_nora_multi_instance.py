"""NORA across two real `pcg serve` instances sharing PostgreSQL and Redis: a reply being
written on A is cancelled from B (the provider request on A stops), B's subscriber follows
A's reply, and the per-user rate limit is one bucket for both. A session ended through B
stops the reply it asked for on A."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from models import OrgRole
from resolvers.identity.sessions import issue_outside_request
from tests.conftest import SECRET, gid
from tests.fake_openai import FakeOpenAI, chunk
from tests.nora_support import CANCEL, SEND, START, make_team, until_final
from tests.processes import aserving, free_port, subprocess_env
from tests.wsclient import GraphQLWS

pytestmark = pytest.mark.postgres_only


@pytest.fixture
async def fake():
    server = await FakeOpenAI().start()
    yield server
    await server.close()


async def call(port: int, token: str, query: str, variables: dict) -> dict:
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
    return r.json()


def _env(settings, redis_server, fake) -> dict[str, str]:
    return dict(
        PCG_DATABASE_URL=settings.database_url, PCG_BROADCAST_URL=redis_server.url, PCG_SECRET_KEY=SECRET,
        PCG_NORA_PROVIDER="openai", PCG_NORA_BASE_URL=fake.url, PCG_NORA_MODEL="fake-model", PCG_NORA_TIMEOUT="5",
    )


async def test_cancel_from_another_instance_and_a_shared_rate_limit(tmp_path, settings, factory, fake, redis_server):
    owner, org, project = await make_team(factory)
    env = _env(settings, redis_server, fake)
    port_a, port_b = free_port(), free_port()
    async with aserving(subprocess_env(tmp_path / "a", **env), port_a, tmp_path / "a.log"), \
            aserving(subprocess_env(tmp_path / "b", **env), port_b, tmp_path / "b.log"):
        started = await call(port_a, owner.token, START, {"i": {
            "organizationId": gid("Organization", org.id), "projectId": gid("Project", project.id)}})
        conversation = started["data"]["startNoraConversation"]["conversation"]
        ws = await GraphQLWS.connect(f"ws://127.0.0.1:{port_b}/graphql", token=owner.token)
        try:
            from tests.nora_support import EVENTS

            await ws.subscribe(EVENTS, {"c": conversation["id"], "after": conversation["eventCursor"]})
            fake.script = [fake.stall_after([chunk({"content": "Working"})], seconds=15)]
            sent = await call(port_a, owner.token, SEND, {"i": {"conversationId": conversation["id"], "content": "go"}})
            reply_id = sent["data"]["sendNoraMessage"]["assistantMessage"]["id"]
            seen = ""
            while seen != "Working":
                seen += (await ws.next_data(timeout=10))["data"]["noraEvents"].get("text", "")

            cancelled = await call(port_b, owner.token, CANCEL, {"i": {"messageId": reply_id}})
            assert cancelled["data"]["cancelNoraMessage"]["message"] == {
                "id": reply_id, "status": "CANCELLED", "content": "Working",
            }
            await asyncio.wait_for(fake.disconnected.wait(), 3)  # A's provider request went away
            final = await until_final(ws)
            assert final[-1]["__typename"] == "MessageCancelled"
        finally:
            await ws.close()

        # The rate limit is one Redis bucket per user for both instances: sending from A
        # and B in turn, the user gets 20 in (21 if a token refilled meanwhile), not 40.
        other = await factory.user("Otto")
        await factory.org_member(org, other, OrgRole.MEMBER)
        cids = []
        for i in range(25):
            port = port_a if i % 2 else port_b
            made = await call(port, other.token, START, {"i": {"organizationId": gid("Organization", org.id)}})
            cids.append(made["data"]["startNoraConversation"]["conversation"]["id"])
        accepted = 0
        for i, cid in enumerate(cids):
            result = await call(port_a if i % 2 else port_b, other.token, SEND, {"i": {"conversationId": cid, "content": "hi"}})
            if result.get("errors"):
                assert result["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
                break
            accepted += 1
        assert accepted in (20, 21)


async def test_a_session_ended_through_b_stops_its_reply_on_a(tmp_path, settings, factory, fake, redis_server):
    from tests.nora_support import EVENTS

    owner, org, project = await make_team(factory)
    laptop = await issue_outside_request(owner.user, SECRET, 3600)  # watches, and stays
    env = _env(settings, redis_server, fake)
    port_a, port_b = free_port(), free_port()
    async with aserving(subprocess_env(tmp_path / "a", **env), port_a, tmp_path / "a.log"), \
            aserving(subprocess_env(tmp_path / "b", **env), port_b, tmp_path / "b.log"):
        started = await call(port_a, owner.token, START, {"i": {
            "organizationId": gid("Organization", org.id), "projectId": gid("Project", project.id)}})
        conversation = started["data"]["startNoraConversation"]["conversation"]
        ws = await GraphQLWS.connect(f"ws://127.0.0.1:{port_b}/graphql", token=laptop.access_token)
        try:
            await ws.subscribe(EVENTS, {"c": conversation["id"], "after": conversation["eventCursor"]})
            fake.script = [fake.stall_after([chunk({"content": "Working"})], seconds=15)]
            await call(port_a, owner.token, SEND, {"i": {"conversationId": conversation["id"], "content": "go"}})
            seen = ""
            while seen != "Working":
                seen += (await ws.next_data(timeout=10))["data"]["noraEvents"].get("text", "")

            body = await call(port_b, owner.token, "mutation { logOut { session { id } } }", {})
            assert not body.get("errors"), body
            ended = time.monotonic()
            final = (await until_final(ws, timeout=5))[-1]
            assert time.monotonic() - ended < 0.8  # A heard of it on the broker, not by its 1 s poll
            assert (final["__typename"], final["code"], final["message"]["content"]) == (
                "MessageFailed", "SESSION_ENDED", "Working",
            )
            await asyncio.wait_for(fake.disconnected.wait(), 3)  # A's provider request went away
        finally:
            await ws.close()
