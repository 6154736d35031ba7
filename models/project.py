"""The project domain: projects, project members, labels and custom field definitions."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, ClassVar

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.identity import User
    from models.org import Organization


class ProjectRole(str, Enum):
    OWNER = "owner"
    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"

    @property
    def rank(self) -> int:
        return _PROJECT_RANK[self]


_PROJECT_RANK = {
    ProjectRole.VIEWER: 1,
    ProjectRole.EDITOR: 2,
    ProjectRole.ADMIN: 3,
    ProjectRole.OWNER: 4,
}


class CustomFieldType(str, Enum):
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    URL = "url"
    CHECKBOX = "checkbox"
    SELECT = "select"
    MULTI_SELECT = "multi_select"
    USER = "user"



class Project(Model):
    # What audit entries and events show of it (models/snapshot.py); never a secret.
    snapshot_fields: ClassVar[tuple[str, ...]] = ("id", "organization_id", "name", "description", "archived_at", "created_at", "updated_at")
    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="projects"
    )
    organization_id: int
    name = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    created_by: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="projects_created"
    )
    created_by_id: int
    # Last BoardEvent seq handed out; bumped inside each write's transaction.
    # Tortoise 1.1 subclasses BigIntField from IntField without its value type: the
    # annotation gives it (else every read of the column is Any).
    event_seq: fields.Field[int] = fields.BigIntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    archived_at = fields.DatetimeField(null=True)

    class Meta:
        table = "project"


class ProjectMember(Model):
    # What audit entries and events show of it (models/snapshot.py); never a secret.
    snapshot_fields: ClassVar[tuple[str, ...]] = ("id", "project_id", "user_id", "role")
    id = fields.IntField(primary_key=True)
    project: fields.ForeignKeyRelation[Project] = fields.ForeignKeyField(
        "models.Project", related_name="members"
    )
    project_id: int
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="project_memberships"
    )
    user_id: int
    role = fields.CharEnumField(ProjectRole, max_length=16)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "project_member"
        unique_together = (("project", "user"),)


class Label(Model):
    # What audit entries and events show of it (models/snapshot.py); never a secret.
    snapshot_fields: ClassVar[tuple[str, ...]] = ("id", "project_id", "name", "color", "created_at")
    id = fields.IntField(primary_key=True)
    project: fields.ForeignKeyRelation[Project] = fields.ForeignKeyField(
        "models.Project", related_name="labels"
    )
    project_id: int
    name = fields.CharField(max_length=50)
    color = fields.CharField(max_length=7)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "label"
        unique_together = (("project", "name"),)


class CustomFieldDefinition(Model):
    # What audit entries and events show of it (models/snapshot.py); never a secret.
    snapshot_fields: ClassVar[tuple[str, ...]] = ("id", "project_id", "key", "name", "type", "options", "required", "created_at")
    id = fields.IntField(primary_key=True)
    project: fields.ForeignKeyRelation[Project] = fields.ForeignKeyField(
        "models.Project", related_name="custom_fields"
    )
    project_id: int
    key = fields.CharField(max_length=64)
    name = fields.CharField(max_length=100)
    type = fields.CharEnumField(CustomFieldType, max_length=16)
    # Allowed values for select / multi_select.
    options: fields.JSONField[list[str]] = fields.JSONField(default=list)
    required = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "custom_field_definition"
        unique_together = (("project", "key"),)
