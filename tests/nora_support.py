"""Shared helpers for the NORA tests: documents, a team, and event collection."""

from __future__ import annotations

import asyncio
import time

from models import NoraMessage, NoraMessageStatus, Plan
from tests.conftest import gid
from tests.wsclient import GraphQLWS

EVENTS = """subscription($c: ID!, $after: String) {
  noraEvents(conversationId: $c, after: $after) {
    __typename cursor seq messageId conversationId
    ... on MessageStarted { message { id role status content provider model } replyTo { id role content } }
    ... on TextDelta { index offset text }
    ... on ToolCallStarted { toolCallId name arguments }
    ... on ToolCallFinished { toolCallId name ok result error { code message } }
    ... on MessageCompleted { message { id status content tokensIn tokensOut latencyMs } usage { tokensIn tokensOut latencyMs } }
    ... on MessageFailed { code errorMessage message { id status content errorCode } }
    ... on MessageCancelled { message { id status content } }
  }
}"""
BOARD = """subscription($p: ID!) { boardEvents(projectId: $p) {
  __typename seq actor { name } ... on TaskCreated { task { id title createdBy { name } } } } }"""
START = """mutation($i: StartNoraConversationInput!) {
  startNoraConversation(input: $i) { conversation { id title eventCursor project { name } owner { name } } }
}"""
SEND = """mutation($i: SendNoraMessageInput!) { sendNoraMessage(input: $i) {
  conversation { id title }
  userMessage { id role status content }
  assistantMessage { id role status content provider model }
} }"""
CANCEL = """mutation($i: CancelNoraMessageInput!) { cancelNoraMessage(input: $i) {
  message { id status content } } }"""
CONVERSATION = """query($id: ID!) { noraConversation(id: $id) {
  id title eventCursor
  messages { totalCount nodes { id role status content toolName toolArguments toolResult tokensIn tokensOut errorCode replyToId } }
} }"""
FINAL = frozenset({"MessageCompleted", "MessageFailed", "MessageCancelled"})


async def make_team(factory):
    owner = await factory.user("Olga")
    org = await factory.org(owner, plan=Plan.FREE)  # the quotas tested are the free plan's
    project = await factory.project(org, owner, "Website")
    return owner, org, project


async def start(gql, token: str, org, project=None, title: str | None = None) -> dict:
    i = {"organizationId": gid("Organization", org.id)}
    if project is not None:
        i["projectId"] = gid("Project", project.id)
    if title is not None:
        i["title"] = title
    data = await gql.ok(START, {"i": i}, token=token)
    return data["startNoraConversation"]["conversation"]


async def send(gql, token: str, conversation_id: str, content: str) -> dict:
    data = await gql.ok(SEND, {"i": {"conversationId": conversation_id, "content": content}}, token=token)
    return data["sendNoraMessage"]


async def subscribe(live: str, token: str, conversation: dict, after: str | None = "start") -> GraphQLWS:
    """A noraEvents subscription; by default from the conversation's start (no race with a send)."""
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=token)
    cursor = conversation["eventCursor"] if after == "start" else after
    await ws.subscribe(EVENTS, {"c": conversation["id"], "after": cursor})
    return ws


async def until_final(ws: GraphQLWS, timeout: float = 10.0) -> list[dict]:
    events = []
    deadline = time.monotonic() + timeout
    while True:
        result = await ws.next_data(timeout=max(0.1, deadline - time.monotonic()))
        assert not result.get("errors"), result
        event = result["data"]["noraEvents"]
        events.append(event)
        if event["__typename"] in FINAL:
            return events


async def settled(message_id: int, timeout: float = 10.0) -> NoraMessage:
    """Poll the database until the message has left STREAMING."""
    deadline = time.monotonic() + timeout
    while True:
        message = await NoraMessage.get(id=message_id)
        if message.status is not NoraMessageStatus.STREAMING:
            return message
        if time.monotonic() > deadline:
            raise AssertionError(f"message {message_id} still streaming after {timeout} s")
        await asyncio.sleep(0.02)


def pk(global_id: str) -> int:
    from resolvers.ids import parse_global_id

    return parse_global_id(global_id)[1]


def kinds(events: list[dict]) -> list[str]:
    """Event types with runs of TextDelta collapsed, e.g. [MessageStarted, TextDelta, ...]."""
    out: list[str] = []
    for event in events:
        name = event["__typename"]
        if not (name == "TextDelta" and out and out[-1] == "TextDelta"):
            out.append(name)
    return out


def text_of(events: list[dict]) -> str:
    deltas = [e for e in events if e["__typename"] == "TextDelta"]
    assert [d["index"] for d in deltas] == list(range(len(deltas)))
    text = ""
    for delta in deltas:
        assert delta["offset"] == len(text)
        text += delta["text"]
    return text
