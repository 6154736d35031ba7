"""NORA, the assistant: conversations, their messages and event log, and the usage ledger."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.identity import User
    from models.org import Organization
    from models.project import Project


class NoraRole(str, Enum):
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class NoraMessageStatus(str, Enum):
    STREAMING = "streaming"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"


class UsageKind(str, Enum):
    TOKENS = "tokens"
    MESSAGES = "messages"


class NoraConversation(Model):
    # What audit entries and events show of it (models/snapshot.py); never a secret.
    snapshot_fields: ClassVar[tuple[str, ...]] = ("id", "organization_id", "project_id", "title")
    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="nora_conversations"
    )
    organization_id: int
    project: fields.ForeignKeyNullableRelation[Project] = fields.ForeignKeyField(
        "models.Project", related_name="nora_conversations", null=True, on_delete=fields.SET_NULL
    )
    project_id: int | None
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="nora_conversations"
    )
    user_id: int
    title = fields.CharField(max_length=200)
    # Last NoraEvent seq handed out; bumped inside each append's transaction (as Project's).
    # Tortoise 1.1 subclasses BigIntField from IntField without its value type: the
    # annotation gives it (else every read of the column is Any).
    event_seq: fields.Field[int] = fields.BigIntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "nora_conversation"
        indexes = (("user", "organization", "updated_at"),)


class NoraMessage(Model):
    """One turn: the user's text, NORA's (streamed) reply, or one tool call NORA made."""

    # What audit entries and events show of it (models/snapshot.py); never a secret.
    snapshot_fields: ClassVar[tuple[str, ...]] = ("id", "conversation_id", "role", "content", "status", "reply_to_id", "tool_call_id", "tool_name", "tool_arguments", "tool_result", "tokens_in", "tokens_out", "model", "provider", "latency_ms", "error_code", "error_message", "created_at", "updated_at", "completed_at")
    id: fields.Field[int] = fields.BigIntField(primary_key=True)
    conversation: fields.ForeignKeyRelation[NoraConversation] = fields.ForeignKeyField(
        "models.NoraConversation", related_name="messages"
    )
    conversation_id: int
    role = fields.CharEnumField(NoraRole, max_length=16)
    content = fields.TextField(default="")
    status = fields.CharEnumField(NoraMessageStatus, max_length=16)
    # A reply points at the user message it answers; a tool call at the reply it belongs to.
    # A plain column, not a foreign key: Aerich 0.10 refuses a new table that references
    # itself ("cyclic fk references"). Both rows always live in the same conversation.
    reply_to_id: fields.Field[int | None] = fields.BigIntField(null=True)
    tool_call_id = fields.CharField(max_length=100, null=True)
    tool_name = fields.CharField(max_length=64, null=True)
    tool_arguments: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    tool_result: fields.JSONField[Any] = fields.JSONField(null=True)
    tokens_in = fields.IntField(default=0)
    tokens_out = fields.IntField(default=0)
    model = fields.CharField(max_length=200, default="")
    provider = fields.CharField(max_length=32, default="")
    latency_ms = fields.IntField(null=True)
    error_code = fields.CharField(max_length=64, null=True)
    error_message = fields.TextField(null=True)
    # Set by cancelNoraMessage on any instance; the generator stops at its next write.
    cancel_requested = fields.BooleanField(default=False)
    # A streaming reply's generator: the random id of the instance (process) running it, and
    # when that instance last showed it alive. A reply whose heartbeat stops (kill -9, crash)
    # is ended FAILED/INTERRUPTED by whichever instance sweeps first.
    owner_instance = fields.CharField(max_length=32, null=True)
    heartbeat_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    # Written explicitly by every update (queryset updates skip auto_now): a streaming
    # message whose updated_at stops moving belongs to a generator that died.
    updated_at = fields.DatetimeField(auto_now_add=True)
    completed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "nora_message"
        indexes = (("conversation", "created_at"), ("status", "updated_at"))


class NoraEventType(str, Enum):
    """What a NORA event says happened; the value is the GraphQL type that shows it
    (schema/nora.py maps each member to its type explicitly; a test checks both ways)."""

    MESSAGE_STARTED = "MessageStarted"
    TEXT_DELTA = "TextDelta"
    TOOL_CALL_STARTED = "ToolCallStarted"
    TOOL_CALL_FINISHED = "ToolCallFinished"
    MESSAGE_COMPLETED = "MessageCompleted"
    MESSAGE_FAILED = "MessageFailed"
    MESSAGE_CANCELLED = "MessageCancelled"


class NoraEvent(Model):
    """The durable log of a conversation's stream; `seq` is dense per conversation."""

    id: fields.Field[int] = fields.BigIntField(primary_key=True)
    conversation: fields.ForeignKeyRelation[NoraConversation] = fields.ForeignKeyField(
        "models.NoraConversation", related_name="events"
    )
    conversation_id: int
    seq: fields.Field[int] = fields.BigIntField()
    type = fields.CharField(max_length=64)
    payload: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "nora_event"
        unique_together = (("conversation", "seq"),)


class NoraUsageEntry(Model):
    """Append-only: one row per message sent and per reply's tokens."""

    id: fields.Field[int] = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="nora_usage"
    )
    organization_id: int
    user: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="nora_usage", null=True, on_delete=fields.SET_NULL
    )
    user_id: int | None
    message: fields.ForeignKeyNullableRelation[NoraMessage] = fields.ForeignKeyField(
        "models.NoraMessage", related_name="usage", null=True, on_delete=fields.SET_NULL
    )
    message_id: int | None
    kind = fields.CharEnumField(UsageKind, max_length=16)
    amount: fields.Field[int] = fields.BigIntField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "nora_usage"
        indexes = (("organization", "kind", "created_at"),)
