"""The audit log: what was written, by whom, from where. Owners and admins read it."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from models import AuditEntry as AuditEntryModel
from models import OrgRole
from resolvers.audit import AuditFilter
from schema.common import Connection, Info, Node, ctx, model_type_check, node_id

if TYPE_CHECKING:
    from schema.identity import ApiKey, User

UserRef = Annotated["User", strawberry.lazy("schema.identity")]
ApiKeyRef = Annotated["ApiKey", strawberry.lazy("schema.identity")]


@strawberry.type(
    description="One write as the audit log keeps it: written in the same transaction as the "
    "change, so every committed write has exactly one and a rolled-back write none."
)
class AuditEntry(Node):
    is_type_of = model_type_check(AuditEntryModel)
    action: str = strawberry.field(
        description='What was done, as "resource.verb" (e.g. "task.create", "member.remove", '
        '"audit.export").'
    )
    resource_type: str = strawberry.field(
        description='The type of the object written (e.g. "Task", "OrganizationMember").'
    )
    resource_id: str = strawberry.field(
        description="The primary key of the object written, as text (not a global ID: the "
        "object may no longer exist)."
    )
    before: JSON | None = strawberry.field(
        description="The object's recorded fields before the write; null for a creation."
    )
    after: JSON | None = strawberry.field(
        description="The object's recorded fields after the write; null for a deletion."
    )
    ip: str | None = strawberry.field(
        description="The client address the write came from (behind a trusted proxy: the "
        "address it reported); null for writes made by the CLI."
    )
    request_id: str | None = strawberry.field(
        description="The X-Request-Id of the request that made the write, to find it in logs."
    )
    created_at: datetime = strawberry.field(description="When the write was committed.")

    id: strawberry.ID = node_id("AuditEntry")

    @strawberry.field(
        description="The user who made the write (through a session or an API key acting as "
        "them); null for system writes."
    )
    async def actor(self, info: Info) -> UserRef | None:
        loaders = ctx(info).loaders
        return await loaders.load_optional(loaders.user, self.actor_id)

    @strawberry.field(
        description="The API key the write was made with; null for a user session, or when "
        "the key belongs to an organization the viewer does not administer."
    )
    async def api_key(self, info: Info) -> ApiKeyRef | None:
        context = ctx(info)
        key = await context.loaders.load_optional(context.loaders.api_key, self.api_key_id)
        if key is None:
            return None
        role = context.access.org_role(key.organization_id)
        # Keys are listed to admins only (Organization.apiKeys): the same rule here.
        return key if role is not None and role.rank >= OrgRole.ADMIN.rank else None


@strawberry.type(description="A page of audit entries.")
class AuditEntryConnection(Connection[AuditEntry]):
    pass


@strawberry.enum(description="How to order the audit log. Ties are broken by id, likewise.")
class AuditEntryOrder(Enum):
    CREATED_AT_DESC = strawberry.enum_value(
        "CREATED_AT_DESC", description="Newest first (the default)."
    )
    CREATED_AT_ASC = strawberry.enum_value("CREATED_AT_ASC", description="Oldest first.")


@strawberry.input(description="Which audit entries to list. All given conditions must hold.")
class AuditEntryFilter:
    actor: strawberry.ID | None = strawberry.field(
        default=None, description="Entries written by this user (a User ID)."
    )
    action: str | None = strawberry.field(
        default=None, description='Entries with exactly this action (e.g. "task.update").'
    )
    resource_type: str | None = strawberry.field(
        default=None, description='Entries about objects of this type (e.g. "Task").'
    )
    resource_id: str | None = strawberry.field(
        default=None,
        description="Entries about the object with this primary key (as in `resourceId`).",
    )
    from_: datetime | None = strawberry.field(
        default=None, name="from", description="Entries written at or after this time."
    )
    to: datetime | None = strawberry.field(
        default=None, description="Entries written before this time (exclusive)."
    )
    ip: str | None = strawberry.field(
        default=None, description="Entries written from exactly this client address."
    )

    def to_filter(self) -> AuditFilter:
        return AuditFilter(
            actor=self.actor, action=self.action, resource_type=self.resource_type,
            resource_id=self.resource_id, since=self.from_, until=self.to, ip=self.ip,
        )
