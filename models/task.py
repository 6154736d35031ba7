"""The task domain: tasks, their comments and label links."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.identity import User
    from models.project import Label, Project


class TaskStatus(str, Enum):
    """Board columns, in board order."""

    TODO = "todo"
    INPROGRESS = "inprogress"
    INREVIEW = "inreview"
    DONE = "done"
    CANCELLED = "cancelled"


class TaskPriority(str, Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


# Stored beside the priority so that "order by priority" is an index scan, not a CASE.
PRIORITY_RANK = {
    TaskPriority.CRITICAL: 0,
    TaskPriority.HIGH: 1,
    TaskPriority.MEDIUM: 2,
    TaskPriority.LOW: 3,
}


class Task(Model):
    # What audit entries and events show of it (models/snapshot.py); never a secret.
    snapshot_fields: ClassVar[tuple[str, ...]] = ("id", "project_id", "title", "description", "status", "priority", "position", "assignee_id", "parent_id", "due_date", "custom_properties", "version", "archived_at", "created_by_id", "created_at", "updated_at")
    id = fields.IntField(primary_key=True)
    project: fields.ForeignKeyRelation[Project] = fields.ForeignKeyField(
        "models.Project", related_name="tasks"
    )
    project_id: int
    title = fields.CharField(max_length=500)
    description = fields.TextField(default="")
    status = fields.CharEnumField(TaskStatus, max_length=16, default=TaskStatus.TODO)
    priority = fields.CharEnumField(TaskPriority, max_length=16, default=TaskPriority.MEDIUM)
    priority_rank = fields.SmallIntField(default=2)
    # Fractional-index rank within the status column: a move rewrites only this row.
    position = fields.CharField(max_length=128)
    assignee: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="assigned_tasks", null=True, on_delete=fields.SET_NULL
    )
    assignee_id: int | None
    created_by: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="created_tasks"
    )
    created_by_id: int
    parent: fields.ForeignKeyNullableRelation[Task] = fields.ForeignKeyField(
        "models.Task", related_name="subtasks", null=True, on_delete=fields.SET_NULL
    )
    parent_id: int | None
    due_date = fields.DateField(null=True)
    custom_properties: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    archived_at = fields.DatetimeField(null=True)

    if TYPE_CHECKING:  # reverse relations, set up by Tortoise from the other side
        comments: fields.ReverseRelation[Comment]

    class Meta:
        table = "task"
        # parent: subtask lists and counts; the board's own order is (project, status, position).
        indexes = (("project", "status", "position"), ("parent",))


class Comment(Model):
    # What audit entries and events show of it (models/snapshot.py); never a secret.
    snapshot_fields: ClassVar[tuple[str, ...]] = ("id", "task_id", "author_id", "body", "created_at", "updated_at")
    id = fields.IntField(primary_key=True)
    task: fields.ForeignKeyRelation[Task] = fields.ForeignKeyField("models.Task", related_name="comments")
    task_id: int
    author: fields.ForeignKeyRelation[User] = fields.ForeignKeyField("models.User", related_name="comments")
    author_id: int
    body = fields.TextField()
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "task_comment"
        indexes = (("task", "created_at"),)


class TaskLabel(Model):
    id = fields.IntField(primary_key=True)
    task: fields.ForeignKeyRelation[Task] = fields.ForeignKeyField("models.Task", related_name="task_labels")
    task_id: int
    label: fields.ForeignKeyRelation[Label] = fields.ForeignKeyField(
        "models.Label", related_name="task_labels"
    )
    label_id: int

    class Meta:
        table = "task_label"
        unique_together = (("task", "label"),)
        # The unique index leads with task; filtering tasks by label needs its own.
        indexes = (("label",),)
