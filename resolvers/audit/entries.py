"""Audit entries: written inside the same transaction as the change they describe, read by
organization owners and admins (a page, or a streamed export)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from models import AuditAction, AuditEntry, Organization
from resolvers import validation
from resolvers.access import OrgPermission
from resolvers.ids import decode_id
from resolvers.pagination import Order, Page, paginate
from resolvers.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from resolvers.context import Context

# Newest first by default; id (same direction) breaks ties between entries of one instant.
NEWEST_FIRST = Order((("created_at", True),))
OLDEST_FIRST = Order((("created_at", False),))
EXPORT_BATCH = 1000
_TEXT_MAX = 64  # every filtered column is varchar(64)


@dataclass(frozen=True)
class AuditFilter:
    """All given conditions must hold. `actor` is a User global ID; times are inclusive
    (`since`) and exclusive (`until`)."""

    actor: str | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    ip: str | None = None


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _text(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    # A value longer than the column, or with a NUL (PostgreSQL refuses it), matches nothing
    # any row could hold: refuse it rather than send it.
    return validation.text(value, field, max_len=_TEXT_MAX, required=False)


def narrow(qs: QuerySet[AuditEntry], flt: AuditFilter | None) -> QuerySet[AuditEntry]:
    if flt is None:
        return qs
    if flt.actor is not None:
        qs = qs.filter(actor_id=decode_id(flt.actor, "User", "actor"))
    for column, value, field in (
        ("action", flt.action, "action"),
        ("resource_type", flt.resource_type, "resourceType"),
        ("resource_id", flt.resource_id, "resourceId"),
        ("ip", flt.ip, "ip"),
    ):
        value = _text(value, field)
        if value is not None:
            qs = qs.filter(**{column: value})
    since, until = _aware(flt.since), _aware(flt.until)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    return qs


async def _entries_of(ctx: Context, organization_id: int) -> QuerySet[AuditEntry]:
    await ctx.access.require_org(OrgPermission.READ_AUDIT_LOG, organization_id)
    return (await ctx.access.audit_entries()).filter(organization_id=organization_id)


async def entries(
    ctx: Context,
    org: Organization,
    flt: AuditFilter | None,
    *,
    oldest_first: bool = False,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Page[AuditEntry]:
    qs = narrow(await _entries_of(ctx, org.id), flt)
    order = OLDEST_FIRST if oldest_first else NEWEST_FIRST
    return await paginate(qs, order, first=first, after=after, last=last, before=before)


async def export(
    ctx: Context, org: Organization, flt: AuditFilter | None
) -> AsyncIterator[list[AuditEntry]]:
    """The viewer's export of `org`'s log (owners and admins): see `start_export`."""
    return await start_export(ctx, narrow(await _entries_of(ctx, org.id), flt), org, flt)


async def operator_export(
    ctx: Context, org: Organization, flt: AuditFilter | None
) -> AsyncIterator[list[AuditEntry]]:
    """The CLI's export: whoever runs `pcg` on the server already holds the database, so no
    role is checked; the entry names no actor."""
    return await start_export(ctx, narrow(AuditEntry.filter(organization_id=org.id), flt), org, flt)


async def start_export(
    ctx: Context, qs: QuerySet[AuditEntry], org: Organization, flt: AuditFilter | None
) -> AsyncIterator[list[AuditEntry]]:
    """Record the export (committed before the first row leaves), then return the entries
    newest first as an iterator of keyset batches: memory stays constant in the log's length
    and no statement holds the table for the whole export."""

    async with unit_of_work(ctx) as work:
        await work.audit(
            AuditAction.AUDIT_EXPORT, org.id, organization_id=org.id,
            after={"filter": _describe(flt)},
        )
    return _batches(qs)


async def _batches(qs: QuerySet[AuditEntry]) -> AsyncIterator[list[AuditEntry]]:
    last: AuditEntry | None = None
    while True:
        page = qs
        if last is not None:
            # The bound on created_at alone is what PostgreSQL can seek the index with; the
            # OR that breaks ties by id is only a filter there.
            page = page.filter(
                Q(created_at__lt=last.created_at) | Q(created_at=last.created_at, id__lt=last.id),
                created_at__lte=last.created_at,
            )
        rows = list(await page.order_by("-created_at", "-id").limit(EXPORT_BATCH))
        if rows:
            yield rows
        if len(rows) < EXPORT_BATCH:
            return
        last = rows[-1]


def _describe(flt: AuditFilter | None) -> dict[str, Any]:
    """The filter as the export's audit entry records it (JSON)."""
    if flt is None:
        return {}
    out: dict[str, Any] = {}
    for name, value in vars(flt).items():
        if value is not None:
            out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out
