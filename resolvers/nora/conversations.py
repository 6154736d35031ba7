"""NORA conversations: reads, and the mutations that start, send and cancel.

A conversation is its owner's alone: visible only to the user who started it, while they
still belong to its organization (and can still read its project, if it has one). Anything
else is NOT_FOUND, exactly like a conversation that does not exist.
"""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tortoise import timezone

from models import (
    AuditAction,
    NoraConversation,
    NoraEventType,
    NoraMessage,
    NoraMessageStatus,
    NoraRole,
    NoraUsageEntry,
    Organization,
    UsageKind,
)
from models.snapshot import dump
from resolvers import validation
from resolvers.access import OrgPermission
from resolvers.errors import BadInput, Conflict, NotFound
from resolvers.event.streams import credential_still_valid, follow
from resolvers.nora import engine
from resolvers.nora.events import NORA_LOG
from resolvers.nora.limits import UsageReport, check_quota, check_rate, usage_today
from resolvers.pagination import Order, Page, paginate
from resolvers.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from resolvers.context import Context

CONTENT_MAX = 10_000
TITLE_MAX = 200
CANCEL_WAIT_SECONDS = 3.0
CONVERSATION_ORDER = Order((("updated_at", True),))
MESSAGE_ORDER = Order((("id", False),))


def message_content(value: str) -> str:
    """Plain text: 1 to 10,000 characters, no control characters but newline and tab."""
    if not isinstance(value, str):
        raise BadInput("`content` must be a string", field="content")
    value = value.replace("\r\n", "\n")
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in value):
        raise BadInput(
            "`content` must be plain text: no control characters except newline and tab",
            field="content",
        )
    if len(value) > CONTENT_MAX:
        raise BadInput(f"`content` is longer than {CONTENT_MAX:,} characters", field="content", max=CONTENT_MAX)
    if not value.strip():
        raise BadInput("`content` must not be empty", field="content")
    return value.strip()


def _title_from(content: str) -> str:
    line = content.strip().splitlines()[0]
    return line if len(line) <= 60 else line[:59].rstrip() + "…"


async def visible_conversation(ctx: Context, conversation_id: int) -> NoraConversation:
    conversation = await (await ctx.access.nora_conversations()).get_or_none(id=conversation_id)
    if conversation is None:
        raise NotFound("Conversation")
    return conversation


async def conversation_or_none(ctx: Context, conversation_id: int) -> NoraConversation | None:
    try:
        return await visible_conversation(ctx, conversation_id)
    except NotFound:
        return None


async def visible_message(ctx: Context, message_id: int) -> NoraMessage:
    message = await (await ctx.access.nora_messages()).get_or_none(id=message_id)
    if message is None:
        raise NotFound("NoraMessage")
    return message


