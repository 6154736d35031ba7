"""`node(id)` / `nodes(ids)`: every lookup goes through the access layer's narrowed querysets."""

from __future__ import annotations

from collections import defaultdict

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

MAX_NODES = 100


async def _scope(viewer, type_name: str):
    match type_name:
        case "User":
            return await viewer.users()
        case "Organization":
            return await viewer.organizations()
        case "OrganizationMember":
            return await viewer.org_scoped(OrganizationMember)
        case "Invite":
            return await viewer.org_scoped(Invite, min_role=OrgRole.ADMIN)
        case "ApiKey":
            return await viewer.org_scoped(ApiKey, min_role=OrgRole.ADMIN)
        case "Project":
            return await viewer.projects()
        case "ProjectMember":
            return await viewer.scoped(ProjectMember, "project__")
        case "CustomFieldDefinition":
            return await viewer.scoped(CustomFieldDefinition, "project__")
        case "Label":
            return await viewer.labels()
        case "Task":
            return await viewer.tasks()
        case "Comment":
            return await viewer.comments()
        case "NoraConversation":
            return await viewer.nora_conversations()
        case "NoraMessage":
            return await viewer.nora_messages()
        case "AuditEntry":
            return await viewer.audit_entries()
    raise BadInput("Unknown node type")  # pragma: no cover - parse_global_id rejects these


async def nodes(ctx, ids: list[str]) -> list:
    """Objects in the order asked; null for what does not exist or may not be seen."""
    if len(ids) > MAX_NODES:
        raise BadInput(f"At most {MAX_NODES} ids at once", field="ids")
    parsed = [parse_global_id(gid) for gid in ids]
    wanted: dict[str, set[int]] = defaultdict(set)
    for type_name, pk in parsed:
        wanted[type_name].add(pk)
    found: dict[tuple[str, int], object] = {}
    for type_name, pks in wanted.items():
        qs = await _scope(ctx.viewer, type_name)
        for row in await qs.filter(id__in=pks):
            found[(type_name, row.id)] = row
    return [found.get(key) for key in parsed]


async def node(ctx, gid: str):
    return (await nodes(ctx, [gid]))[0]
