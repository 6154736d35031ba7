"""Gap-free event streams: subscribe, replay from the log, then go live.

One implementation for every log (the board's BoardEvents, NORA's NoraEvents), each
described by an `EventLog` (resolvers/event/log.py):

1. authorize; 2. subscribe to the channel (before reading, so nothing published meanwhile is
missed); 3. replay logged events after the cursor; 4. stream live events, dropping any seq
already sent and refilling from the log whenever a jump in seq, a GAP from a reconnecting
broker or an oversized (stub) message shows that something was not carried live.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from tortoise.expressions import Q
from tortoise.models import Model

from models import ApiKey, BoardEvent, BoardEventType, Session
from resolvers import metrics
from resolvers.broadcast import GAP
from resolvers.errors import BadInput, Forbidden, NotFound, Unauthenticated
from resolvers.event.log import BOARD, REFILL_BATCH, EventLog, access_channel

if TYPE_CHECKING:
    from resolvers.access import Access
    from resolvers.context import Context

E = TypeVar("E", bound=Model)

# Re-check read access at least this often even without a membership signal.
ACCESS_RECHECK_SECONDS = 30.0
ACCESS_EVENTS = frozenset({BoardEventType.MEMBER_REMOVED.value, BoardEventType.MEMBER_ROLE_CHANGED.value})


@dataclass(frozen=True)
class LogGap:
    """The cursor is older than the log keeps: the client must refetch, then resubscribe from
    `seq`. The schema shows it as ResyncRequired (board) or NoraResyncRequired (NORA)."""

    key: int
    seq: int
    occurred_at: datetime

    @property
    def project_id(self) -> int:
        return self.key


def encode_cursor(project_id: int, seq: int) -> str:
    return BOARD.encode_cursor(project_id, seq)


async def follow(
    ctx: Context,
    log: EventLog[E],
    key: int,
    after: str | None,
    *,
    still_readable: Callable[[], Awaitable[bool]],
    lost_access: str,
    access_events: frozenset[str] = frozenset(),
) -> AsyncIterator[E | LogGap]:
    """The gap-free stream of one log. The caller has authorized the first read (step 1)."""
    access = ctx.access
    cursor = log.decode_cursor(after, key) if after is not None else None
    own_channel = log.channel(key)
    if ctx.broadcast is None:
        raise RuntimeError("a stream needs the broadcast hub (this context has none)")
    async with ctx.broadcast.subscribe(own_channel, access_channel(access.user_id)) as sub:
        last: int
        if cursor is None:
            last = await log.current_seq(key)
        else:
            last = cursor
            # Current first: an event committed between the two reads then only raises the
            # floor to its own seq, which `after` still reaches (the other order made a fresh,
            # empty log answer ResyncRequired to a valid cursor).
            current = await log.current_seq(key)
            oldest = await log.oldest_kept(key)
            floor = oldest if oldest is not None else current + 1
            if last > current:
                raise BadInput("Cursor is ahead of this stream", field="after")
            if last + 1 < floor:
                metrics.resync(log.kind)
                yield LogGap(key, current, datetime.now().astimezone())
                last = current

        async def refill(upto: int | None = None) -> AsyncIterator[E]:
            nonlocal last
            while True:
                batch = await log.after(key, last, upto)
                for event in batch:
                    last = log.seq_of(event)
                    yield event
                if len(batch) < REFILL_BATCH:
                    return

        async for event in refill():
            metrics.delivered(log.kind).inc()
            yield event
        while True:
            try:
                # asyncio.timeout, not wait_for: no extra task per message on a hot path.
                async with asyncio.timeout(ACCESS_RECHECK_SECONDS):
                    message = await sub.get()
            except TimeoutError:
                if not await still_readable():
                    raise Forbidden(lost_access) from None
                continue
            if message.channel != own_channel:
                if not await still_readable():
                    raise Forbidden(lost_access)
                continue
            if message.message == GAP:
                metrics.refill(log.kind, "broker_gap")
                async for event in refill():
                    # As for live events: the event that took the viewer's access away (and
                    # whatever follows it) is not delivered to them.
                    if log.type_of(event) in access_events and not await still_readable():
                        raise Forbidden(lost_access)
                    metrics.delivered(log.kind).inc()
                    yield event
                continue
            data, live_event = _decoded(log, message.message)
            seq = data["seq"]
            if seq <= last:
                continue
            if seq == last + 1 and live_event is not None:
                events = [live_event]
                last = seq
            else:
                metrics.refill(log.kind, "seq_jump")
                events = [e async for e in refill(upto=seq)]
            for event in events:
                if log.type_of(event) in access_events and not await still_readable():
                    raise Forbidden(lost_access)
                metrics.delivered(log.kind).inc()
                yield event


@functools.lru_cache(maxsize=1024)
def _decoded(log: EventLog[E], message: str) -> tuple[dict[str, Any], E | None]:
    """A broadcast reaches every subscriber of this process as the same string: decode it
    and build its event once for all of them (shared, so read-only; `models.snapshot.load` caches
    on its payload). A stub (no payload) gives no event: subscribers refill from the log."""
    data = orjson.loads(message)
    return data, (log.from_wire(data) if "payload" in data else None)


async def credential_still_valid(access: Access) -> bool:
    """A revoked or expired API key ends its streams, not only its next request; so does an
    ended session (UNAUTHENTICATED): a websocket is closed as the session ends, and this ends
    the streams that have no socket (graphql-sse, multipart) at their next access check."""
    key = access.api_key
    if key is None:
        principal = access.principal
        session_id = principal.session_id if principal is not None else None
        if session_id is not None and not await Session.filter(id=session_id, revoked_at__isnull=True).exists():
            raise Unauthenticated("This session has ended: log in again", reason="SESSION_REVOKED")
        return True
    return await ApiKey.filter(id=key.id, revoked_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=datetime.now(UTC))
    ).exists()


async def _still_readable(access: Access, project_id: int) -> bool:
    if not await credential_still_valid(access):
        return False
    await access.reload()
    try:
        await access.project(project_id)
        return True
    except NotFound:
        return False


async def board_events(ctx: Context, project_id: int, after: str | None) -> AsyncIterator[BoardEvent | LogGap]:
    access = ctx.access
    await access.project(project_id)  # NOT_FOUND exactly as for a project that does not exist
    async for item in follow(
        ctx,
        BOARD,
        project_id,
        after,
        still_readable=lambda: _still_readable(access, project_id),
        lost_access="You no longer have access to this project",
        access_events=ACCESS_EVENTS,
    ):
        yield item
