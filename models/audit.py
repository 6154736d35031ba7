from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.identity import ApiKey, User
    from models.org import Organization


class AuditEntry(Model):
    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyNullableRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="audit", null=True
    )
    organization_id: int | None
    actor: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="audit_entries", null=True
    )
    actor_id: int | None
    api_key: fields.ForeignKeyNullableRelation[ApiKey] = fields.ForeignKeyField(
        "models.ApiKey", related_name="audit_entries", null=True
    )
    api_key_id: int | None
    action = fields.CharField(max_length=64)
    resource_type = fields.CharField(max_length=64)
    resource_id = fields.CharField(max_length=64)
    before: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    after: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    ip = fields.CharField(max_length=64, null=True)
    request_id = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "audit_entry"
        # The audit log is read newest first within one organization, with id breaking ties:
        # this index serves the page (and the CSV export's keyset walk) without a sort.
        indexes = (("organization", "created_at", "id"),)
