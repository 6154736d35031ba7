"""The org domain: organizations, their members and invites, plans and org roles."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, ClassVar

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.identity import User


class Plan(str, Enum):
    FREE = "free"
    PRO = "pro"
    ENTERPRISE = "enterprise"


class OrgRole(str, Enum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"

    @property
    def rank(self) -> int:
        return _ORG_RANK[self]


_ORG_RANK = {OrgRole.MEMBER: 1, OrgRole.ADMIN: 2, OrgRole.OWNER: 3}


class Organization(Model):
    # What audit entries and events show of it (models/snapshot.py); never a secret.
    snapshot_fields: ClassVar[tuple[str, ...]] = ("id", "slug", "name", "plan")
    id = fields.IntField(primary_key=True)
    slug = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=200)
    plan = fields.CharEnumField(Plan, max_length=16, default=Plan.FREE)
    # The last `AuditEntry.seq` given in this organization: the audit log's dense counter,
    # taken at the end of each write's transaction (resolvers/audit/stream.py). Save an
    # Organization with update_fields only: a whole-row save of an instance read before other
    # writes puts an old count back, and the next entry's seq collides (as Project.event_seq).
    # Tortoise 1.1 subclasses BigIntField from IntField without its value type: the
    # annotation gives it (else every read of the column is Any).
    audit_seq: fields.Field[int] = fields.BigIntField(default=0)
    # The session policy its owners set, in seconds (null: the server's); it applies to its
    # members' sessions while the organization is on the enterprise plan.
    session_idle_timeout = fields.IntField(null=True)
    session_max_age = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "organization"


class OrganizationMember(Model):
    # What audit entries and events show of it (models/snapshot.py); never a secret.
    snapshot_fields: ClassVar[tuple[str, ...]] = ("id", "organization_id", "user_id", "role")
    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="members"
    )
    organization_id: int
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="org_memberships"
    )
    user_id: int
    role = fields.CharEnumField(OrgRole, max_length=16)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "organization_member"
        unique_together = (("organization", "user"),)


class Invite(Model):
    """An invitation to an organization, redeemed with a one-time token by the invited email."""

    # What audit entries and events show of it (models/snapshot.py); never a secret.
    snapshot_fields: ClassVar[tuple[str, ...]] = ("id", "organization_id", "email", "role", "expires_at", "accepted_at", "revoked_at")
    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="invites"
    )
    organization_id: int
    email = fields.CharField(max_length=254)
    role = fields.CharEnumField(OrgRole, max_length=16)
    token_hash = fields.CharField(max_length=64, unique=True)
    invited_by: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="invites_sent"
    )
    invited_by_id: int
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    accepted_at = fields.DatetimeField(null=True)
    accepted_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="invites_accepted", null=True
    )
    accepted_by_id: int | None
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "invite"
