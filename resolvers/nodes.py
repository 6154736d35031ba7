"""`node(id)` / `nodes(ids)`: every lookup goes through the access layer's narrowed querysets."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from models import (
    ApiKey,
    AuditEntry,
    CustomFieldDefinition,
    Invite,
    OrganizationMember,
    OrgRole,
    ProjectMember,
    Session,
)
from resolvers.access import OrgPermission
from resolvers.errors import BadInput
from resolvers.ids import parse_global_id

if TYPE_CHECKING:
    from resolvers.access import Access
    from resolvers.context import Context

MAX_NODES = 100


# A queryset of whichever model the global id names: the caller reads only `id` off its rows.
async def _scope(access: Access, type_name: str) -> QuerySet[Any]:
    match type_name:
        case "User":
            return await access.users()
        case "Organization":
            return await access.organizations()
        case "OrganizationMember":
            return await access.org_scoped(OrganizationMember)
        case "Invite":
            return await access.org_scoped(Invite, min_role=OrgRole.ADMIN)
        case "ApiKey":
            return await access.org_scoped(ApiKey, min_role=OrgRole.ADMIN)
        case "Project":
            return await access.projects()
        case "ProjectMember":
            return await access.scoped(ProjectMember, "project__")
        case "CustomFieldDefinition":
            return await access.scoped(CustomFieldDefinition, "project__")
        case "Label":
            return await access.labels()
        case "Task":
            return await access.tasks()
        case "Comment":
            return await access.comments()
        case "NoraConversation":
            return await access.nora_conversations()
        case "NoraMessage":
            return await access.nora_messages()
        case "AuditEntry":
            return await _audit_entries(access)
        case "Session":
            # A person's own sessions only (an API key sees none).
            if not access.is_authenticated or access.api_key is not None:
                return Session.filter(id=0)
            return Session.filter(user_id=access.user_id)
    raise BadInput("Unknown node type")  # pragma: no cover - parse_global_id rejects these


async def _audit_entries(access: Access) -> QuerySet[AuditEntry]:
    """Entries of organizations the viewer administers, and a person's own account entries
    (viewer.securityLog)."""
    await access.load()
    least = OrgPermission.READ_AUDIT_LOG.role.rank
    admin = [o for o in access.org_ids() if (role := access.org_role(o)) is not None and role.rank >= least]
    scope = Q(organization_id__in=admin or [0])
    if access.is_authenticated and access.api_key is None:
        scope |= Q(organization_id__isnull=True, actor_id=access.user_id)
    return AuditEntry.filter(scope)


async def nodes(ctx: Context, ids: list[str]) -> list[Model | None]:
    """Objects in the order asked; null for what does not exist or may not be seen."""
    if len(ids) > MAX_NODES:
        raise BadInput(f"At most {MAX_NODES} ids at once", field="ids")
    parsed = [parse_global_id(gid) for gid in ids]
    wanted: dict[str, set[int]] = defaultdict(set)
    for type_name, pk in parsed:
        wanted[type_name].add(pk)
    found: dict[tuple[str, int], Model] = {}
    for type_name, pks in wanted.items():
        qs = await _scope(ctx.access, type_name)
        for row in await qs.filter(id__in=pks):
            found[(type_name, row.id)] = row
    return [found.get(key) for key in parsed]


async def node(ctx: Context, gid: str) -> Model | None:
    return (await nodes(ctx, [gid]))[0]
