"""NORA, the assistant: conversations, messages, usage, the mutations, and the typed event
stream of a conversation (`noraEvents`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from models import NoraConversation as ConversationModel
from models import NoraEvent as EventModel
from models import NoraEventType, snapshot
from models import NoraMessage as MessageModel
from models import NoraMessageStatus as MessageStatusEnum
from models import NoraRole as NoraRoleEnum
from resolvers.event import streams
from resolvers.ids import decode_id, decode_optional, to_global_id
from resolvers.nora import conversations as nora
from resolvers.nora.events import NORA_LOG
from resolvers.nora.limits import UsageReport
from schema import sharing
from schema.common import (
    After,
    Before,
    Connection,
    First,
    Info,
    Last,
    Node,
    Plan,
    ctx,
    described_enum,
    model_type_check,
    node_id,
)
from schema.permissions import OrgPermission, in_org, mutation, own

if TYPE_CHECKING:
    from schema.identity import User
    from schema.org import Organization
    from schema.project import Project

OrganizationRef = Annotated["Organization", strawberry.lazy("schema.org")]
ProjectRef = Annotated["Project", strawberry.lazy("schema.project")]
UserRef = Annotated["User", strawberry.lazy("schema.identity")]

NoraRole = described_enum(
    NoraRoleEnum,
    "Who wrote a NORA message.",
    {
        "USER": "The person asking.",
        "ASSISTANT": "NORA's reply.",
        "TOOL": "A tool call NORA made while answering, with its arguments and result.",
    },
    name="NoraRole",
)
NoraMessageStatus = described_enum(
    MessageStatusEnum,
    "STREAMING while NORA is answering; then COMPLETE, FAILED or CANCELLED.",
    {
        "STREAMING": "Being written; follow it on `noraEvents`.",
        "COMPLETE": "Finished normally.",
        "FAILED": "Ended by an error (see `errorCode`); the content is what was written before.",
        "CANCELLED": "Stopped by cancelNoraMessage; the content is what was written before.",
    },
    name="NoraMessageStatus",
)


def _gid(type_name: str, pk: int | None) -> strawberry.ID | None:
    return None if pk is None else strawberry.ID(to_global_id(type_name, pk))


@strawberry.type(
    description="One message of a NORA conversation: the user's text, NORA's (streamed) "
    "reply, or a tool call NORA made while answering (role TOOL)."
)
class NoraMessage(Node):
    is_type_of = model_type_check(MessageModel)
    role: NoraRole = strawberry.field(description="Who wrote it.")
    content: str = strawberry.field(description="For a STREAMING reply: what was stored so far.")
    status: NoraMessageStatus = strawberry.field(description="Where the message is in its life.")
    tool_name: str | None = strawberry.field(description="For role TOOL: the tool called.")
    tokens_in: int = strawberry.field(description="Prompt tokens a reply used; 0 where none were counted.")
    tokens_out: int = strawberry.field(
        description="Completion tokens a reply used; 0 where none were counted."
    )
    model: str = strawberry.field(description='The model that wrote a reply; "" where none did.')
    provider: str = strawberry.field(
        description='The provider that wrote a reply (builtin, openai); "" where none did.'
    )
    latency_ms: int | None = strawberry.field(
        description="Milliseconds from the request to the end of the reply."
    )
    error_code: str | None = strawberry.field(
        description="Why a FAILED reply failed: PROVIDER_ERROR, PROVIDER_TIMEOUT, "
        "PROVIDER_UNAVAILABLE, PROVIDER_RATE_LIMITED, QUOTA_EXCEEDED, INTERRUPTED, SESSION_ENDED, "
        "API_KEY_REVOKED, INTERNAL_ERROR."
    )
    error_message: str | None = strawberry.field(description="Why a FAILED reply failed, for people.")
    created_at: datetime = strawberry.field(description="When the message was created.")
    updated_at: datetime = strawberry.field(description="When the message last changed.")
    completed_at: datetime | None = strawberry.field(
        description="When it stopped streaming (COMPLETE, FAILED or CANCELLED)."
    )

    id: strawberry.ID = node_id("NoraMessage")

    @strawberry.field(description="A reply: the user message it answers. A tool call: its reply.")
    def reply_to_id(self) -> strawberry.ID | None:
        return _gid("NoraMessage", self.reply_to_id)

    @strawberry.field(description="The conversation it belongs to.")
    def conversation_id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("NoraConversation", self.conversation_id))

    @strawberry.field(description="For role TOOL: the arguments NORA passed, as an object.")
    def tool_arguments(self) -> JSON | None:
        return self.tool_arguments

    @strawberry.field(
        description='For role TOOL: `{ok: true, result}` or `{ok: false, error: {code, message}}`.'
    )
    def tool_result(self) -> JSON | None:
        return self.tool_result


@strawberry.type(description="A page of NORA messages, oldest first.")
class NoraMessageConnection(Connection[NoraMessage]):
    pass


@strawberry.type(description="A conversation with NORA. Only its owner can see it.")
class NoraConversation(Node):
    is_type_of = model_type_check(ConversationModel)
    title: str = strawberry.field(
        description="At most 200 characters; by default the first message's first line."
    )
    created_at: datetime = strawberry.field(description="When the conversation was started.")
    updated_at: datetime = strawberry.field(description="When the conversation last changed.")

    id: strawberry.ID = node_id("NoraConversation")

    @strawberry.field(
        description="Subscribe to `noraEvents` with this as `after` to receive exactly what "
        "happens after this read."
    )
    def event_cursor(self) -> str:
        return NORA_LOG.encode_cursor(self.id, self.event_seq)

    @strawberry.field(description="The organization the conversation runs in (and bills).")
    async def organization(self, info: Info) -> OrganizationRef:
        return await ctx(info).loaders.organization.load(self.organization_id)

    @strawberry.field(description="The project NORA works on by default, if any.")
    async def project(self, info: Info) -> ProjectRef | None:
        loaders = ctx(info).loaders
        return await loaders.load_optional(loaders.project, self.project_id)

    @strawberry.field(description="The user who started it; the only one who can see it.")
    async def owner(self, info: Info) -> UserRef:
        return await ctx(info).loaders.user.load(self.user_id)

    @strawberry.field(description="Oldest first.")
    async def messages(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> NoraMessageConnection:
        page = await nora.messages(ctx(info), self, first=first, after=after, last=last, before=before)
        return NoraMessageConnection.of(page)


@strawberry.type(description="A page of NORA conversations, most recent first.")
class NoraConversationConnection(Connection[NoraConversation]):
    pass


@strawberry.type(description="Today's (UTC) NORA use of an organization against its plan's quota.")
class NoraUsage:
    _report: strawberry.Private[UsageReport]

    @strawberry.field(description="The organization.")
    def organization(self) -> OrganizationRef:
        return self._report.organization

    @strawberry.field(description="Its plan, which sets the quota.")
    def plan(self) -> Plan:
        return self._report.organization.plan

    @strawberry.field(description="The UTC day counted.")
    def day(self) -> date:
        return self._report.day

    @strawberry.field(description="Tokens (in and out) used today by the organization's members.")
    def tokens_used(self) -> int:
        return self._report.tokens_used

    @strawberry.field(description="Messages sent to NORA today in the organization.")
    def messages_sent(self) -> int:
        return self._report.messages_sent

    @strawberry.field(description="Tokens a day; null means unlimited (enterprise).")
    def token_quota(self) -> int | None:
        return self._report.token_quota

    @strawberry.field(description="Null means unlimited.")
    def tokens_remaining(self) -> int | None:
        return self._report.tokens_remaining

    @strawberry.field(description="Next midnight UTC, when the count starts again.")
    def resets_at(self) -> datetime:
        return self._report.resets_at


# -- events -----------------------------------------------------------------------------------


@strawberry.interface(description="Something that happened in a NORA conversation. Resume with `after: cursor`.")
class NoraEvent:
    # Plain fields, filled once per event and shared by every subscriber of this process
    # (see `_typed`): a delta fans out to many clients, and plain fields skip Strawberry's
    # resolver machinery.
    cursor: str = strawberry.field(description="Pass as `after` to resume right after this event.")
    seq: int = strawberry.field(description="Position in the conversation's event log; increases by one.")
    occurred_at: datetime = strawberry.field(description="When it happened.")
    conversation_id: strawberry.ID = strawberry.field(description="The conversation.")
    message_id: strawberry.ID | None = strawberry.field(description="The reply this event belongs to.")
    _e: strawberry.Private[EventModel]

    @property
    def payload(self) -> dict:
        return self._e.payload


def _message(event: NoraEvent, key: str = "message") -> MessageModel | None:
    return snapshot.load(MessageModel, event.payload.get(key))


@strawberry.type(description="NORA started a reply (status STREAMING).")
class MessageStarted(NoraEvent):
    @strawberry.field(description="The reply, as started.")
    def message(self) -> NoraMessage:
        return _message(self)

    @strawberry.field(description="The user's message it answers.")
    def reply_to(self) -> NoraMessage | None:
        return _message(self, "replyTo")


@strawberry.type(description="More text of a reply. Deltas of one reply, in index order, add up to its content.")
class TextDelta(NoraEvent):
    index: int = strawberry.field(description="0, 1, 2, ... within the reply.")
    offset: int = strawberry.field(description="Where `text` starts in the reply's content (characters).")
    text: str = strawberry.field(description="The new text.")


@strawberry.type(description="NORA called a tool (acting as the user, with the user's permissions).")
class ToolCallStarted(NoraEvent):
    tool_call_id: strawberry.ID = strawberry.field(description="The NoraMessage (role TOOL) recording this call.")
    name: str = strawberry.field(description="The tool's name, e.g. create_task.")

    @strawberry.field(description="The arguments NORA passed, as an object.")
    def arguments(self) -> JSON | None:
        return self.payload.get("arguments")


@strawberry.type(description="Why a tool call failed.")
class NoraToolError:
    code: str = strawberry.field(description="FORBIDDEN, NOT_FOUND, BAD_USER_INPUT, AMBIGUOUS, CONFLICT, ...")
    message: str = strawberry.field(description="What went wrong, for people (and for NORA).")


@strawberry.type(description="A tool call ended: `ok` with a result, or an error.")
class ToolCallFinished(NoraEvent):
    tool_call_id: strawberry.ID = strawberry.field(
        description="The NoraMessage (role TOOL) recording this call."
    )
    name: str = strawberry.field(description="The tool's name.")
    ok: bool = strawberry.field(description="The call succeeded.")

    @strawberry.field(description="The tool's result when ok.")
    def result(self) -> JSON | None:
        return self.payload.get("result")

    @strawberry.field(description="The error when not ok.")
    def error(self) -> NoraToolError | None:
        error = self.payload.get("error")
        return NoraToolError(code=error.get("code", ""), message=error.get("message", "")) if error else None


@strawberry.type(description="What a reply used.")
class NoraTokenUsage:
    tokens_in: int = strawberry.field(description="Prompt tokens.")
    tokens_out: int = strawberry.field(description="Completion tokens.")
    latency_ms: int | None = strawberry.field(
        description="Milliseconds from the request to the end of the reply."
    )


@strawberry.type(description="The reply is complete; `message` holds its final content.")
class MessageCompleted(NoraEvent):
    @strawberry.field(description="The reply, complete.")
    def message(self) -> NoraMessage:
        return _message(self)

    @strawberry.field(description="Tokens and time the reply used.")
    def usage(self) -> NoraTokenUsage:
        usage = self.payload["usage"]
        return NoraTokenUsage(
            tokens_in=usage["tokensIn"], tokens_out=usage["tokensOut"], latency_ms=usage.get("latencyMs")
        )


@strawberry.type(description="The reply failed; `message` holds what was written before.")
class MessageFailed(NoraEvent):
    code: str = strawberry.field(
        description="PROVIDER_ERROR, PROVIDER_TIMEOUT, QUOTA_EXCEEDED, INTERRUPTED, SESSION_ENDED, ..."
    )
    error_message: str = strawberry.field(description="What went wrong, for people.")

    @strawberry.field(description="The reply, status FAILED.")
    def message(self) -> NoraMessage:
        return _message(self)


@strawberry.type(description="The reply was cancelled; `message` holds what was written before.")
class MessageCancelled(NoraEvent):
    @strawberry.field(description="The reply, status CANCELLED.")
    def message(self) -> NoraMessage:
        return _message(self)


@strawberry.type(
    description="The cursor is older than the events kept: reload the conversation, then "
    "subscribe again with this event's cursor."
)
class NoraResyncRequired(NoraEvent):
    @strawberry.field(description="Why a resync is needed, for people.")
    def reason(self) -> str:
        return "The requested cursor is older than the retained event log"


def _fields(event: EventModel) -> dict:
    payload = event.payload
    return {
        "_e": event,
        "cursor": NORA_LOG.encode_cursor(event.conversation_id, event.seq),
        "seq": event.seq,
        "occurred_at": event.created_at,
        "conversation_id": strawberry.ID(to_global_id("NoraConversation", event.conversation_id)),
        "message_id": _gid("NoraMessage", payload.get("messageId")),
    }


def _extra(event: EventModel) -> dict:
    p = event.payload
    if event.type == "TextDelta":
        return {"index": p["index"], "offset": p["offset"], "text": p["text"]}
    if event.type in ("ToolCallStarted", "ToolCallFinished"):
        extra = {"tool_call_id": strawberry.ID(to_global_id("NoraMessage", p["toolCallId"])), "name": p["name"]}
        return extra | ({"ok": bool(p.get("ok"))} if event.type == "ToolCallFinished" else {})
    if event.type == "MessageFailed":
        return {"code": p.get("code") or "INTERNAL_ERROR", "error_message": p.get("error") or ""}
    return {}


# Each stored event type and the GraphQL type that shows it, spelled out (checked both ways by
# tests/test_event_types.py).
NORA_EVENT_TYPES: dict[NoraEventType, type[NoraEvent]] = {
    NoraEventType.MESSAGE_STARTED: MessageStarted,
    NoraEventType.TEXT_DELTA: TextDelta,
    NoraEventType.TOOL_CALL_STARTED: ToolCallStarted,
    NoraEventType.TOOL_CALL_FINISHED: ToolCallFinished,
    NoraEventType.MESSAGE_COMPLETED: MessageCompleted,
    NoraEventType.MESSAGE_FAILED: MessageFailed,
    NoraEventType.MESSAGE_CANCELLED: MessageCancelled,
}
_BY_STORED = {member.value: cls for member, cls in NORA_EVENT_TYPES.items()}


def _typed(item) -> NoraEvent | None:
    if isinstance(item, streams.LogGap):
        marker = EventModel(
            conversation_id=item.key, seq=item.seq, type="NoraResyncRequired", payload={},
            created_at=item.occurred_at,
        )
        return NoraResyncRequired(**_fields(marker))
    # A live event is one instance shared by every subscriber here: type it once.
    typed = getattr(item, "_pcg_typed", None)
    if typed is None:
        cls = _BY_STORED.get(item.type)
        if cls is None:
            return None
        typed = cls(**_fields(item), **_extra(item))
        item._pcg_typed = typed
    return typed


# -- inputs, payloads, roots ------------------------------------------------------------------


@strawberry.input(description="A new NORA conversation.")
class StartNoraConversationInput:
    organization_id: strawberry.ID = strawberry.field(
        description="The organization; any member may use NORA, within its plan's quota."
    )
    project_id: strawberry.ID | None = strawberry.field(
        default=None, description="The project NORA works on unless told otherwise."
    )
    title: str | None = strawberry.field(
        default=None, description="At most 200 characters; by default the first message's first line."
    )


@strawberry.input(description="A message to NORA.")
class SendNoraMessageInput:
    conversation_id: strawberry.ID = strawberry.field(description="One of your conversations.")
    content: str = strawberry.field(
        description="Plain text, 1 to 10,000 characters; no control characters but newline and tab."
    )


@strawberry.input(description="The reply to stop.")
class CancelNoraMessageInput:
    message_id: strawberry.ID = strawberry.field(description="A STREAMING reply.")


@strawberry.type(description="The result of startNoraConversation.")
class StartNoraConversationPayload:
    conversation: NoraConversation | None = strawberry.field(description="The new conversation.")


@strawberry.type(description="The result of sendNoraMessage.")
class SendNoraMessagePayload:
    conversation: NoraConversation | None = strawberry.field(description="The conversation.")
    user_message: NoraMessage | None = strawberry.field(description="Your message, stored.")
    assistant_message: NoraMessage | None = strawberry.field(
        description="Status STREAMING: follow it with the `noraEvents` subscription."
    )


@strawberry.type(description="The result of cancelNoraMessage.")
class CancelNoraMessagePayload:
    message: NoraMessage | None = strawberry.field(description="The reply as it is now.")


@strawberry.type(description="NORA queries.")
class NoraQueries:
    @strawberry.field(description="The viewer's NORA conversations in an organization, most recent first.")
    async def nora_conversations(
        self,
        info: Info,
        organization_id: Annotated[
            strawberry.ID, strawberry.argument(description="The organization; members.")
        ],
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> NoraConversationConnection:
        page = await nora.conversations(
            ctx(info), decode_id(organization_id, "Organization", "organizationId"),
            first=first, after=after, last=last, before=before,
        )
        return NoraConversationConnection.of(page)

    @strawberry.field(description="One of the viewer's conversations; null if missing or someone else's.")
    async def nora_conversation(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="A NoraConversation ID.")]
    ) -> NoraConversation | None:
        return await nora.conversation_or_none(ctx(info), decode_id(id, "NoraConversation"))

    @strawberry.field(description="Today's NORA use of an organization and its quota. Members.")
    async def nora_usage(
        self,
        info: Info,
        organization_id: Annotated[strawberry.ID, strawberry.argument(description="The organization.")],
    ) -> NoraUsage:
        report = await nora.usage(ctx(info), decode_id(organization_id, "Organization", "organizationId"))
        return NoraUsage(_report=report)


@strawberry.type(description="NORA mutations.")
class NoraMutations:
    @mutation(
        requires=in_org(OrgPermission.USE_NORA, also="about a project they can see, if any"),
        description='Start a conversation with NORA in an organization, optionally about a project.',
    )
    async def start_nora_conversation(
        self,
        info: Info,
        input: Annotated[
            StartNoraConversationInput, strawberry.argument(description="The conversation to start.")
        ],
    ) -> StartNoraConversationPayload:
        conversation = await nora.start_conversation(
            ctx(info),
            decode_id(input.organization_id, "Organization", "organizationId"),
            decode_optional(input.project_id, "Project", "projectId"),
            input.title,
        )
        return StartNoraConversationPayload(conversation=conversation)

    @mutation(
        requires=own("conversation"),
        description="Ask NORA. Returns at once with your message and NORA's reply in status STREAMING; "
        'the reply arrives on `noraEvents`. RATE_LIMITED (extensions.retryAfter) beyond 20 '
        "messages a minute; QUOTA_EXCEEDED when the organization's daily tokens are used.",
    )
    async def send_nora_message(
        self,
        info: Info,
        input: Annotated[
            SendNoraMessageInput, strawberry.argument(description="The conversation and your message.")
        ],
    ) -> SendNoraMessagePayload:
        conversation, asked, reply = await nora.send_message(
            ctx(info), decode_id(input.conversation_id, "NoraConversation", "conversationId"), input.content
        )
        return SendNoraMessagePayload(conversation=conversation, user_message=asked, assistant_message=reply)

    @mutation(
        requires=own("conversation"),
        description='Stop a reply, on whichever server it is being written; it ends CANCELLED with what '
        'was written. A reply that has already ended is returned unchanged.',
    )
    async def cancel_nora_message(
        self,
        info: Info,
        input: Annotated[
            CancelNoraMessageInput, strawberry.argument(description="The reply to stop.")
        ],
    ) -> CancelNoraMessagePayload:
        message = await nora.cancel_message(ctx(info), decode_id(input.message_id, "NoraMessage", "messageId"))
        return CancelNoraMessagePayload(message=message)


def _shared(typed, viewer):
    # A conversation is seen only by its owner: every subscriber of an event is that person.
    event = getattr(typed, "_e", None)
    if event is None:
        return typed
    api_key = viewer.api_key
    return sharing.mark(typed, event, (viewer.user_id, api_key.id if api_key else None))


@strawberry.type(description="NORA subscriptions.")
class NoraSubscription:
    @strawberry.subscription(
        description="A conversation's events, in seq order: MessageStarted, TextDelta, "
        "ToolCallStarted/Finished, MessageCompleted/Failed/Cancelled. With `after`, the events "
        "since that cursor are replayed first, so a late or reconnecting client misses nothing."
    )
    async def nora_events(
        self,
        info: Info,
        conversation_id: Annotated[
            strawberry.ID, strawberry.argument(description="One of your conversations.")
        ],
        after: Annotated[
            str | None,
            strawberry.argument(
                description="A `cursor` of an event or `NoraConversation.eventCursor`: replay "
                "what came after it. Live events only if omitted."
            ),
        ] = None,
    ) -> AsyncGenerator[NoraEvent, None]:
        cid = decode_id(conversation_id, "NoraConversation", "conversationId")
        async for item in nora.conversation_events(ctx(info), cid, after):
            typed = _typed(item)
            if typed is not None:
                # No per-event Loaders (unlike boardEvents): every field of a NORA event is
                # read from the event itself, and building them for each subscriber of each
                # delta was a quarter of the fan-out cost.
                yield _shared(typed, ctx(info).access)
