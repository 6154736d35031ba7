"""The audit log: what was written, by whom, from where. Owners and admins read it."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from models import AuditEntry as AuditEntryModel
from models import OrgRole
from resolvers.audit import stream as audit_stream
from resolvers.audit.entries import AuditFilter
from resolvers.event.streams import LogGap
from resolvers.ids import decode_id
from resolvers.loaders import Loaders
from schema import sharing
from schema.common import Connection, Info, Node, ctx, model_type_check, node_id
from schema.permissions import OrgPermission, in_org, subscription

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
    user_agent: str | None = strawberry.field(
        description="The client's User-Agent header (of the HTTP request, or of the websocket's "
        "handshake), at most 512 characters, non-printable ones dropped; null when the client "
        "sent none and for writes made by the CLI."
    )
    seq: int | None = strawberry.field(
        description="Position in the organization's audit log: 1, 2, 3... with no gap, in "
        "commit order (the `auditEntries` subscription's order); null for entries of no "
        "organization (an account's own: sign-ups, logins, sessions)."
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


# -- the live log --------------------------------------------------------------------------------


@strawberry.interface(
    description="Something on an organization's live audit log. Resume with `after: cursor`."
)
class AuditLogEvent:
    _e: strawberry.Private[AuditEntryModel]

    @strawberry.field(description="Pass as `after` to resume right after this event.")
    def cursor(self) -> str:
        return audit_stream.encode_cursor(self._e.organization_id, self._e.seq)

    @strawberry.field(description="Position in the organization's audit log; increases by one.")
    def seq(self) -> int:
        return self._e.seq

    @strawberry.field(description="When the entry was committed (for AuditResyncRequired: when "
                      "the resync was sent).")
    def occurred_at(self) -> datetime:
        return self._e.created_at


@strawberry.type(description="An entry was written to the audit log.")
class AuditEntryAdded(AuditLogEvent):
    @strawberry.field(description="The entry, as `Organization.auditEntries` lists it.")
    def entry(self) -> AuditEntry:
        return self._e


@strawberry.type(
    description="The cursor is older than the entries kept (the plan's audit retention): read "
    "what is kept with `Organization.auditEntries`, then subscribe again with this event's "
    "cursor (or `Organization.auditCursor`)."
)
class AuditResyncRequired(AuditLogEvent):
    @strawberry.field(description="Why a resync is needed, for people.")
    def reason(self) -> str:
        return "The requested cursor is older than the retained audit log"


# Reached only through the AuditLogEvent interface: schema/root.py lists them.
AUDIT_EVENT_TYPES: tuple[type[AuditLogEvent], ...] = (AuditEntryAdded, AuditResyncRequired)


def _typed(item: AuditEntryModel | LogGap) -> AuditLogEvent:
    if isinstance(item, LogGap):
        marker = AuditEntryModel(organization_id=item.key, seq=item.seq, created_at=item.occurred_at)
        return AuditResyncRequired(_e=marker)
    return AuditEntryAdded(_e=item)


@strawberry.type
class AuditSubscription:
    @subscription(
        requires=in_org(OrgPermission.READ_AUDIT_LOG),
        description="An organization's audit entries as they are committed, in `seq` order. With "
        "`after`, the entries since that cursor are replayed first: a client that resubscribes "
        "with its last cursor misses nothing, whichever instance it reaches. An organization "
        "the viewer is not in answers NOT_FOUND, like one that does not exist; the stream ends "
        "with FORBIDDEN when the viewer is demoted below admin or removed.",
    )
    async def audit_entries(
        self,
        info: Info,
        organization_id: Annotated[
            strawberry.ID, strawberry.argument(description="The organization.")
        ],
        after: Annotated[
            str | None,
            strawberry.argument(
                description="A `cursor` of an event or `Organization.auditCursor`: replay what "
                "came after it. Live entries only if omitted."
            ),
        ] = None,
    ) -> AsyncGenerator[AuditLogEvent, None]:
        context = ctx(info)
        org_id = decode_id(organization_id, "Organization", "organizationId")
        viewer = context.access
        async for item in audit_stream.audit_events(context, org_id, after):
            # A websocket shares one context across its operations: each event gets its own
            # loaders (AuditEntry.actor, apiKey), filled after the write committed.
            context.loaders = Loaders()
            typed = _typed(item)
            # Subscribers of this entry share its execution when their answers cannot differ:
            # ROLES fields read the viewer's role in the entry's organization (AuditEntry.apiKey);
            # there is no project. A resync marker is this subscriber's own.
            yield sharing.mark(typed, typed._e, (None, viewer.org_role(org_id)), viewer)
