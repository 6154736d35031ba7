from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.identity import User
    from models.project import Project


class BoardEvent(Model):
    """The durable log of what changed on a board; `seq` is dense per project."""

    id = fields.BigIntField(primary_key=True)
    project: fields.ForeignKeyRelation[Project] = fields.ForeignKeyField(
        "models.Project", related_name="events"
    )
    project_id: int
    seq = fields.BigIntField()
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
