"""Audit retention: entries older than their organization's plan keeps are deleted, in bounded
batches, by a background task of every instance (hourly) and by `pcg audit prune`.

Each plan has its own setting (PCG_AUDIT_RETENTION_DAYS_FREE / _PRO / _ENTERPRISE, 0 meaning
forever); entries of no organization (sign-ups) follow the free plan's. An organization's
entries go by its plan at the time of pruning.

No statement deletes more than `batch` rows: a keyset walk in id order reads the next
`batch` ids of expired entries, then deletes the expired entries whose id lies in that range
(`id > last AND id <= highest`). Each DELETE is its own short statement (no transaction
spans the walk), so pruning a backlog of millions never holds the table or a long lock, and
another instance pruning at the same time only finds fewer rows. Seqs are taken in commit
order, so what goes is a prefix of each organization's log: a live subscriber resuming from
a pruned cursor gets AuditResyncRequired (resolvers/audit_stream.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from tortoise.expressions import Q, Subquery

from models import AuditEntry, Organization, Plan

if TYPE_CHECKING:
    from server.settings import Settings

log = logging.getLogger("pcg.audit")

PRUNE_BATCH = 1000
PRUNE_EVERY_SECONDS = 3600
# The scope an entry is kept by: its organization's plan, or none.
NO_ORGANIZATION = "none"


def retention(settings: Settings) -> dict[str, int]:
    """Days kept per scope (plan value, or NO_ORGANIZATION); 0: forever."""
    return {
        Plan.FREE.value: settings.audit_retention_days_free,
        Plan.PRO.value: settings.audit_retention_days_pro,
        Plan.ENTERPRISE.value: settings.audit_retention_days_enterprise,
        NO_ORGANIZATION: settings.audit_retention_days_free,
    }


@dataclass
class Pruned:
    """What a prune deleted: per scope, and the rows of each DELETE statement in order."""

    by_scope: dict[str, int] = field(default_factory=dict)
    batches: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.by_scope.values())


def _expired(scope: str, cutoff: datetime) -> Q:
    if scope == NO_ORGANIZATION:
        return Q(organization_id__isnull=True, created_at__lt=cutoff)
    plan_orgs = Subquery(Organization.filter(plan=Plan(scope)).values("id"))
    return Q(organization_id__in=plan_orgs, created_at__lt=cutoff)


async def prune(settings: Settings, *, now: datetime | None = None, batch: int = PRUNE_BATCH) -> Pruned:
    now = now or datetime.now(UTC)
    pruned = Pruned()
    for scope, days in retention(settings).items():
        if days == 0:
            continue
        expired = _expired(scope, now - timedelta(days=days))
        deleted, last = 0, 0
        while True:
            ids = await (
                AuditEntry.filter(expired, id__gt=last).order_by("id").limit(batch).values_list("id", flat=True)
            )
            if not ids:
                break
            count = await AuditEntry.filter(expired, id__gt=last, id__lte=ids[-1]).delete()
            pruned.batches.append(count)
            deleted += count
            last = ids[-1]
            if len(ids) < batch:
                break
            await asyncio.sleep(0)  # let requests in between batches
        if deleted:
            pruned.by_scope[scope] = deleted
    return pruned


def enabled(settings: Settings) -> bool:
    return any(retention(settings).values())


async def prune_forever(settings: Settings) -> None:
    while True:
        try:
            pruned = await prune(settings)
            if pruned.total:
                log.info("pruned %d audit entries past retention (%s)", pruned.total,
                         ", ".join(f"{scope}: {n}" for scope, n in pruned.by_scope.items()))
        except Exception:  # noqa: BLE001 - try again next round
            log.warning("pruning audit entries failed", exc_info=True)
        await asyncio.sleep(PRUNE_EVERY_SECONDS)
