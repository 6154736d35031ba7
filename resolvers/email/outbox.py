"""The outbox table's operations: queue (inside a write), claim, and record the outcome.

Claiming is safe across workers and instances: a worker picks due rows (on PostgreSQL with
`FOR UPDATE SKIP LOCKED`, so concurrent workers pick different rows without waiting), then
takes them with an UPDATE that re-checks they are still due and stamps its own random claim
token, then reads back the rows that carry its token. The UPDATE's re-check makes the claim
exclusive even where the lock is not (SQLite ignores FOR UPDATE; a second process there
finds the rows no longer due). Outcomes are written only while the claim is still ours, so
a worker that outlived its lease cannot overwrite the next worker's result.

A claim lasts LEASE: longer than a whole batch can take (every SMTP step is bounded by
PCG_SMTP_TIMEOUT). A worker that dies mid-batch leaves its rows SENDING until the lease lapses;
then any worker takes them again. A message whose SMTP transaction completed just before such
a death is sent twice (with the same Message-ID): SMTP gives no way to make it exactly once.
"""

from __future__ import annotations

import email.utils
import random
import secrets
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.expressions import F, Q
from tortoise.queryset import QuerySet

from models import OutboxEmail, OutboxStatus
from resolvers.email import templates

BATCH = 20

# The outbox workers running in this process (resolvers/email/worker.py), woken after a
# commit that queued a message so that it leaves at once rather than at the next poll.
WORKERS: weakref.WeakSet[Any] = weakref.WeakSet()


def wake_all() -> None:
    for worker in list(WORKERS):
        worker.wake()


def _message_id(sender_address: str) -> str:
    domain = sender_address.rpartition("@")[2] or "localhost"
    return email.utils.make_msgid(domain=domain.encode("idna").decode("ascii"))


async def queue(
    to: str, template: str, context: dict[str, Any], *, sender_address: str, user_id: int | None = None
) -> OutboxEmail:
    """Render and store one message, due now. Call inside a unit of work (work.email)."""
    rendered = templates.render(template, context)
    return await OutboxEmail.create(
        template=template,
        to_address=to,
        user_id=user_id,
        subject=rendered.subject,
        text_body=rendered.text,
        html_body=rendered.html,
        message_id=_message_id(sender_address),
        next_attempt_at=datetime.now(UTC),
    )


def _due(now: datetime) -> Q:
    return Q(status=OutboxStatus.PENDING, next_attempt_at__lte=now) | Q(
        status=OutboxStatus.SENDING, lease_until__lte=now
    )


async def claim(lease: timedelta, batch: int = BATCH) -> list[OutboxEmail]:
    """Take up to `batch` due messages for this worker. Runs inside a unit of work."""
    now = datetime.now(UTC)
    # Model rows, not values_list(): Tortoise drops FOR UPDATE from a values query
    # (tests/test_email_outbox_claims.py pins the SQL).
    candidates = await (
        OutboxEmail.filter(_due(now))
        .order_by("next_attempt_at", "id")
        .limit(batch)
        .select_for_update(skip_locked=True)
        .only("id")
    )
    if not candidates:
        return []
    token = secrets.token_hex(16)
    await OutboxEmail.filter(Q(id__in=[row.id for row in candidates]) & _due(now)).update(
        status=OutboxStatus.SENDING, claim=token, lease_until=now + lease,
        attempts=F("attempts") + 1,
    )
    return list(await OutboxEmail.filter(claim=token).order_by("next_attempt_at", "id"))


def _ours(row: OutboxEmail) -> QuerySet[OutboxEmail]:
    return OutboxEmail.filter(id=row.id, claim=row.claim, status=OutboxStatus.SENDING)


async def mark_sent(row: OutboxEmail) -> bool:
    """Sent: the bodies (they hold the token) are emptied; the row stays for a while."""
    return bool(await _ours(row).update(
        status=OutboxStatus.SENT, sent_at=datetime.now(UTC), claim=None, lease_until=None,
        text_body="", html_body="", last_error=None,
    ))


def backoff(attempts: int, base: float, cap: float = 3600.0) -> float:
    """Seconds before the next attempt after `attempts` failed ones: exponential, capped,
    with "equal jitter" (half fixed, half random) so instances that failed together do not
    retry together, and no retry comes sooner than half the step."""
    step = min(cap, base * 2 ** max(0, attempts - 1))
    return float(step / 2 + random.uniform(0, step / 2))


async def mark_failed(
    row: OutboxEmail, error: str, *, permanent: bool, max_attempts: int, retry_base: float
) -> float | None:
    """Back to PENDING after a backoff (its seconds are returned), or DEAD (None) when refused
    for good or out of attempts."""
    dead = permanent or row.attempts >= max_attempts
    status = OutboxStatus.DEAD if dead else OutboxStatus.PENDING
    changes: dict[str, Any] = {"status": status, "claim": None, "lease_until": None, "last_error": error[:2000]}
    delay = None if dead else backoff(row.attempts, retry_base)
    if delay is not None:
        changes["next_attempt_at"] = datetime.now(UTC) + timedelta(seconds=delay)
    await _ours(row).update(**changes)
    return delay


async def counts() -> dict[OutboxStatus, int]:
    """Rows by status (for the pending and dead gauges)."""
    from tortoise.functions import Count

    rows = await OutboxEmail.annotate(n=Count("id")).group_by("status").values("status", "n")
    found = {OutboxStatus(r["status"]): r["n"] for r in rows}
    return {status: found.get(status, 0) for status in OutboxStatus}


async def prune(sent_before: datetime) -> int:
    return await OutboxEmail.filter(status=OutboxStatus.SENT, sent_at__lt=sent_before).delete()


async def requeue_dead(ids: list[int] | None = None) -> int:
    """Operators: give DEAD messages (all, or these) a fresh set of attempts."""
    qs = OutboxEmail.filter(status=OutboxStatus.DEAD)
    if ids is not None:
        qs = qs.filter(id__in=ids)
    return await qs.update(
        status=OutboxStatus.PENDING, attempts=0, next_attempt_at=datetime.now(UTC), last_error=None,
    )
