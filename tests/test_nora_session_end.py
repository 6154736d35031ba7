"""A NORA reply acts as the person who asked, with the credential they asked with: when that
session ends (logOut, endMemberSessions, ...) or that API key is revoked, the reply stops at
once, FAILED with SESSION_ENDED or API_KEY_REVOKED and the text written so far, and no tool
runs after the end. Other sessions of the same person keep their replies. Against the fake
OpenAI-compatible server (tests/fake_openai.py), over the real app."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from models import (
    AuditEntry,
    BoardEvent,
    NoraEvent,
    NoraMessage,
    NoraMessageStatus,
    NoraRole,
    NoraUsageEntry,
    OrgRole,
    ProjectMember,
    ProjectRole,
    Task,
    TaskPriority,
    TaskStatus,
    UsageKind,
)
from server.settings import Settings
from tests.conftest import PASSWORD, SECRET, gid
from tests.fake_openai import FakeOpenAI, chunk, text_events, tool_events
from tests.nora_support import make_team, pk, send, settled, start, subscribe, text_of, until_final

LOG_IN = "mutation($i: LogInInput!) { logIn(input: $i) { accessToken } }"
LOG_OUT = "mutation { logOut { session { id } } }"
END = "mutation($i: EndMemberSessionsInput!) { endMemberSessions(input: $i) { sessionsEnded } }"
CREATE_KEY = "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key apiKey { id } } }"
REVOKE_KEY = "mutation($i: RevokeApiKeyInput!) { revokeApiKey(input: $i) { apiKey { id } } }"
REMOVE_FROM_PROJECT = "mutation($i: RemoveProjectMemberInput!) { removeProjectMember(input: $i) { removedMemberId } }"
# From the end's answer to the reply's final event (~15 ms measured): well under the one
# second after which a silent provider's reply looks again, so it is the end's own signal
# that stops the reply, not the provider's next chunk nor that poll. Half that second, so
# that a loaded CI machine's stall does not fail it.
PROMPTLY = 0.5


@pytest.fixture
async def fake():
    server = await FakeOpenAI().start()
    yield server
    await server.close()


@pytest.fixture
def settings(tmp_path, database_url, fake) -> Settings:
    return Settings(
        env="test", data_dir=tmp_path, database_url=database_url, secret_key=SECRET,
        nora_provider="openai", nora_base_url=fake.url, nora_api_key="sk-test", nora_model="fake-model",
        nora_timeout=20, outbox_worker=False,
    )


async def another_session(gql, actor) -> str:
    """A second session of `actor` (logIn): its access token."""
    data = await gql.ok(LOG_IN, {"i": {"email": actor.user.email, "password": PASSWORD}})
    return data["logIn"]["accessToken"]


async def content_is(reply_id: int, text: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (await NoraMessage.get(id=reply_id)).content != text:
        assert time.monotonic() < deadline, f"reply {reply_id} never showed {text!r}"
        await asyncio.sleep(0.01)


async def last_event(conversation_id: str) -> NoraEvent:
    event = await NoraEvent.filter(conversation_id=pk(conversation_id)).order_by("-seq").first()
    assert event is not None
    return event


async def assert_nothing_after(conversation_id: str, reply: NoraMessage) -> None:
    """The final event is the last one, and the stored reply does not change any more."""
    final = await last_event(conversation_id)
    await asyncio.sleep(0.3)
    assert (await last_event(conversation_id)).seq == final.seq
    assert (await NoraMessage.get(id=reply.id)).content == reply.content


async def assert_tokens_counted(reply: NoraMessage) -> None:
    ledger = await NoraUsageEntry.get(message_id=reply.id, kind=UsageKind.TOKENS)
    assert ledger.amount == reply.tokens_in + reply.tokens_out > 0


async def test_log_out_stops_a_streaming_reply_at_once(app, live, gql, factory, fake):
    owner, org, project = await make_team(factory)
    phone = await another_session(gql, owner)  # asks, then logs out; owner.token watches
    fake.script = [fake.stall_after(text_events(["Thinking", " hard"])[:3], seconds=15)]
    conversation = await start(gql, phone, org, project)
    ws = await subscribe(live, owner.token, conversation)
    try:
        await send(gql, phone, conversation["id"], "think about it")
        seen = []
        while text_of(seen) != "Thinking hard":
            seen.append((await ws.next_data())["data"]["noraEvents"])
        await gql.ok(LOG_OUT, token=phone)
        ended = time.monotonic()
        events = await until_final(ws, timeout=5)
        assert time.monotonic() - ended < PROMPTLY
    finally:
        await ws.close()
    failed = events[-1]
    assert failed["__typename"] == "MessageFailed"
    assert (failed["code"], failed["errorMessage"]) == (
        "SESSION_ENDED", "The session that asked this ended; NORA stopped",
    )
    assert failed["message"]["content"] == "Thinking hard" == text_of(seen + events)
    assert failed["message"]["errorCode"] == "SESSION_ENDED"
    await asyncio.wait_for(fake.disconnected.wait(), 2)  # the provider request was closed

    reply = await NoraMessage.get(id=pk(failed["message"]["id"]))
    assert (reply.status, reply.error_code, reply.content) == (NoraMessageStatus.FAILED, "SESSION_ENDED", "Thinking hard")
    await assert_tokens_counted(reply)
    await assert_nothing_after(conversation["id"], reply)
    assert app.state.sessions.listening() == 0
    assert len(fake.requests) == 1


async def test_a_tool_call_asked_after_the_session_ended_never_runs(app, gql, factory, fake):
    owner, org, project = await make_team(factory)
    task = await Task.create(
        project=project, title="Fix login", status=TaskStatus.TODO, priority=TaskPriority.MEDIUM,
        priority_rank=2, position="a0", created_by=owner.user,
    )
    before = await Task.get(id=task.id).values()
    phone = await another_session(gql, owner)
    gate = asyncio.Event()
    fake.script = [
        fake.gated(text_events(["Moving it"])[:2], gate,
                   tool_events([], "update_task", {"task": "Fix login", "status": "done"})),
        fake.stream(text_events(["Done."])),
    ]
    conversation = await start(gql, phone, org, project)
    sent = await send(gql, phone, conversation["id"], 'move "Fix login" to done')
    reply_id = pk(sent["assistantMessage"]["id"])
    await content_is(reply_id, "Moving it")
    await gql.ok(LOG_OUT, token=phone)
    gate.set()  # the model now asks for the tool: too late
    reply = await settled(reply_id, timeout=PROMPTLY)
    assert (reply.status, reply.error_code, reply.content) == (NoraMessageStatus.FAILED, "SESSION_ENDED", "Moving it")

    assert await Task.get(id=task.id).values() == before
    assert not await AuditEntry.filter(action__startswith="task.").exists()
    assert not await BoardEvent.filter(project_id=project.id).exists()
    assert not await NoraMessage.filter(reply_to_id=reply_id, role=NoraRole.TOOL).exists()
    assert (await last_event(conversation["id"])).type == "MessageFailed"
    assert len(fake.requests) == 1
    await assert_tokens_counted(reply)


@pytest.mark.postgres_only
async def test_the_next_tool_call_of_a_turn_never_runs_once_the_session_ended(gql, factory, fake, database_url):
    """The session ends while the first of two calls runs (held on the project's row lock):
    that one finishes, as a request already running does; the second is never made."""
    import asyncpg

    owner, org, project = await make_team(factory)
    task = await Task.create(
        project=project, title="Fix login", status=TaskStatus.TODO, priority=TaskPriority.MEDIUM,
        priority_rank=2, position="a0", created_by=owner.user,
    )
    phone = await another_session(gql, owner)
    calls = [("update_task", {"task": "Fix login", "status": "done"}), ("create_task", {"title": "Sneaky"})]
    gate = asyncio.Event()
    fake.script = [fake.gated([chunk({"role": "assistant", "content": ""})], gate, [
        *[chunk({"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                 "function": {"name": name, "arguments": json.dumps(args)}}]})
          for i, (name, args) in enumerate(calls)],
        chunk(finish="tool_calls"),
    ])]
    conversation = await start(gql, phone, org, project)
    sent = await send(gql, phone, conversation["id"], "close Fix login and add Sneaky")
    reply_id = pk(sent["assistantMessage"]["id"])
    lock = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        transaction = lock.transaction()
        await transaction.start()
        await lock.execute("SELECT id FROM project WHERE id = $1 FOR UPDATE", project.id)
        gate.set()
        deadline = time.monotonic() + 5
        while not await NoraMessage.filter(reply_to_id=reply_id, role=NoraRole.TOOL).exists():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # the first call now waits for the lock
        await gql.ok(LOG_OUT, token=phone)
        await asyncio.sleep(0.2)
        await transaction.rollback()
    finally:
        await lock.close()
    reply = await settled(reply_id, timeout=5)
    assert (reply.status, reply.error_code) == (NoraMessageStatus.FAILED, "SESSION_ENDED")
    tools = await NoraMessage.filter(reply_to_id=reply_id, role=NoraRole.TOOL).order_by("id")
    assert [(t.tool_name, t.status) for t in tools] == [("update_task", NoraMessageStatus.COMPLETE)]
    assert (await Task.get(id=task.id)).status is TaskStatus.DONE
    assert not await Task.filter(title="Sneaky").exists()
    assert not await AuditEntry.filter(action="task.create").exists()


async def test_an_owner_ending_a_member_s_sessions_stops_the_member_s_reply(app, gql, factory, fake):
    owner, org, project = await make_team(factory)
    member = await factory.user("Mia")
    await factory.org_member(org, member, OrgRole.MEMBER)
    await factory.project_member(project, member, ProjectRole.EDITOR)
    words = [f" word{i}" for i in range(200)]
    fake.script = [fake.stream(text_events(words), delay=0.02)]  # four seconds of text
    conversation = await start(gql, member.token, org, project)
    sent = await send(gql, member.token, conversation["id"], "tell me everything")
    reply_id = pk(sent["assistantMessage"]["id"])
    deadline = time.monotonic() + 5
    while len((await NoraMessage.get(id=reply_id)).content) < 20:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    data = await gql.ok(END, {"i": {"organizationId": gid("Organization", org.id), "userId": member.gid}}, token=owner.token)
    assert data["endMemberSessions"]["sessionsEnded"] == 1
    reply = await settled(reply_id, timeout=PROMPTLY)
    assert (reply.status, reply.error_code) == (NoraMessageStatus.FAILED, "SESSION_ENDED")
    assert "".join(words).startswith(reply.content) and 20 <= len(reply.content) < len("".join(words))
    final = await last_event(conversation["id"])
    assert (final.type, final.payload["code"], final.payload["message"]["content"]) == (
        "MessageFailed", "SESSION_ENDED", reply.content,
    )
    await assert_nothing_after(conversation["id"], reply)
    await assert_tokens_counted(reply)


async def _key(gql, owner, org) -> tuple[str, str]:
    data = await gql.ok(CREATE_KEY, {"i": {"organizationId": gid("Organization", org.id), "name": "bot", "role": "MEMBER"}},
                        token=owner.token)
    return data["createApiKey"]["key"], data["createApiKey"]["apiKey"]["id"]


async def test_revoking_the_api_key_stops_its_reply(gql, factory, fake):
    owner, org, project = await make_team(factory)
    key, key_id = await _key(gql, owner, org)
    fake.script = [fake.stall_after(text_events(["Working"])[:2], seconds=15)]
    conversation = await start(gql, key, org, project)
    sent = await send(gql, key, conversation["id"], "go")
    reply_id = pk(sent["assistantMessage"]["id"])
    await content_is(reply_id, "Working")
    await gql.ok(REVOKE_KEY, {"i": {"apiKeyId": key_id}}, token=owner.token)
    reply = await settled(reply_id, timeout=PROMPTLY)
    assert (reply.status, reply.error_code, reply.content) == (NoraMessageStatus.FAILED, "API_KEY_REVOKED", "Working")
    assert reply.error_message == "The API key that asked this was revoked or expired; NORA stopped"
    await asyncio.wait_for(fake.disconnected.wait(), 2)
    final = await last_event(conversation["id"])
    assert (final.type, final.payload["code"]) == ("MessageFailed", "API_KEY_REVOKED")
    await assert_tokens_counted(reply)


async def test_a_revoked_key_runs_no_tool_even_when_its_signal_was_lost(gql, factory, fake):
    """A revocation whose nudge never came (written straight to the row, as when a publish
    fails): the key's row is read again before the tool runs."""
    from datetime import UTC, datetime

    from models import ApiKey

    owner, org, project = await make_team(factory)
    key, key_id = await _key(gql, owner, org)
    gate = asyncio.Event()
    fake.script = [
        fake.gated(text_events(["Adding it"])[:2], gate, tool_events([], "create_task", {"title": "Sneaky"})),
        fake.stream(text_events(["Done."])),
    ]
    conversation = await start(gql, key, org, project)
    sent = await send(gql, key, conversation["id"], "add Sneaky")
    reply_id = pk(sent["assistantMessage"]["id"])
    await content_is(reply_id, "Adding it")
    await ApiKey.filter(id=pk(key_id)).update(revoked_at=datetime.now(UTC))
    gate.set()
    reply = await settled(reply_id, timeout=5)
    assert (reply.status, reply.error_code) == (NoraMessageStatus.FAILED, "API_KEY_REVOKED")
    assert not await Task.filter(title="Sneaky").exists()
    assert not await AuditEntry.filter(action="task.create").exists()
    assert not await NoraMessage.filter(reply_to_id=reply_id, role=NoraRole.TOOL).exists()
    assert len(fake.requests) == 1


async def test_only_the_ended_session_s_reply_stops(app, gql, factory, fake):
    owner, org, project = await make_team(factory)
    phone = await another_session(gql, owner)
    words = [f" w{i}" for i in range(30)]
    fake.script = [
        fake.stream(text_events(words), delay=0.05),  # the laptop's: 1.5 s of text
        fake.stall_after(text_events(["Hmm"])[:2], seconds=15),  # the phone's
    ]
    on_laptop = await start(gql, owner.token, org, project)
    on_phone = await start(gql, phone, org, project)
    kept = pk((await send(gql, owner.token, on_laptop["id"], "tell me"))["assistantMessage"]["id"])
    while not fake.requests:
        await asyncio.sleep(0.01)
    stopped = pk((await send(gql, phone, on_phone["id"], "and me"))["assistantMessage"]["id"])
    await content_is(stopped, "Hmm")
    assert (await NoraMessage.get(id=kept)).status is NoraMessageStatus.STREAMING
    await gql.ok(LOG_OUT, token=phone)
    ended = await settled(stopped, timeout=PROMPTLY)
    assert (ended.status, ended.error_code) == (NoraMessageStatus.FAILED, "SESSION_ENDED")
    assert (await NoraMessage.get(id=kept)).status is NoraMessageStatus.STREAMING
    finished = await settled(kept, timeout=10)
    assert (finished.status, finished.content) == (NoraMessageStatus.COMPLETE, "".join(words))
    assert app.state.sessions.listening() == 0


async def test_a_user_removed_from_the_project_mid_reply_gets_the_tool_refused(gql, factory, fake):
    """Tools go through the access layer afresh at each call: the memberships of the moment."""
    owner, org, project = await make_team(factory)
    member = await factory.user("Mia")
    await factory.org_member(org, member, OrgRole.MEMBER)
    await factory.project_member(project, member, ProjectRole.EDITOR)
    gate = asyncio.Event()
    fake.script = [
        fake.gated(text_events(["Adding it"])[:2], gate, tool_events([], "create_task", {"title": "Sneaky"})),
        fake.stream(text_events([" I could not."])),
    ]
    conversation = await start(gql, member.token, org, project)
    sent = await send(gql, member.token, conversation["id"], "add Sneaky")
    reply_id = pk(sent["assistantMessage"]["id"])
    await content_is(reply_id, "Adding it")
    row = await ProjectMember.get(project_id=project.id, user_id=member.user.id)
    await gql.ok(REMOVE_FROM_PROJECT, {"i": {"memberId": gid("ProjectMember", row.id)}}, token=owner.token)
    gate.set()
    reply = await settled(reply_id, timeout=5)
    assert (reply.status, reply.content) == (NoraMessageStatus.COMPLETE, "Adding it I could not.")
    tool = await NoraMessage.get(reply_to_id=reply_id, role=NoraRole.TOOL)
    assert tool.tool_result["ok"] is False and tool.tool_result["error"]["code"] == "NOT_FOUND"
    assert not await Task.filter(title="Sneaky").exists()
    assert not await AuditEntry.filter(action="task.create").exists()
