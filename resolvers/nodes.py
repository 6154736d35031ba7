"""`node(id)` / `nodes(ids)`: every lookup goes through the access layer's narrowed querysets."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from tortoise.models import Model
from tortoise.queryset import QuerySet

from models import (
    ApiKey,
    CustomFieldDefinition,
    Invite,
    OrganizationMember,
    OrgRole,
    ProjectMember,
)
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
            return await access.audit_entries()
    raise BadInput("Unknown node type")  # pragma: no cover - parse_global_id rejects these


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
