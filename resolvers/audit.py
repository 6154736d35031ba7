"""Audit entries, written inside the same transaction as the change they describe."""

from __future__ import annotations

from models import AuditEntry


async def record(
    ctx,
    action: str,
    resource_type: str,
    resource_id: int | str,
    *,
    organization_id: int | None,
    before: dict | None = None,
    after: dict | None = None,
    actor_id: int | None = None,
) -> AuditEntry:
    principal = ctx.viewer.principal
    return await AuditEntry.create(
        organization_id=organization_id,
        actor_id=actor_id if actor_id is not None else (principal.user.id if principal else None),
        api_key_id=principal.api_key.id if principal and principal.api_key else None,
        action=action,
        resource_type=resource_type,
        resource_id=str(resource_id),
        before=before,
        after=after,
        ip=ctx.ip,
        request_id=ctx.request_id,
    )
