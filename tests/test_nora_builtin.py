"""NORA with the builtin provider, end to end over real websockets to a real uvicorn."""

from __future__ import annotations

import asyncio

import pytest

from models import (
    AuditEntry,
    NoraConversation,
    NoraEvent,
    NoraMessage,
    NoraUsageEntry,
    OrgRole,
    ProjectRole,
    Task,
    UsageKind,
)
from resolvers.nora.providers.builtin import HELP
from tests.conftest import gid
from tests.nora_support import (
    BOARD,
    CANCEL,
    CONVERSATION,
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
from tests.wsclient import GraphQLWS


@pytest.mark.both_databases
async def test_create_a_task_streams_every_event_and_the_board_sees_it(live, gql, factory):
    owner, org, project = await make_team(factory)
    conversation = await start(gql, owner.token, org, project)
    board = await GraphQLWS.connect(f"ws://{live}/graphql", token=owner.token)
    await board.subscribe(BOARD, {"p": gid("Project", project.id)})
    ws = await subscribe(live, owner.token, conversation)
    try:
        await asyncio.sleep(0.1)  # the board subscription has no cursor: let it go live
        sent = await send(gql, owner.token, conversation["id"], "create a task Fix login")
        assert sent["userMessage"] == {
            "id": sent["userMessage"]["id"], "role": "USER", "status": "COMPLETE", "content": "create a task Fix login",
        }
        reply = sent["assistantMessage"]
        assert (reply["role"], reply["status"], reply["content"], reply["provider"]) == (
            "ASSISTANT", "STREAMING", "", "builtin",
        )
        assert sent["conversation"]["title"] == "create a task Fix login"

        events = await until_final(ws)
        assert kinds(events) == [
            "MessageStarted", "TextDelta", "ToolCallStarted", "ToolCallFinished", "TextDelta", "MessageCompleted",
        ]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert {e["messageId"] for e in events} == {reply["id"]}
        started, call, finished, done = (
            events[0], *[e for e in events if e["__typename"] in ("ToolCallStarted", "ToolCallFinished")], events[-1]
        )
        assert started["replyTo"]["content"] == "create a task Fix login"
        assert (call["name"], call["arguments"]) == ("create_task", {"title": "Fix login"})
        assert finished["ok"] is True and finished["error"] is None
        assert finished["toolCallId"] == call["toolCallId"]
        assert finished["result"]["task"]["title"] == "Fix login"
        content = done["message"]["content"]
        assert content == text_of(events)
        assert 'Created "Fix login" in To do of Website' in content
        assert done["message"]["status"] == "COMPLETE"
        assert done["usage"]["tokensOut"] > 0 and done["usage"]["tokensIn"] > 0

        created = (await board.next_data())["data"]["boardEvents"]
        assert created["__typename"] == "TaskCreated"
        assert created["task"]["title"] == "Fix login"
        assert created["actor"] == {"name": "Olga"} and created["task"]["createdBy"] == {"name": "Olga"}
    finally:
        await ws.close()
        await board.close()

    task = await Task.get(project_id=project.id)
    assert (task.title, task.created_by_id) == ("Fix login", owner.user.id)
    audit = await AuditEntry.get(action="task.create")
    assert audit.actor_id == owner.user.id and audit.request_id == f"nora-{pk(reply['id'])}"
    assert await AuditEntry.filter(action="nora.message.send").count() == 1
    ledger = {row.kind: row.amount for row in await NoraUsageEntry.filter(organization_id=org.id)}
    assert ledger[UsageKind.MESSAGES] == 1
    assert ledger[UsageKind.TOKENS] == done["usage"]["tokensIn"] + done["usage"]["tokensOut"]

    stored = (await gql.ok(CONVERSATION, {"id": conversation["id"]}, token=owner.token))["noraConversation"]
    roles = [(m["role"], m["status"]) for m in stored["messages"]["nodes"]]
    assert roles == [("USER", "COMPLETE"), ("ASSISTANT", "COMPLETE"), ("TOOL", "COMPLETE")]
    tool = stored["messages"]["nodes"][2]
    assert (tool["toolName"], tool["toolArguments"], tool["replyToId"]) == ("create_task", {"title": "Fix login"}, reply["id"])
    assert tool["toolResult"]["ok"] is True
    assert stored["messages"]["nodes"][1]["content"] == content


async def test_a_viewer_s_nora_refuses_to_write_and_writes_nothing(live, gql, factory):
    owner, org, project = await make_team(factory)
    viewer = await factory.user("Vera")
    await factory.org_member(org, viewer, OrgRole.MEMBER)
    await factory.project_member(project, viewer, ProjectRole.VIEWER)
    conversation = await start(gql, viewer.token, org, project)
    ws = await subscribe(live, viewer.token, conversation)
    try:
        await send(gql, viewer.token, conversation["id"], 'create a task "Sneaky"')
        events = await until_final(ws)
    finally:
        await ws.close()
    finished = next(e for e in events if e["__typename"] == "ToolCallFinished")
    assert finished["ok"] is False and finished["error"]["code"] == "FORBIDDEN"
    done = events[-1]
    assert done["__typename"] == "MessageCompleted"
    assert "I can't do that for you" in done["message"]["content"]
    assert "nothing was changed" in done["message"]["content"]
    assert await Task.all().count() == 0
    assert not await AuditEntry.filter(action="task.create").exists()
    assert not await NoraEvent.filter(type="TaskCreated").exists()
    from models import BoardEvent

    assert await BoardEvent.all().count() == 0


async def test_another_users_or_orgs_conversation_is_not_found_like_a_missing_one(live, gql, factory):
    owner, org, project = await make_team(factory)
    colleague = await factory.user("Colin")  # same org, same project, still not his
    await factory.org_member(org, colleague, OrgRole.ADMIN)
    stranger = await factory.user("Stranger")
    await factory.org(stranger)
    conversation = await start(gql, owner.token, org, project)
    sent = await send(gql, owner.token, conversation["id"], "hello")
    await settled(pk(sent["assistantMessage"]["id"]))
    missing_conversation = gid("NoraConversation", 987654)
    missing_message = gid("NoraMessage", 987654)

    def strip(error: dict) -> dict:
        return {k: v for k, v in error.items() if k not in ("locations", "path")}

    for outsider in (colleague, stranger):
        for missing, real in ((missing_conversation, conversation["id"]),):
            assert (await gql.ok(CONVERSATION, {"id": real}, token=outsider.token)) == {"noraConversation": None}
            node = await gql.ok("query($id: ID!) { node(id: $id) { id } }", {"id": real}, token=outsider.token)
            assert node == {"node": None}
            seen = await gql.error(
                "mutation($i: SendNoraMessageInput!) { sendNoraMessage(input: $i) { conversation { id } } }",
                {"i": {"conversationId": real, "content": "hi"}}, token=outsider.token,
            )
            nothing = await gql.error(
                "mutation($i: SendNoraMessageInput!) { sendNoraMessage(input: $i) { conversation { id } } }",
                {"i": {"conversationId": missing, "content": "hi"}}, token=outsider.token,
            )
            assert seen["extensions"]["code"] == "NOT_FOUND" and strip(seen) == strip(nothing)
        seen = await gql.error(CANCEL, {"i": {"messageId": sent["assistantMessage"]["id"]}}, token=outsider.token)
        nothing = await gql.error(CANCEL, {"i": {"messageId": missing_message}}, token=outsider.token)
        assert seen["extensions"]["code"] == "NOT_FOUND" and strip(seen) == strip(nothing)

        ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=outsider.token)
        try:
            results = []
            for target in (conversation["id"], missing_conversation):
                await ws.subscribe("subscription($c: ID!) { noraEvents(conversationId: $c) { seq } }", {"c": target})
                results.append(await ws.next_data())
                await ws.expect_complete()
            assert results[0]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
            assert [strip(r["errors"][0]) for r in results[:1]] == [strip(r["errors"][0]) for r in results[1:]]
        finally:
            await ws.close()
        listed = await gql.ok(
            "query($o: ID!) { noraConversations(organizationId: $o) { totalCount } }",
            {"o": gid("Organization", org.id)}, token=colleague.token,
        )
        assert listed == {"noraConversations": {"totalCount": 0}}
    assert await NoraMessage.filter(conversation_id=pk(conversation["id"])).count() == 2  # nothing added


