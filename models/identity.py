from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from tortoise import fields
from tortoise.models import Model

from models.org import OrgRole

if TYPE_CHECKING:
    from models.org import Organization


class User(Model):
    # What audit entries and events show of it (models/snapshot.py); never a secret.
    snapshot_fields: ClassVar[tuple[str, ...]] = ("id", "email", "name")
    id = fields.IntField(primary_key=True)
    email = fields.CharField(max_length=254, unique=True)
    name = fields.CharField(max_length=200)
    password_hash = fields.CharField(max_length=255)
    is_active = fields.BooleanField(default=True)
    # When the owner of `email` proved it (a verification link, or a password reset by email);
    # null: unverified (models/email.py EmailToken, resolvers/identity/verification.py).
    email_verified_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "users"


class ApiKey(Model):
    """An organization-scoped key. It acts as its creator, capped at `role`.

    Only a SHA-256 of the secret is stored: keys are 256-bit random, so a slow KDF would
    buy nothing and cost every request.
    """

    # What audit entries and events show of it (models/snapshot.py); never a secret.
    snapshot_fields: ClassVar[tuple[str, ...]] = ("id", "organization_id", "name", "prefix", "role", "created_by_id", "expires_at", "revoked_at")
    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="api_keys"
    )
    organization_id: int
    created_by: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="api_keys"
    )
    created_by_id: int
    name = fields.CharField(max_length=100)
    prefix = fields.CharField(max_length=16)
    key_hash = fields.CharField(max_length=64, unique=True)
    role = fields.CharEnumField(OrgRole, max_length=16)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)
    expires_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_key"
