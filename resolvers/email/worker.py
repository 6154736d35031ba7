"""The outbox worker: one per app instance (started in the app's lifespan, like NORA's runtime).

It claims due messages (resolvers/email/outbox.py), sends them over one SMTP connection per
batch, and records each outcome: SENT; or a failed attempt, retried after an exponential
backoff with jitter; or DEAD, when the server refused the message for good or it ran out of
PCG_OUTBOX_MAX_ATTEMPTS. It wakes at once when a write of this process queued a message
(`outbox.wake_all`, called after commit by the unit of work), and otherwise every POLL_SECONDS, which
is also how a message queued on another instance or retried after its backoff is picked up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models import OutboxEmail
    from server.settings import Settings

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from models import OutboxStatus
from resolvers import metrics
from resolvers.access import Access
from resolvers.context import Context
from resolvers.email import outbox
from resolvers.email.transport import PermanentFailure, TransientFailure, Transport, make_transport
from resolvers.unit_of_work import unit_of_work

log = logging.getLogger("pcg.email")

POLL_SECONDS = 5.0
HOUSEKEEPING_SECONDS = 3600.0
# Sent messages (their bodies already emptied) are kept this long, then deleted.
KEEP_SENT = timedelta(days=7)

class OutboxWorker:
    def __init__(self, settings: Settings, transport: Transport | None = None) -> None:
        self.settings = settings
        self.transport = transport if transport is not None else make_transport(settings)
        self.max_attempts = settings.outbox_max_attempts
        self.retry_base = settings.outbox_retry_seconds
        self.poll_seconds = POLL_SECONDS
        # Long enough for a whole batch: connect, then each message, every step bounded.
        self.lease = timedelta(seconds=settings.smtp_timeout * (outbox.BATCH + 2) + 60)
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._next_retry = float("inf")  # monotonic time of the soonest retry this worker set

    @property
    def enabled(self) -> bool:
        return self.settings.outbox_worker and self.transport is not None

    async def start(self) -> None:
        if not self.settings.outbox_worker:
            return
        if self.transport is None:
            log.warning("PCG_SMTP_URL is not set: emails stay in the outbox, unsent, until it is")
            return
        self._wakeup = asyncio.Event()
        outbox.WORKERS.add(self)
        self._task = asyncio.create_task(self._run_forever(), name="outbox-worker")

    async def stop(self) -> None:
        outbox.WORKERS.discard(self)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    def _context(self) -> Context:
        return Context(settings=self.settings, access=Access(None), broadcast=None, request_id="outbox")

    async def run_once(self) -> int:
        """Claim one batch and deliver it; the number of messages it handled."""
        async with unit_of_work(self._context()):
            rows = await outbox.claim(self.lease)
        if rows:
            await self._deliver(rows)
        return len(rows)

    async def drain(self) -> int:
        """Deliver until nothing is due (tests and `pcg outbox send`)."""
        total = 0
        while handled := await self.run_once():
            total += handled
        return total

    async def _deliver(self, rows: list[OutboxEmail]) -> None:
        assert self.transport is not None
        remaining = list(rows)
        try:
            async with self.transport.session() as session:
                while remaining:
                    row = remaining[0]
                    try:
                        await session.send(row)
                    except PermanentFailure as error:
                        await self._failed(row, str(error), permanent=True)
                    except TransientFailure as error:
                        await self._failed(row, str(error), permanent=False)
                    else:
                        if await outbox.mark_sent(row):
                            metrics.email_sent(row.template)
                            if self.transport.name != "log":
                                log.info("email %s sent (%s)", row.id, row.template)
                    remaining.pop(0)
        except TransientFailure as error:
            # The connection failed (or broke): every message not yet tried waits its turn.
            for row in remaining:
                await self._failed(row, str(error), permanent=False)

    async def _failed(self, row: OutboxEmail, error: str, *, permanent: bool) -> None:
        delay = await outbox.mark_failed(
            row, error, permanent=permanent, max_attempts=self.max_attempts, retry_base=self.retry_base
        )
        if delay is not None:
            # Wake for this retry even when it comes before the next poll.
            self._next_retry = min(self._next_retry, time.monotonic() + delay)
        if delay is None:
            metrics.email_failed(row.template, "dead")
            log.warning("email %s (%s) is dead after %d attempt(s): %s", row.id, row.template, row.attempts, error)
        else:
            metrics.email_failed(row.template, "retry")
            log.warning("email %s (%s) attempt %d failed, will retry: %s", row.id, row.template, row.attempts, error)

    async def sample(self) -> None:
        counts = await outbox.counts()
        metrics.OUTBOX_PENDING.set(counts[OutboxStatus.PENDING] + counts[OutboxStatus.SENDING])
        metrics.OUTBOX_DEAD.set(counts[OutboxStatus.DEAD])

    async def _housekeeping(self) -> None:
        await outbox.prune(datetime.now(UTC) - KEEP_SENT)
        from resolvers.identity import email_tokens

        await email_tokens.prune()

    async def _run_forever(self) -> None:
        assert self._wakeup is not None
        last_housekeeping = 0.0
        while True:
            self._wakeup.clear()
            try:
                handled = await self.run_once()
                await self.sample()
                if time.monotonic() - last_housekeeping > HOUSEKEEPING_SECONDS:
                    last_housekeeping = time.monotonic()
                    await self._housekeeping()
            except Exception:  # noqa: BLE001 - the database may be down: try again next round
                log.warning("outbox round failed", exc_info=True)
                handled = 0
            if handled >= outbox.BATCH:
                continue  # more may be due right away
            now = time.monotonic()
            wait = min(self.poll_seconds, max(0.0, self._next_retry - now))
            if self._next_retry <= now + wait:
                self._next_retry = float("inf")
            try:
                await asyncio.wait_for(self._wakeup.wait(), wait)
            except TimeoutError:
                pass