async def test_the_21st_message_in_a_minute_is_rate_limited(gql, factory):
    owner, org, project = await make_team(factory)
    conversations = [await start(gql, owner.token, org, project) for _ in range(21)]
    replies = []
    for conversation in conversations[:20]:
        replies.append((await send(gql, owner.token, conversation["id"], "hi"))["assistantMessage"]["id"])
    error = await gql.error(
        "mutation($i: SendNoraMessageInput!) { sendNoraMessage(input: $i) { conversation { id } } }",
        {"i": {"conversationId": conversations[20]["id"], "content": "one too many"}}, token=owner.token,
    )
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert isinstance(error["extensions"]["retryAfter"], int) and 1 <= error["extensions"]["retryAfter"] <= 3
    assert not await NoraMessage.filter(conversation_id=pk(conversations[20]["id"])).exists()
    # Another user is not affected.
    other = await factory.user("Otto")
    await factory.org_member(org, other, OrgRole.MEMBER)
    theirs = await start(gql, other.token, org)
    replies.append((await send(gql, other.token, theirs["id"], "hi"))["assistantMessage"]["id"])
    for reply in replies:
        assert (await settled(pk(reply))).content == HELP


async def test_quota_exceeded_before_any_reply_and_usage_reports_it(gql, factory):
    owner, org, project = await make_team(factory)
    await NoraUsageEntry.create(organization=org, user=owner.user, kind=UsageKind.TOKENS, amount=50_000)
    conversation = await start(gql, owner.token, org, project)
    error = await gql.error(
        "mutation($i: SendNoraMessageInput!) { sendNoraMessage(input: $i) { conversation { id } } }",
        {"i": {"conversationId": conversation["id"], "content": "summarize the board"}}, token=owner.token,
    )
    assert error["extensions"]["code"] == "QUOTA_EXCEEDED"
    assert (error["extensions"]["quota"], error["extensions"]["used"]) == (50_000, 50_000)
    assert not await NoraMessage.exists()
    usage = await gql.ok(
        "query($o: ID!) { noraUsage(organizationId: $o) { plan tokensUsed messagesSent tokenQuota tokensRemaining resetsAt } }",
        {"o": gid("Organization", org.id)}, token=owner.token,
    )
    assert usage["noraUsage"] | {"resetsAt": None} == {
        "plan": "FREE", "tokensUsed": 50_000, "messagesSent": 0, "tokenQuota": 50_000, "tokensRemaining": 0,
        "resetsAt": None,
    }
    assert usage["noraUsage"]["resetsAt"].endswith("T00:00:00+00:00")

    from models import Plan

    org.plan = Plan.ENTERPRISE
    await org.save()
    sent = await send(gql, owner.token, conversation["id"], "summarize the board")
    assert (await settled(pk(sent["assistantMessage"]["id"]))).status.value == "complete"
    usage = await gql.ok(
        "query($o: ID!) { noraUsage(organizationId: $o) { tokenQuota tokensRemaining messagesSent } }",
        {"o": gid("Organization", org.id)}, token=owner.token,
    )
    assert usage["noraUsage"] == {"tokenQuota": None, "tokensRemaining": None, "messagesSent": 1}


