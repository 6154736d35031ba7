"""The event domain: the board's durable event log and the catalogue of its event types."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.identity import User
    from models.project import Project


class BoardEventType(str, Enum):
    """What a board event says happened. The value is the GraphQL type that shows it
    (schema/event.py maps each member to its type explicitly; a test checks both ways)."""

    TASK_CREATED = "TaskCreated"
    TASK_UPDATED = "TaskUpdated"
    TASK_MOVED = "TaskMoved"
    TASK_ARCHIVED = "TaskArchived"
    TASK_UNARCHIVED = "TaskUnarchived"
    TASK_DELETED = "TaskDeleted"
    COMMENT_ADDED = "CommentAdded"
    LABEL_CREATED = "LabelCreated"
    CUSTOM_FIELD_DEFINED = "CustomFieldDefined"
    PROJECT_UPDATED = "ProjectUpdated"
    PROJECT_ARCHIVED = "ProjectArchived"
    MEMBER_ADDED = "MemberAdded"
    MEMBER_REMOVED = "MemberRemoved"
    MEMBER_ROLE_CHANGED = "MemberRoleChanged"


class BoardEvent(Model):
    """The durable log of what changed on a board; `seq` is dense per project."""

    # Tortoise 1.1 subclasses BigIntField from IntField without its value type: the
    # annotation gives it (else every read of the column is Any).
    id: fields.Field[int] = fields.BigIntField(primary_key=True)
    project: fields.ForeignKeyRelation[Project] = fields.ForeignKeyField(
        "models.Project", related_name="events"
    )
    project_id: int
    seq: fields.Field[int] = fields.BigIntField()
    # A BoardEventType's value; text, so an event written by a newer release still reads.
    type = fields.CharField(max_length=64)
    payload: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    actor: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="board_events", null=True
    )
    actor_id: int | None
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "board_event"
        unique_together = (("project", "seq"),)
