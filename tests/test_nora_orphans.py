"""A NORA reply whose instance is killed (kill -9) mid-stream is ended FAILED/INTERRUPTED
within seconds by another instance on the same database — by its sweeper while it runs, or
at its startup — with the MessageFailed event, and the conversation takes new messages.

Real `pcg serve` processes on one PostgreSQL database; the fake OpenAI server holds the
reply's stream open, so the reply is STREAMING when its instance dies.
"""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import timedelta

import httpx
import pytest
from tortoise import timezone

from models import NoraConversation, NoraEvent, NoraMessage, NoraMessageStatus, NoraRole
from tests.conftest import SECRET, gid
from tests.fake_openai import FakeOpenAI, chunk
from tests.nora_support import EVENTS, SEND, START, make_team, pk, until_final
from tests.processes import aserving, free_port, subprocess_env
from tests.wsclient import GraphQLWS

ORPHAN_AFTER = 2  # seconds without a heartbeat (the default is 10)
DEADLINE = 30.0  # seconds to wait for anything below: a bound, not a measured time


@pytest.fixture
async def fake():
    server = await FakeOpenAI().start()
    yield server
    await server.close()


async def call(port: int, token: str, query: str, variables: dict) -> dict:
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"}, timeout=10,
        )
    return r.json()


def environment(settings, fake) -> dict[str, str]:
    return dict(
        PCG_DATABASE_URL=settings.database_url, PCG_SECRET_KEY=SECRET, PCG_NORA_PROVIDER="openai",
        PCG_NORA_BASE_URL=fake.url, PCG_NORA_MODEL="fake-model", PCG_NORA_TIMEOUT="60",
        PCG_NORA_ORPHAN_AFTER=str(ORPHAN_AFTER), PCG_RATE_LIMIT="0",
    )


async def streaming_reply(port: int, owner, org, project, fake) -> tuple[dict, int]:
    """A conversation on `port` whose reply has written "Working" and then stalls."""
    started = await call(port, owner.token, START, {"i": {
        "organizationId": gid("Organization", org.id), "projectId": gid("Project", project.id)}})
    conversation = started["data"]["startNoraConversation"]["conversation"]
    fake.script = [fake.stall_after([chunk({"content": "Working"})], seconds=120)]
    sent = await call(port, owner.token, SEND, {"i": {"conversationId": conversation["id"], "content": "go"}})
    reply_id = pk(sent["data"]["sendNoraMessage"]["assistantMessage"]["id"])
    deadline = time.monotonic() + DEADLINE
    while (await NoraMessage.get(id=reply_id)).content != "Working":
        assert time.monotonic() < deadline, "the reply never streamed"
        await asyncio.sleep(0.05)
    return conversation, reply_id


async def kill9(proc) -> None:
    proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(proc.wait)


async def ended(reply_id: int) -> NoraMessage:
    deadline = time.monotonic() + DEADLINE
    while (message := await NoraMessage.get(id=reply_id)).status is NoraMessageStatus.STREAMING:
        assert time.monotonic() < deadline, f"reply {reply_id} still STREAMING"
        await asyncio.sleep(0.1)
    return message


async def assert_accepts_a_new_message(port: int, owner, conversation: dict, fake) -> None:
    sent = await call(port, owner.token, SEND, {"i": {"conversationId": conversation["id"], "content": "again"}})
    assert not sent.get("errors"), sent  # no REPLY_IN_PROGRESS
    assert sent["data"]["sendNoraMessage"]["assistantMessage"]["status"] == "STREAMING"


@pytest.mark.postgres_only
async def test_a_running_instance_ends_the_reply_of_a_killed_one(tmp_path, settings, factory, fake):
    owner, org, project = await make_team(factory)
    env = environment(settings, fake)
    port_a, port_b = free_port(), free_port()
    async with aserving(subprocess_env(tmp_path / "b", **env), port_b, tmp_path / "b.log"):
        async with aserving(subprocess_env(tmp_path / "a", **env), port_a, tmp_path / "a.log") as a:
            conversation, reply_id = await streaming_reply(port_a, owner, org, project, fake)
            beating = await NoraMessage.get(id=reply_id)
            assert beating.owner_instance and beating.heartbeat_at is not None
            # B's subscriber follows the conversation from its start.
            ws = await GraphQLWS.connect(f"ws://127.0.0.1:{port_b}/graphql", token=owner.token)
            await ws.subscribe(EVENTS, {"c": conversation["id"], "after": conversation["eventCursor"]})
            await kill9(a)
        try:
            message = await ended(reply_id)
            assert (message.status, message.error_code, message.content) == (NoraMessageStatus.FAILED, "INTERRUPTED", "Working")
            events = await until_final(ws, timeout=DEADLINE)
        finally:
            await ws.close()
        final = events[-1]
        assert final["__typename"] == "MessageFailed" and final["code"] == "INTERRUPTED"
        assert (pk(final["messageId"]), final["message"]["status"]) == (reply_id, "FAILED")
        await assert_accepts_a_new_message(port_b, owner, conversation, fake)
    assert "stopped beating" in (tmp_path / "b.log").read_text()