async def conversations(
    ctx: Context,
    organization_id: int,
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Page[NoraConversation]:
    await ctx.access.require_org(OrgPermission.USE_NORA, organization_id)
    qs = (await ctx.access.nora_conversations()).filter(organization_id=organization_id)
    return await paginate(qs, CONVERSATION_ORDER, first=first, after=after, last=last, before=before)


async def messages(
    ctx: Context,
    conversation: NoraConversation,
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Page[NoraMessage]:
    return await paginate(
        NoraMessage.filter(conversation_id=conversation.id), MESSAGE_ORDER,
        first=first, after=after, last=last, before=before,
    )


def _runtime(ctx: Context) -> engine.NoraRuntime:
    """The instance's NORA runtime: every context the server builds has one
    (server/graphql_app.py); only the CLI's, which sends no messages, do not."""
    if ctx.nora is None:
        raise RuntimeError("This context has no NORA runtime")
    return ctx.nora


async def usage(ctx: Context, organization_id: int) -> UsageReport:
    await ctx.access.require_org(OrgPermission.READ, organization_id)
    organization = await Organization.get(id=organization_id)
    return await usage_today(ctx.settings, organization)


async def start_conversation(ctx: Context, organization_id: int, project_id: int | None, title: str | None) -> NoraConversation:
    await ctx.access.require_org(OrgPermission.USE_NORA, organization_id)
    if project_id is not None:
        project = await ctx.access.project(project_id)
        if project.organization_id != organization_id:
            raise BadInput("The project must belong to the organization", field="projectId")
    title = validation.text(title or "", "title", max_len=TITLE_MAX, required=False).strip()
    async with unit_of_work(ctx) as work:
        conversation = await NoraConversation.create(
            organization_id=organization_id, project_id=project_id, user_id=ctx.access.user_id, title=title
        )
        await work.audit(
            AuditAction.NORA_CONVERSATION_START, conversation.id,
            organization_id=organization_id, after=dump(conversation),
        )
    return conversation


async def send_message(ctx: Context, conversation_id: int, content: str) -> tuple[NoraConversation, NoraMessage, NoraMessage]:
    """Store the user's message and an empty STREAMING reply, start the reply, return at once."""
    content = message_content(content)
    conversation = await visible_conversation(ctx, conversation_id)
    runtime = _runtime(ctx)
    await check_rate(runtime.limiter, ctx.access.user_id)
    await check_quota(ctx.settings, conversation.organization_id)
    if await NoraMessage.exists(
        conversation_id=conversation.id, role=NoraRole.ASSISTANT, status=NoraMessageStatus.STREAMING
    ):
        raise Conflict(
            "NORA is still answering in this conversation; wait for the reply or cancel it",
            reason="REPLY_IN_PROGRESS",
        )
    now = timezone.now()
    async with unit_of_work(ctx) as work:
        asked = await NoraMessage.create(
            conversation_id=conversation.id, role=NoraRole.USER, status=NoraMessageStatus.COMPLETE,
            content=content, completed_at=now,
        )
        reply = await NoraMessage.create(
            conversation_id=conversation.id, role=NoraRole.ASSISTANT, status=NoraMessageStatus.STREAMING,
            reply_to_id=asked.id, provider=runtime.provider.name, model=runtime.provider.model,
            owner_instance=runtime.instance_id, heartbeat_at=now,
        )
        await NoraUsageEntry.create(
            organization_id=conversation.organization_id, user_id=ctx.access.user_id,
            message_id=asked.id, kind=UsageKind.MESSAGES, amount=1,
        )
        changes: dict[str, datetime | str] = {"updated_at": now}
        if not conversation.title:
            changes["title"] = _title_from(content)
        await NoraConversation.filter(id=conversation.id).update(**changes)
        await work.audit(
            AuditAction.NORA_MESSAGE_SEND, asked.id, organization_id=conversation.organization_id,
            after={"conversationId": conversation.id, "replyId": reply.id, "length": len(content)},
        )
        await work.nora_event(conversation.id, NoraEventType.MESSAGE_STARTED, {
            "messageId": reply.id, "message": dump(reply), "replyTo": dump(asked),
        })
    conversation = await NoraConversation.get(id=conversation.id)
    runtime.launch(ctx, conversation, asked, reply)
    return conversation, asked, reply


async def cancel_message(ctx: Context, message_id: int) -> NoraMessage:
    """Stop a reply, wherever it is being generated; it ends CANCELLED with what was written.
    Cancelling a reply that has already ended changes nothing."""
    runtime = _runtime(ctx)  # before the write: a committed cancel must not end in an error
    message = await visible_message(ctx, message_id)
    if message.role is not NoraRole.ASSISTANT:
        raise BadInput("Only NORA's replies can be cancelled", field="messageId")
    if message.status is not NoraMessageStatus.STREAMING:
        return message
    conversation = await NoraConversation.get(id=message.conversation_id)
    async with unit_of_work(ctx) as work:
        flagged = await NoraMessage.filter(id=message.id, status=NoraMessageStatus.STREAMING).update(cancel_requested=True)
        if flagged:
            await work.audit(
                AuditAction.NORA_MESSAGE_CANCEL, message.id,
                organization_id=conversation.organization_id, after={"conversationId": conversation.id},
            )
    if flagged:
        await runtime.request_cancel(message.id)
        await runtime.wait(message.id, CANCEL_WAIT_SECONDS)
        fresh = await NoraMessage.get(id=message.id)
        orphaned = runtime.orphaned(fresh)
        if fresh.status is NoraMessageStatus.STREAMING and orphaned and message.id not in runtime.running:
            # Its instance stopped beating for it: the generator died with its instance.
            await engine.end_orphan(ctx, fresh, NoraMessageStatus.CANCELLED, None, None)
    return await NoraMessage.get(id=message.id)


async def conversation_events(ctx: Context, conversation_id: int, after: str | None) -> AsyncIterator[Any]:
    """The conversation's gap-free stream (the board's algorithm, on NORA's log)."""
    await visible_conversation(ctx, conversation_id)  # NOT_FOUND like a missing one

    async def still_readable() -> bool:
        if not await credential_still_valid(ctx.access):
            return False
        await ctx.access.reload()
        return await conversation_or_none(ctx, conversation_id) is not None

    async for item in follow(
        ctx, NORA_LOG, conversation_id, after,
        still_readable=still_readable, lost_access="You no longer have access to this conversation",
    ):
        yield item
