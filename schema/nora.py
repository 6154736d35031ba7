"""NORA, the assistant: conversations, messages, usage, the mutations, and the typed event
stream of a conversation (`noraEvents`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from models import Conversation as ConversationModel
from models import Message as MessageModel
from models import MessageStatus as MessageStatusEnum
from models import NoraEvent as EventModel
from models import NoraRole as NoraRoleEnum
from resolvers import streams
from resolvers.ids import decode_id, decode_optional, to_global_id
from resolvers.nora import conversations as nora
from resolvers.nora.events import NORA_LOG
from resolvers.nora.limits import UsageReport
from schema import sharing
from schema.common import Connection, Node, Plan, ctx, model_type_check, node_id

if TYPE_CHECKING:
    from schema.orgs import Organization
    from schema.projects import Project
    from schema.users import User

OrganizationRef = Annotated["Organization", strawberry.lazy("schema.orgs")]
ProjectRef = Annotated["Project", strawberry.lazy("schema.projects")]
UserRef = Annotated["User", strawberry.lazy("schema.users")]

NoraRole = strawberry.enum(NoraRoleEnum, name="NoraRole", description="Who wrote a NORA message.")
NoraMessageStatus = strawberry.enum(
    MessageStatusEnum,
    name="NoraMessageStatus",
    description="STREAMING while NORA is answering; then COMPLETE, FAILED or CANCELLED.",
)


def _gid(type_name: str, pk: int | None) -> strawberry.ID | None:
    return None if pk is None else strawberry.ID(to_global_id(type_name, pk))


@strawberry.type(
    description="One message of a NORA conversation: the user's text, NORA's (streamed) "
    "reply, or a tool call NORA made while answering (role TOOL)."
)
class NoraMessage(Node):
    is_type_of = model_type_check(MessageModel)
    role: NoraRole
    content: str = strawberry.field(description="For a STREAMING reply: what was stored so far.")
    status: NoraMessageStatus
    tool_name: str | None
    tokens_in: int
    tokens_out: int
    model: str
    provider: str
    latency_ms: int | None = strawberry.field(
        description="Milliseconds from the request to the end of the reply."
    )
    error_code: str | None = strawberry.field(
        description="Why a FAILED reply failed: PROVIDER_ERROR, PROVIDER_TIMEOUT, "
        "PROVIDER_UNAVAILABLE, PROVIDER_RATE_LIMITED, QUOTA_EXCEEDED, INTERRUPTED, INTERNAL_ERROR."
    )
    error_message: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    id: strawberry.ID = node_id("NoraMessage")

    @strawberry.field(description="A reply: the user message it answers. A tool call: its reply.")
    def reply_to_id(self) -> strawberry.ID | None:
        return _gid("NoraMessage", self.reply_to_id)

    @strawberry.field
    def conversation_id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("NoraConversation", self.conversation_id))

    @strawberry.field
    def tool_arguments(self) -> JSON | None:
        return self.tool_arguments

    @strawberry.field(description='`{ok: true, result}` or `{ok: false, error: {code, message}}`.')
    def tool_result(self) -> JSON | None:
        return self.tool_result


@strawberry.type
class NoraMessageConnection(Connection[NoraMessage]):
    pass


@strawberry.type(description="A conversation with NORA. Only its owner can see it.")
class NoraConversation(Node):
    is_type_of = model_type_check(ConversationModel)
    title: str
    created_at: datetime
    updated_at: datetime

    id: strawberry.ID = node_id("NoraConversation")

    @strawberry.field(
        description="Subscribe to `noraEvents` with this as `after` to receive exactly what "
        "happens after this read."
    )
    def event_cursor(self) -> str:
        return NORA_LOG.encode_cursor(self.id, self.event_seq)

    @strawberry.field
    async def organization(self, info: Info) -> OrganizationRef:
        return await ctx(info).loaders.organization.load(self.organization_id)

    @strawberry.field(description="The project NORA works on by default, if any.")
    async def project(self, info: Info) -> ProjectRef | None:
        loaders = ctx(info).loaders
        return await loaders.load_optional(loaders.project, self.project_id)

    @strawberry.field
    async def owner(self, info: Info) -> UserRef:
        return await ctx(info).loaders.user.load(self.user_id)

    @strawberry.field(description="Oldest first.")
    async def messages(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> NoraMessageConnection:
        page = await nora.messages(ctx(info), self, first=first, after=after, last=last, before=before)
        return NoraMessageConnection.of(page)


@strawberry.type
class NoraConversationConnection(Connection[NoraConversation]):
    pass


@strawberry.type(description="Today's (UTC) NORA use of an organization against its plan's quota.")
class NoraUsage:
    _report: strawberry.Private[UsageReport]

    @strawberry.field
    def organization(self) -> OrganizationRef:
        return self._report.organization

    @strawberry.field
    def plan(self) -> Plan:
        return self._report.organization.plan

    @strawberry.field
    def day(self) -> date:
        return self._report.day

    @strawberry.field
    def tokens_used(self) -> int:
        return self._report.tokens_used

    @strawberry.field
    def messages_sent(self) -> int:
        return self._report.messages_sent

    @strawberry.field(description="Tokens a day; null means unlimited (enterprise).")
    def token_quota(self) -> int | None:
        return self._report.token_quota

    @strawberry.field(description="Null means unlimited.")
    def tokens_remaining(self) -> int | None:
        return self._report.tokens_remaining

    @strawberry.field
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
    occurred_at: datetime
    conversation_id: strawberry.ID
    message_id: strawberry.ID | None = strawberry.field(description="The reply this event belongs to.")
    _e: strawberry.Private[EventModel]

    @property
    def payload(self) -> dict:
        return self._e.payload


def _message(event: NoraEvent, key: str = "message") -> MessageModel | None:
    return streams.materialize(MessageModel, event.payload.get(key))


@strawberry.type(description="NORA started a reply (status STREAMING).")
class MessageStarted(NoraEvent):
    @strawberry.field
    def message(self) -> NoraMessage:
        return _message(self)

    @strawberry.field(description="The user's message it answers.")
    def reply_to(self) -> NoraMessage | None:
        return _message(self, "replyTo")


@strawberry.type(description="More text of a reply. Deltas of one reply, in index order, add up to its content.")
class TextDelta(NoraEvent):
    index: int = strawberry.field(description="0, 1, 2, ... within the reply.")
    offset: int = strawberry.field(description="Where `text` starts in the reply's content (characters).")
    text: str


@strawberry.type(description="NORA called a tool (acting as the user, with the user's permissions).")
class ToolCallStarted(NoraEvent):
    tool_call_id: strawberry.ID = strawberry.field(description="The NoraMessage (role TOOL) recording this call.")
    name: str

    @strawberry.field
    def arguments(self) -> JSON | None:
        return self.payload.get("arguments")


@strawberry.type
class NoraToolError:
    code: str = strawberry.field(description="FORBIDDEN, NOT_FOUND, BAD_USER_INPUT, AMBIGUOUS, CONFLICT, ...")
    message: str


@strawberry.type(description="A tool call ended: `ok` with a result, or an error.")
class ToolCallFinished(NoraEvent):
    tool_call_id: strawberry.ID
    name: str
    ok: bool

    @strawberry.field
    def result(self) -> JSON | None:
        return self.payload.get("result")

    @strawberry.field
    def error(self) -> NoraToolError | None:
        error = self.payload.get("error")
        return NoraToolError(code=error.get("code", ""), message=error.get("message", "")) if error else None


@strawberry.type
class NoraTokenUsage:
    tokens_in: int
    tokens_out: int
    latency_ms: int | None


@strawberry.type(description="The reply is complete; `message` holds its final content.")
class MessageCompleted(NoraEvent):
    @strawberry.field
    def message(self) -> NoraMessage:
        return _message(self)

    @strawberry.field
    def usage(self) -> NoraTokenUsage:
        usage = self.payload["usage"]
        return NoraTokenUsage(
            tokens_in=usage["tokensIn"], tokens_out=usage["tokensOut"], latency_ms=usage.get("latencyMs")
        )


@strawberry.type(description="The reply failed; `message` holds what was written before.")
class MessageFailed(NoraEvent):
    code: str = strawberry.field(description="PROVIDER_ERROR, PROVIDER_TIMEOUT, QUOTA_EXCEEDED, INTERRUPTED, ...")
    error_message: str = strawberry.field(description="What went wrong, for people.")

    @strawberry.field
    def message(self) -> NoraMessage:
        return _message(self)


@strawberry.type(description="The reply was cancelled; `message` holds what was written before.")
class MessageCancelled(NoraEvent):
    @strawberry.field
    def message(self) -> NoraMessage:
        return _message(self)


@strawberry.type(
    description="The cursor is older than the events kept: reload the conversation, then "
    "subscribe again with this event's cursor."
)
class NoraResyncRequired(NoraEvent):
    @strawberry.field
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


NORA_EVENT_TYPES: dict[str, type[NoraEvent]] = {
    cls.__name__: cls
    for cls in (
        MessageStarted, TextDelta, ToolCallStarted, ToolCallFinished, MessageCompleted,
        MessageFailed, MessageCancelled,
    )
}


def _typed(item) -> NoraEvent | None:
    if isinstance(item, streams.ResyncRequired):
        marker = EventModel(
            conversation_id=item.key, seq=item.seq, type="NoraResyncRequired", payload={},
            created_at=item.occurred_at,
        )
        return NoraResyncRequired(**_fields(marker))
    # A live event is one instance shared by every subscriber here: type it once.
    typed = getattr(item, "_pcg_typed", None)
    if typed is None:
        cls = NORA_EVENT_TYPES.get(item.type)
        if cls is None:
            return None
        typed = cls(**_fields(item), **_extra(item))
        item._pcg_typed = typed
    return typed


# -- inputs, payloads, roots ------------------------------------------------------------------


@strawberry.input
class StartNoraConversationInput:
    organization_id: strawberry.ID
    project_id: strawberry.ID | None = strawberry.field(
        default=None, description="The project NORA works on unless told otherwise."
    )
    title: str | None = strawberry.field(
        default=None, description="At most 200 characters; by default the first message's first line."
    )


@strawberry.input
class SendNoraMessageInput:
    conversation_id: strawberry.ID
    content: str = strawberry.field(
        description="Plain text, 1 to 10,000 characters; no control characters but newline and tab."
    )


@strawberry.input
class CancelNoraMessageInput:
    message_id: strawberry.ID = strawberry.field(description="A STREAMING reply.")


@strawberry.type
class StartNoraConversationPayload:
    conversation: NoraConversation | None


@strawberry.type
class SendNoraMessagePayload:
    conversation: NoraConversation | None
    user_message: NoraMessage | None
    assistant_message: NoraMessage | None = strawberry.field(
        description="Status STREAMING: follow it with the `noraEvents` subscription."
    )


@strawberry.type
class CancelNoraMessagePayload:
    message: NoraMessage | None


@strawberry.type
class NoraQueries:
    @strawberry.field(description="The viewer's NORA conversations in an organization, most recent first.")
    async def nora_conversations(
        self,
        info: Info,
        organization_id: strawberry.ID,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> NoraConversationConnection:
        page = await nora.conversations(
            ctx(info), decode_id(organization_id, "Organization", "organizationId"),
            first=first, after=after, last=last, before=before,
        )
        return NoraConversationConnection.of(page)

    @strawberry.field(description="One of the viewer's conversations; null if missing or someone else's.")
    async def nora_conversation(self, info: Info, id: strawberry.ID) -> NoraConversation | None:
        return await nora.conversation_or_none(ctx(info), decode_id(id, "NoraConversation"))

    @strawberry.field(description="Today's NORA use of an organization and its quota. Members.")
    async def nora_usage(self, info: Info, organization_id: strawberry.ID) -> NoraUsage:
        report = await nora.usage(ctx(info), decode_id(organization_id, "Organization", "organizationId"))
        return NoraUsage(_report=report)


@strawberry.type
class NoraMutations:
    @strawberry.mutation(description="Start a conversation with NORA in an organization, optionally about a project.")
    async def start_nora_conversation(
        self, info: Info, input: StartNoraConversationInput
    ) -> StartNoraConversationPayload:
        conversation = await nora.start_conversation(
            ctx(info),
            decode_id(input.organization_id, "Organization", "organizationId"),
            decode_optional(input.project_id, "Project", "projectId"),
            input.title,
        )
        return StartNoraConversationPayload(conversation=conversation)

    @strawberry.mutation(
        description="Ask NORA. Returns at once with your message and NORA's reply in status "
        "STREAMING; the reply arrives on `noraEvents`. RATE_LIMITED (extensions.retryAfter) "
        "beyond 20 messages a minute; QUOTA_EXCEEDED when the organization's daily tokens are used."
    )
    async def send_nora_message(self, info: Info, input: SendNoraMessageInput) -> SendNoraMessagePayload:
        conversation, asked, reply = await nora.send_message(
            ctx(info), decode_id(input.conversation_id, "NoraConversation", "conversationId"), input.content
        )
        return SendNoraMessagePayload(conversation=conversation, user_message=asked, assistant_message=reply)

    @strawberry.mutation(
        description="Stop a reply, on whichever server it is being written; it ends CANCELLED "
        "with what was written. A reply that has already ended is returned unchanged."
    )
    async def cancel_nora_message(self, info: Info, input: CancelNoraMessageInput) -> CancelNoraMessagePayload:
        message = await nora.cancel_message(ctx(info), decode_id(input.message_id, "NoraMessage", "messageId"))
        return CancelNoraMessagePayload(message=message)


def _shared(typed, viewer):
    # A conversation is seen only by its owner: every subscriber of an event is that person.
    event = getattr(typed, "_e", None)
    if event is None:
        return typed
    api_key = viewer.api_key
    return sharing.mark(typed, event, (viewer.user_id, api_key.id if api_key else None))


@strawberry.type
class NoraSubscription:
    @strawberry.subscription(
        description="A conversation's events, in seq order: MessageStarted, TextDelta, "
        "ToolCallStarted/Finished, MessageCompleted/Failed/Cancelled. With `after`, the events "
        "since that cursor are replayed first, so a late or reconnecting client misses nothing."
    )
    async def nora_events(
        self, info: Info, conversation_id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[NoraEvent, None]:
        cid = decode_id(conversation_id, "NoraConversation", "conversationId")
        async for item in nora.conversation_events(ctx(info), cid, after):
            typed = _typed(item)
            if typed is not None:
                # No per-event Loaders (unlike boardEvents): every field of a NORA event is
                # read from the event itself, and building them for each subscriber of each
                # delta was a quarter of the fan-out cost.
                yield _shared(typed, ctx(info).viewer)
