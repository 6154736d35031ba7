"""NORA's `openai` provider against a fake OpenAI-compatible server on 127.0.0.1: streamed
text and tool calls over two turns, provider failures and timeouts, cancellation, quota."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import httpx
import pytest
from asgi_lifespan import LifespanManager

from models import (
    BoardEvent,
    NoraEvent,
    NoraMessage,
    NoraMessageStatus,
    NoraUsageEntry,
    Task,
    UsageKind,
)
from server.app import create_app
from server.settings import Settings
from tests.conftest import SECRET, Factory, GraphQLClient
from tests.fake_openai import FakeOpenAI, chunk, text_events, tool_events
from tests.nora_support import (
    CANCEL,
    kinds,
    make_team,
    pk,
    send,
    settled,
    start,
    subscribe,
    text_of,
    until_final,
)


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
        nora_timeout=1,
    )


@pytest.mark.both_databases
async def test_text_and_a_tool_call_then_a_second_turn(live, gql, factory, fake):
    owner, org, project = await make_team(factory)
    fake.script = [
        fake.stream(tool_events(["Sure", ", adding", " it."], "create_task", {"title": "Fix login", "priority": "high"}),
                    delay=0.01),
        fake.stream(text_events(["Added", " \"Fix login\"", "."], prompt=40, completion=3), delay=0.01),
    ]
    conversation = await start(gql, owner.token, org, project)
    ws = await subscribe(live, owner.token, conversation)
    try:
        sent = await send(gql, owner.token, conversation["id"], "please add Fix login, it's urgent")
        assert (sent["assistantMessage"]["provider"], sent["assistantMessage"]["model"]) == ("openai", "fake-model")
        events = await until_final(ws)
    finally:
        await ws.close()
    assert kinds(events) == [
        "MessageStarted", "TextDelta", "ToolCallStarted", "ToolCallFinished", "TextDelta", "MessageCompleted",
    ]
    call = next(e for e in events if e["__typename"] == "ToolCallStarted")
    assert (call["name"], call["arguments"]) == ("create_task", {"title": "Fix login", "priority": "high"})
    finished = next(e for e in events if e["__typename"] == "ToolCallFinished")
    assert finished["ok"] is True
    done = events[-1]
    assert done["message"]["content"] == 'Sure, adding it.Added "Fix login".' == text_of(events)
    assert done["usage"]["tokensIn"] == 20 + 40 and done["usage"]["tokensOut"] == 7 + 3

    task = await Task.get(project_id=project.id)
    assert (task.title, task.priority.value, task.created_by_id) == ("Fix login", "high", owner.user.id)
    assert await BoardEvent.filter(project_id=project.id, type="TaskCreated").count() == 1
    tokens = await NoraUsageEntry.get(kind=UsageKind.TOKENS)
    assert tokens.amount == 70

    first, second = fake.requests
    assert first["path"] == "/v1/chat/completions" and first["headers"]["authorization"] == "Bearer sk-test"
    body = first["json"]
    assert (body["model"], body["stream"]) == ("fake-model", True)
    assert {t["function"]["name"] for t in body["tools"]} == {
        "search_tasks", "get_task", "create_task", "update_task", "add_comment", "summarize_board", "list_members",
    }
    assert body["messages"][0]["role"] == "system" and "Website" in body["messages"][0]["content"]
    assert body["messages"][-1] == {"role": "user", "content": "please add Fix login, it's urgent"}
    asked, answered = second["json"]["messages"][-2:]
    assert asked["role"] == "assistant" and asked["tool_calls"][0]["id"] == "call_abc"
    assert asked["tool_calls"][0]["function"]["name"] == "create_task"
    assert answered["role"] == "tool" and answered["tool_call_id"] == "call_abc"
    assert '"ok":true' in answered["content"] and "Fix login" in answered["content"]

    # The next message carries the whole exchange as history.
    fake.script = [fake.stream(text_events(["You're", " welcome"]))]
    sent = await send(gql, owner.token, conversation["id"], "thanks")
    await settled(pk(sent["assistantMessage"]["id"]))
    history = [(m["role"], m.get("content")) for m in fake.requests[2]["json"]["messages"][1:]]
    history[2] = ("tool", json.loads(history[2][1]))  # stored as JSON(B): key order may differ
    assert history == [
        ("user", "please add Fix login, it's urgent"),
        ("assistant", None),
        ("tool", json.loads(answered["content"])),
        ("assistant", 'Sure, adding it.Added "Fix login".'),
        ("user", "thanks"),
    ]


async def test_tool_arguments_that_are_not_an_object_are_kept_as_text(live, gql, factory, fake):
    # A model may write any JSON as a call's arguments; the API shows them as an object.
    owner, org, project = await make_team(factory)
    fake.script = [
        fake.stream(tool_events(["On it."], "create_task", ["Fix login"])),
        fake.stream(text_events(["Sorry."])),
    ]
    conversation = await start(gql, owner.token, org, project)
    ws = await subscribe(live, owner.token, conversation)
    try:
        await send(gql, owner.token, conversation["id"], "add Fix login")
        events = await until_final(ws)
    finally:
        await ws.close()
    started = next(e for e in events if e["__typename"] == "ToolCallStarted")
    assert started["arguments"] == {"unparsed": '["Fix login"]'}
    finished = next(e for e in events if e["__typename"] == "ToolCallFinished")
    assert finished["ok"] is False
    assert finished["error"] == {"code": "BAD_USER_INPUT", "message": "Tool arguments must be a JSON object"}
    assert events[-1]["__typename"] == "MessageCompleted"
    tool = await NoraMessage.get(tool_call_id="call_abc")
    assert tool.tool_arguments == {"unparsed": '["Fix login"]'}
    assert await Task.filter(project_id=project.id).count() == 0


async def test_the_server_failing_mid_stream_ends_the_reply_failed(live, gql, factory, fake):
    owner, org, project = await make_team(factory)
    fake.script = [fake.break_after(text_events(["Half", " an"])[:3])]
    conversation = await start(gql, owner.token, org, project)
    ws = await subscribe(live, owner.token, conversation)
    try:
        await send(gql, owner.token, conversation["id"], "explain everything")
        events = await until_final(ws)
    finally:
        await ws.close()
    failed = events[-1]
    assert failed["__typename"] == "MessageFailed" and failed["code"] == "PROVIDER_ERROR"
    assert "closed the connection" in failed["errorMessage"]
    assert failed["message"]["content"] == "Half an" == text_of(events)
    reply = await NoraMessage.get(id=pk(failed["message"]["id"]))
    assert (reply.status, reply.error_code, reply.content) == (NoraMessageStatus.FAILED, "PROVIDER_ERROR", "Half an")
    assert (await NoraUsageEntry.get(kind=UsageKind.TOKENS)).amount > 0  # what it cost is still counted


async def test_a_provider_that_stops_talking_times_out(gql, factory, fake):
    owner, org, project = await make_team(factory)
    fake.script = [fake.stall_after(text_events(["Slow"])[:2], seconds=10)]
    conversation = await start(gql, owner.token, org, project)
    sent = await send(gql, owner.token, conversation["id"], "hello?")
    reply = await settled(pk(sent["assistantMessage"]["id"]), timeout=5)
    assert (reply.status, reply.error_code, reply.content) == (NoraMessageStatus.FAILED, "PROVIDER_TIMEOUT", "Slow")
    assert "within 1 s" in reply.error_message
    await asyncio.wait_for(fake.disconnected.wait(), 2)
    final = await NoraEvent.filter(conversation_id=pk(conversation["id"])).order_by("-seq").first()
    assert (final.type, final.payload["code"]) == ("MessageFailed", "PROVIDER_TIMEOUT")


@pytest.mark.parametrize(
    "status, body, code, text",
    [
        (500, {"error": {"message": "model crashed"}}, "PROVIDER_ERROR", "HTTP 500: model crashed"),
        (429, {"error": {"message": "slow down"}}, "PROVIDER_RATE_LIMITED", "HTTP 429: slow down"),
    ],
)
async def test_http_errors_end_the_reply_with_a_clear_code(gql, factory, fake, status, body, code, text):
    owner, org, project = await make_team(factory)
    fake.script = [fake.http_error(status, body)]
    conversation = await start(gql, owner.token, org, project)
    sent = await send(gql, owner.token, conversation["id"], "hi")
    reply = await settled(pk(sent["assistantMessage"]["id"]))
    assert (reply.status, reply.error_code) == (NoraMessageStatus.FAILED, code)
    assert text in reply.error_message


async def test_an_unreachable_provider_is_unavailable(gql, factory, fake):
    owner, org, project = await make_team(factory)
    fake.server.close()
    await fake.server.wait_closed()
    conversation = await start(gql, owner.token, org, project)
    sent = await send(gql, owner.token, conversation["id"], "hi")
    reply = await settled(pk(sent["assistantMessage"]["id"]))
    assert (reply.status, reply.error_code) == (NoraMessageStatus.FAILED, "PROVIDER_UNAVAILABLE")


@pytest.mark.both_databases
async def test_cancel_stops_the_provider_request(live, gql, factory, fake):
    owner, org, project = await make_team(factory)
    fake.script = [fake.stall_after(text_events(["Thinking", " hard"])[:3], seconds=10)]
    conversation = await start(gql, owner.token, org, project)
    ws = await subscribe(live, owner.token, conversation)
    try:
        sent = await send(gql, owner.token, conversation["id"], "think about it")
        reply_id = sent["assistantMessage"]["id"]
        seen = ""
        while seen != "Thinking hard":
            event = (await ws.next_data())["data"]["noraEvents"]
            seen += event.get("text", "")
        cancelled = (await gql.ok(CANCEL, {"i": {"messageId": reply_id}}, token=owner.token))["cancelNoraMessage"]
        assert cancelled["message"] == {"id": reply_id, "status": "CANCELLED", "content": "Thinking hard"}
        await asyncio.wait_for(fake.disconnected.wait(), 2)  # the provider saw the request go
        final = (await ws.next_data())["data"]["noraEvents"]
        assert final["__typename"] == "MessageCancelled" and final["message"]["content"] == "Thinking hard"
    finally:
        await ws.close()
    assert len(fake.requests) == 1


async def test_quota_exceeded_means_no_provider_call(gql, factory, fake):
    owner, org, project = await make_team(factory)
    await NoraUsageEntry.create(organization=org, user=owner.user, kind=UsageKind.TOKENS, amount=49_999)
    conversation = await start(gql, owner.token, org, project)
    fake.script = [fake.stream(text_events(["fine"], prompt=5, completion=1))]
    sent = await send(gql, owner.token, conversation["id"], "one more")  # 49,999 < 50,000: allowed
    await settled(pk(sent["assistantMessage"]["id"]))
    assert len(fake.requests) == 1
    error = await gql.error(
        "mutation($i: SendNoraMessageInput!) { sendNoraMessage(input: $i) { conversation { id } } }",
        {"i": {"conversationId": conversation["id"], "content": "and another"}}, token=owner.token,
    )
    assert error["extensions"]["code"] == "QUOTA_EXCEEDED"
    assert error["extensions"]["used"] == 50_005
    assert len(fake.requests) == 1
    assert await NoraMessage.filter(conversation_id=pk(conversation["id"])).count() == 2


def _row(path: str, message_id: int) -> dict:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return dict(db.execute("SELECT * FROM nora_message WHERE id = ?", (message_id,)).fetchone())


async def test_shutdown_ends_running_replies_failed_and_startup_sweeps_orphans(settings, fake, password_hash):
    fake.script = [fake.stall_after([chunk({"content": "Partial"})], seconds=10)]
    path = settings.database_url.removeprefix("sqlite://")
    application = create_app(settings)
    async with LifespanManager(application):
        factory = Factory(password_hash)
        owner, org, project = await make_team(factory)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            gql = GraphQLClient(http)
            conversation = await start(gql, owner.token, org, project)
            sent = await send(gql, owner.token, conversation["id"], "go on")
            reply_id = pk(sent["assistantMessage"]["id"])
            while (await NoraMessage.get(id=reply_id)).content != "Partial":
                await asyncio.sleep(0.01)
            # A reply whose instance died long ago, for the next startup to find.
            from datetime import timedelta

            from tortoise import timezone

            orphan = await NoraMessage.create(
                conversation_id=pk(conversation["id"]), role="assistant", status=NoraMessageStatus.STREAMING,
                content="Lost", provider="openai", model="fake-model",
            )
            await NoraMessage.filter(id=orphan.id).update(updated_at=timezone.now() - timedelta(minutes=10))
    stopped = _row(path, reply_id)
    assert (stopped["status"], stopped["error_code"], stopped["content"]) == ("failed", "INTERRUPTED", "Partial")
    assert _row(path, orphan.id)["status"] == "streaming"  # another instance's: not ours to end on shutdown

    async with LifespanManager(create_app(settings)):
        ended = await NoraMessage.get(id=orphan.id)
        assert (ended.status, ended.error_code, ended.content) == (NoraMessageStatus.FAILED, "INTERRUPTED", "Lost")
        final = await NoraEvent.filter(conversation_id=pk(conversation["id"])).order_by("-seq").first()
        assert (final.type, final.payload["messageId"]) == ("MessageFailed", orphan.id)


async def test_a_broker_reconnection_does_not_cancel_a_running_reply(settings, fake, password_hash, redis_server):
    """The hub puts a GAP on every channel it resubscribes after a reconnection: that is no
    cancel request, and the reply goes on (a cancel lost meanwhile is still in the database)."""
    from prometheus_client import REGISTRY

    def reconnects() -> float:
        return REGISTRY.get_sample_value("pcg_broker_reconnects_total") or 0.0

    gate = asyncio.Event()
    fake.script = [fake.gated([chunk({"content": "Before"})], gate, text_events([" after"])[1:])]
    shared = settings.model_copy(update={"broadcast_url": redis_server.url, "nora_timeout": 20})
    application = create_app(shared)
    async with LifespanManager(application):
        factory = Factory(password_hash)
        owner, org, project = await make_team(factory)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            gql = GraphQLClient(http)
            conversation = await start(gql, owner.token, org, project)
            sent = await send(gql, owner.token, conversation["id"], "go on")
            reply_id = pk(sent["assistantMessage"]["id"])
            while (await NoraMessage.get(id=reply_id)).content != "Before":
                await asyncio.sleep(0.01)
            before = reconnects()
            await asyncio.to_thread(redis_server.stop)
            await asyncio.to_thread(redis_server.start)
            async with asyncio.timeout(10):
                while reconnects() == before:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)  # the GAP reaches the reply's listener
            assert (await NoraMessage.get(id=reply_id)).status is NoraMessageStatus.STREAMING
            gate.set()
            reply = await settled(reply_id)
    assert (reply.status, reply.content) == (NoraMessageStatus.COMPLETE, "Before after")


# -- SSE framing (httpx-sse), against the fake server, through the provider itself -------------


async def _provider_chunks(fake, *behaviours) -> list:
    from resolvers.nora.providers.openai import OpenAIProvider

    fake.script = list(behaviours)
    provider = OpenAIProvider(fake.url, "sk-test", "fake-model", timeout=2)
    return [c async for c in provider.stream([{"role": "user", "content": "hi"}], [])]


def _content(text: str) -> str:
    return json.dumps(chunk({"content": text}))


@pytest.mark.parametrize("eol", ["\r\n", "\n", "\r"], ids=["crlf", "lf", "cr"])
@pytest.mark.parametrize("piece", [0, 1, 7], ids=["whole", "bytewise", "sevens"])
async def test_sse_framing_follows_the_specification(fake, eol, piece):
    """Comments, a lone `retry:`, unknown `event:` types, `id:`, an explicit `event: message`,
    and one chunk whose JSON is split over two `data:` lines (the specification joins them with
    a newline: the line-by-line parser this replaced called it malformed)."""
    from resolvers.nora.providers import TextChunk, Usage

    first, second = json.dumps(chunk({"content": "Hel"})), _content("lo, world")
    cut = second.index('"choices"')
    blocks = [
        [": keep-alive"],
        ["retry: 3000"],
        ["event: ping", "data: {}"],
        [f"data: {first}"],
        ["id: 7", f"data:{second[:cut]}", f"data: {second[cut:]}"],
        ["event: message", f"data: {json.dumps(chunk(finish='stop'))}"],
        [": usage follows", f"data: {json.dumps(chunk(usage={'prompt_tokens': 12, 'completion_tokens': 3}))}"],
        ["data: [DONE]"],
    ]
    text = "".join(eol.join(lines) + eol + eol for lines in blocks)
    got = await _provider_chunks(fake, fake.raw(text, piece))
    assert got == [TextChunk("Hel"), TextChunk("lo, world"), Usage(12, 3)]


async def test_a_stream_without_done_ends_at_its_finish_reason(fake):
    from resolvers.nora.providers import TextChunk, Usage

    got = await _provider_chunks(fake, fake.stream(text_events(["a", "b"], prompt=5), done=False))
    assert got == [TextChunk("a"), TextChunk("b"), Usage(5, 2)]


async def test_a_stream_cut_before_its_answer_ended_is_an_error(fake):
    """No finish_reason and no [DONE]; the last event lacks the blank line that dispatches it
    (so, by the specification, it is never delivered)."""
    from resolvers.nora.providers import ProviderError

    text = f"data: {_content('half an ')}\n\ndata: {_content('answer')}\n"
    with pytest.raises(ProviderError) as error:
        await _provider_chunks(fake, fake.raw(text))
    assert error.value.code == "PROVIDER_ERROR"
    assert "ended before the answer did" in str(error.value)


@pytest.mark.parametrize(("text", "content_type", "message"), [
    ('event: error\ndata: {"error": {"message": "model overloaded"}}\n\n', "text/event-stream",
     "The model provider failed: model overloaded"),
    ('data: {"error": "quota"}\n\n', "text/event-stream", "The model provider failed: quota"),
    ("data: {not json\ndata: }\n\n", "text/event-stream", "The model provider sent a malformed chunk"),
    (json.dumps({"choices": []}), "application/json", "The model provider did not answer with an event stream"),
])
async def test_stream_failures_are_provider_errors(fake, text, content_type, message):
    from resolvers.nora.providers import ProviderError

    with pytest.raises(ProviderError) as error:
        await _provider_chunks(fake, fake.raw(text, content_type=content_type))
    assert (error.value.code, str(error.value)) == ("PROVIDER_ERROR", message)