@pytest.mark.both_databases
async def test_late_subscriber_with_after_replays_what_it_missed_then_goes_live(live, gql, factory):
    owner, org, project = await make_team(factory)
    await factory.user("Ada")
    conversation = await start(gql, owner.token, org, project)
    sent = await send(gql, owner.token, conversation["id"], "summarize the board")
    reply = await settled(pk(sent["assistantMessage"]["id"]))

    ws = await subscribe(live, owner.token, conversation)  # after = the cursor before the send
    try:
        replayed = await until_final(ws)
        assert kinds(replayed) == [
            "MessageStarted", "TextDelta", "ToolCallStarted", "ToolCallFinished", "TextDelta", "MessageCompleted",
        ]
        assert text_of(replayed) == reply.content == replayed[-1]["message"]["content"]
        assert "Website: 0 open tasks" in reply.content
        # Resuming from the middle gets exactly the rest.
        middle = replayed[2]
        again = await subscribe(live, owner.token, conversation, after=middle["cursor"])
        try:
            rest = await until_final(again)
            assert [e["seq"] for e in rest] == [e["seq"] for e in replayed[3:]]
        finally:
            await again.close()
        # ...and then the first stream is live.
        sent = await send(gql, owner.token, conversation["id"], "what can you do?")
        live_events = await until_final(ws)
        assert live_events[0]["seq"] == replayed[-1]["seq"] + 1
        assert kinds(live_events) == ["MessageStarted", "TextDelta", "MessageCompleted"]
        assert live_events[-1]["message"]["content"] == HELP == text_of(live_events)
    finally:
        await ws.close()


@pytest.mark.both_databases
async def test_cancel_a_builtin_reply_keeps_what_was_written(gql, factory):
    owner, org, project = await make_team(factory)
    conversation = await start(gql, owner.token, org, project)
    sent = await send(gql, owner.token, conversation["id"], "tell me a story")
    reply_id = sent["assistantMessage"]["id"]
    while not (await NoraMessage.get(id=pk(reply_id))).content:
        await asyncio.sleep(0.01)
    cancelled = (await gql.ok(CANCEL, {"i": {"messageId": reply_id}}, token=owner.token))["cancelNoraMessage"]
    assert cancelled["message"]["status"] == "CANCELLED"
    assert cancelled["message"]["content"] and HELP.startswith(cancelled["message"]["content"])
    assert cancelled["message"]["content"] != HELP
    final = await NoraEvent.filter(conversation_id=pk(conversation["id"])).order_by("-seq").first()
    assert final.type == "MessageCancelled"
    # Idempotent, and the conversation accepts the next message.
    again = (await gql.ok(CANCEL, {"i": {"messageId": reply_id}}, token=owner.token))["cancelNoraMessage"]
    assert again["message"] == cancelled["message"]
    await send(gql, owner.token, conversation["id"], "hello again")