@pytest.mark.postgres_only
async def test_an_instance_started_after_the_kill_ends_the_reply_at_startup(tmp_path, settings, factory, fake):
    owner, org, project = await make_team(factory)
    env = environment(settings, fake)
    port_a, port_b = free_port(), free_port()
    async with aserving(subprocess_env(tmp_path / "a", **env), port_a, tmp_path / "a.log") as a:
        conversation, reply_id = await streaming_reply(port_a, owner, org, project, fake)
        await kill9(a)
    # Nothing is running now: the reply stays STREAMING until an instance comes up.
    await asyncio.sleep(ORPHAN_AFTER + 0.5)
    assert (await NoraMessage.get(id=reply_id)).status is NoraMessageStatus.STREAMING
    async with aserving(subprocess_env(tmp_path / "b", **env), port_b, tmp_path / "b.log"):
        # Ended by B's startup sweep, before B answered its first health check.
        message = await NoraMessage.get(id=reply_id)
        assert (message.status, message.error_code) == (NoraMessageStatus.FAILED, "INTERRUPTED")
        ws = await GraphQLWS.connect(f"ws://127.0.0.1:{port_b}/graphql", token=owner.token)
        try:
            await ws.subscribe(EVENTS, {"c": conversation["id"], "after": conversation["eventCursor"]})
            final = (await until_final(ws, timeout=DEADLINE))[-1]
        finally:
            await ws.close()
        assert (final["__typename"], final["code"]) == ("MessageFailed", "INTERRUPTED")
        await assert_accepts_a_new_message(port_b, owner, conversation, fake)


@pytest.mark.postgres_only
async def test_a_live_reply_is_not_swept(tmp_path, settings, factory, fake):
    """The heartbeat keeps a reply that streams slower than the orphan window alive: two
    instances sweep all along and neither ends it."""
    owner, org, project = await make_team(factory)
    env = environment(settings, fake)
    port_a, port_b = free_port(), free_port()
    async with aserving(subprocess_env(tmp_path / "b", **env), port_b, tmp_path / "b.log"), \
            aserving(subprocess_env(tmp_path / "a", **env), port_a, tmp_path / "a.log"):
        _, reply_id = await streaming_reply(port_a, owner, org, project, fake)
        first = (await NoraMessage.get(id=reply_id)).heartbeat_at
        await asyncio.sleep(ORPHAN_AFTER * 3)  # several orphan windows of provider silence
        message = await NoraMessage.get(id=reply_id)
        assert message.status is NoraMessageStatus.STREAMING
        assert message.heartbeat_at > first


@pytest.mark.both_databases
async def test_the_sweep_ends_exactly_the_replies_whose_heartbeat_stopped(app, factory):
    """On both dialects: a foreign instance's reply with a stale heartbeat is ended with its
    MessageFailed event; one with a fresh heartbeat, and one of an older version (no
    heartbeat, recently written), are left alone."""
    owner, org, _ = await make_team(factory)
    conversation = await NoraConversation.create(organization=org, user=owner.user, title="t")
    now = timezone.now()
    window = timedelta(seconds=app.state.nora.settings.nora_orphan_after)

    async def reply(**columns) -> NoraMessage:
        return await NoraMessage.create(
            conversation=conversation, role=NoraRole.ASSISTANT, status=NoraMessageStatus.STREAMING,
            content="Partial", **columns,
        )

    stale = await reply(owner_instance="gone", heartbeat_at=now - window - timedelta(seconds=1))
    fresh = await reply(owner_instance="alive", heartbeat_at=now)
    legacy = await reply()
    await app.state.nora.sweep()  # (or its own sweeper already did, if this test ran slowly)
    assert (await NoraMessage.get(id=stale.id)).error_code == "INTERRUPTED"
    assert {m.status for m in await NoraMessage.filter(id__in=[fresh.id, legacy.id])} == {NoraMessageStatus.STREAMING}
    final = await NoraEvent.filter(conversation=conversation).order_by("-seq").first()
    assert (final.type, final.payload["messageId"], final.payload["code"]) == ("MessageFailed", stale.id, "INTERRUPTED")
