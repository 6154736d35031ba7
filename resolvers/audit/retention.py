"""Audit retention: entries older than their organization's plan keeps are deleted, in bounded
batches, by a background task of every instance (hourly) and by `pcg audit prune`.

Each plan has its own setting (PCG_AUDIT_RETENTION_DAYS_FREE / _PRO / _ENTERPRISE, 0 meaning
forever); entries of no organization (an account's own: sign-ups, logins, sessions) follow the free plan's. An organization's
entries go by its plan at the time of pruning.

No statement deletes more than `batch` rows, and none reads more than it deletes: each
organization's expired entries are walked oldest first on the audit index (organization_id,
created_at, id) by keyset, `batch` keys at a time, and each batch is deleted as the key range
it spans (`after the previous batch's last key, up to this one's`); entries of no
organization likewise (the index holds NULL too). Each DELETE is its own short statement (no
transaction spans the walk), so pruning a backlog of millions never holds the table or a long
lock, and another instance pruning at the same time only finds fewer rows. Seqs are taken in
commit order, so what goes is a prefix of each organization's log: a live subscriber resuming
from a pruned cursor gets AuditResyncRequired (resolvers/audit/stream.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from tortoise.expressions import Q

from models import AuditEntry, Organization, Plan, orm

if TYPE_CHECKING:
    from server.settings import Settings

log = logging.getLogger("pcg.audit")

PRUNE_BATCH = 1000
PRUNE_EVERY_SECONDS = 3600
# The first round waits this long after the instance starts: a boot (or several instances
# started together) is not also a burst of pruning, and short-lived processes prune nothing.
PRUNE_FIRST_AFTER_SECONDS = 60
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


ORG_CHUNK = 1000  # organizations of a plan read per statement


def _after(key: tuple[datetime, int] | None) -> Q:
    """Entries after `key` in (created_at, id) order. The bound on created_at alone is what
    PostgreSQL seeks the index with; the OR that breaks ties by id only filters."""
    if key is None:
        return Q()
    at, pk = key
    return Q(Q(created_at__gt=at) | Q(created_at=at, id__gt=pk), created_at__gte=at)


def _up_to(key: tuple[datetime, int]) -> Q:
    at, pk = key
    return Q(Q(created_at__lt=at) | Q(created_at=at, id__lte=pk), created_at__lte=at)


async def _prune_log(owner: Q, cutoff: datetime, batch: int, pruned: Pruned) -> int:
    """Delete one log's (an organization's, or that of no organization) entries older than
    `cutoff`, `batch` at a time, oldest first."""
    deleted, last = 0, None
    while True:
        keys = await (
            AuditEntry.filter(owner, _after(last), created_at__lt=cutoff)
            .order_by("created_at", "id").limit(batch).values_list("created_at", "id")
        )
        if not keys:
            break
        upto = keys[-1]
        count = await AuditEntry.filter(owner, _after(last), _up_to(upto), created_at__lt=cutoff).delete()
        pruned.batches.append(count)
        deleted += count
        last = upto
        if len(keys) < batch:
            break
        await asyncio.sleep(0)  # let requests in between batches
    return deleted


async def _logs_of(scope: str) -> AsyncIterator[Q]:
    """The logs a scope holds: each organization of the plan, or the one of no organization."""
    if scope == NO_ORGANIZATION:
        yield Q(organization_id__isnull=True)
        return
    last = 0
    while True:
        ids: list[int] = await orm.column_values(
            Organization.filter(plan=Plan(scope), id__gt=last).order_by("id").limit(ORG_CHUNK), "id"
        )
        for organization_id in ids:
            yield Q(organization_id=organization_id)
        if len(ids) < ORG_CHUNK:
            return
        last = ids[-1]


async def prune(settings: Settings, *, now: datetime | None = None, batch: int = PRUNE_BATCH) -> Pruned:
    now = now or datetime.now(UTC)
    pruned = Pruned()
    for scope, days in retention(settings).items():
        if days == 0:
            continue
        cutoff = now - timedelta(days=days)
        deleted = 0
        async for owner in _logs_of(scope):
            deleted += await _prune_log(owner, cutoff, batch, pruned)
        if deleted:
            pruned.by_scope[scope] = deleted
    return pruned


def enabled(settings: Settings) -> bool:
    return any(retention(settings).values())


async def prune_forever(settings: Settings) -> None:
    await asyncio.sleep(PRUNE_FIRST_AFTER_SECONDS)
    while True:
        try:
            pruned = await prune(settings)
            if pruned.total:
                log.info("pruned %d audit entries past retention (%s)", pruned.total,
                         ", ".join(f"{scope}: {n}" for scope, n in pruned.by_scope.items()))
        except Exception:  # noqa: BLE001 - try again next round
            log.warning("pruning audit entries failed", exc_info=True)
        await asyncio.sleep(PRUNE_EVERY_SECONDS)