async def test_one_reply_at_a_time_per_conversation(gql, factory):
    owner, org, project = await make_team(factory)
    conversation = await start(gql, owner.token, org, project)
    sent = await send(gql, owner.token, conversation["id"], "hi")
    error = await gql.error(
        "mutation($i: SendNoraMessageInput!) { sendNoraMessage(input: $i) { conversation { id } } }",
        {"i": {"conversationId": conversation["id"], "content": "and another"}}, token=owner.token,
    )
    assert (error["extensions"]["code"], error["extensions"]["reason"]) == ("CONFLICT", "REPLY_IN_PROGRESS")
    await settled(pk(sent["assistantMessage"]["id"]))
    assert await NoraMessage.filter(conversation_id=pk(conversation["id"])).count() == 2


@pytest.mark.parametrize(
    "content, field_error",
    [
        ("x" * 10_001, "longer than 10,000"),
        ("nul \x00 byte", "NUL characters"),
        ("bell \x07", "plain text"),
        ("escape \x1b[31m", "plain text"),
        ("   \n\t ", "must not be empty"),
    ],
)
async def test_message_content_is_plain_text_up_to_10000_characters(gql, factory, content, field_error):
    owner, org, project = await make_team(factory)
    conversation = await start(gql, owner.token, org, project)
    error = await gql.error(
        "mutation($i: SendNoraMessageInput!) { sendNoraMessage(input: $i) { conversation { id } } }",
        {"i": {"conversationId": conversation["id"], "content": content}}, token=owner.token,
    )
    assert (error["extensions"]["code"], error["extensions"]["field"]) == ("BAD_USER_INPUT", "content")
    assert field_error in error["message"]
    assert not await NoraMessage.exists() and not await NoraUsageEntry.exists()


async def test_newlines_tabs_and_the_full_length_are_accepted(gql, factory):
    owner, org, project = await make_team(factory)
    conversation = await start(gql, owner.token, org, project, title="Notes")
    body = "line one\r\n\tline two " + "y" * (10_000 - 21)
    sent = await send(gql, owner.token, conversation["id"], body)
    assert sent["userMessage"]["content"] == body.replace("\r\n", "\n")
    assert sent["conversation"]["title"] == "Notes"
    await settled(pk(sent["assistantMessage"]["id"]))


async def test_conversations_are_listed_for_their_owner_only(gql, factory):
    owner, org, project = await make_team(factory)
    first = await start(gql, owner.token, org, project, title="First")
    second = await start(gql, owner.token, org, title="Second")
    listed = await gql.ok(
        "query($o: ID!) { noraConversations(organizationId: $o) { totalCount nodes { id title project { name } owner { name } } } }",
        {"o": gid("Organization", org.id)}, token=owner.token,
    )
    assert {n["title"] for n in listed["noraConversations"]["nodes"]} == {"First", "Second"}
    assert listed["noraConversations"]["totalCount"] == 2
    assert await NoraConversation.filter(user_id=owner.user.id).count() == 2
    assert first["project"] == {"name": "Website"} and second["project"] is None
    assert first["owner"] == {"name": "Olga"}
    sent = await send(gql, owner.token, first["id"], "hi")
    await settled(pk(sent["assistantMessage"]["id"]))
    found = await gql.ok(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id ... on NoraConversation { title } ... on NoraMessage { role status } } }",
        {"ids": [first["id"], sent["userMessage"]["id"], sent["assistantMessage"]["id"]]}, token=owner.token,
    )
    assert [{k: v for k, v in n.items() if k != "id"} for n in found["nodes"]] == [
        {"title": "First"}, {"role": "USER", "status": "COMPLETE"}, {"role": "ASSISTANT", "status": "COMPLETE"},
    ]


async def test_start_checks_the_organization_and_project(gql, factory):
    owner, org, project = await make_team(factory)
    stranger = await factory.user("Stranger")
    other_org = await factory.org(stranger)
    other_project = await factory.project(other_org, stranger, "Theirs")
    code = await gql.code(
        "mutation($i: StartNoraConversationInput!) { startNoraConversation(input: $i) { conversation { id } } }",
        {"i": {"organizationId": gid("Organization", other_org.id)}}, token=owner.token,
    )
    assert code == "NOT_FOUND"
    code = await gql.code(
        "mutation($i: StartNoraConversationInput!) { startNoraConversation(input: $i) { conversation { id } } }",
        {"i": {"organizationId": gid("Organization", org.id), "projectId": gid("Project", other_project.id)}},
        token=owner.token,
    )
    assert code == "NOT_FOUND"
    assert not await NoraConversation.exists()
