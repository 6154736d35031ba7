"""Board events: appended inside a write's transaction, published after it commits."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import orjson
from tortoise.expressions import F

from models import BoardEvent, Project

log = logging.getLogger("pcg.events")


# Messages larger than this go out as stubs (seq only) and subscribers read the event from
# the log: PostgreSQL NOTIFY payloads are limited to 8000 bytes.
MAX_WIRE_BYTES = 7000


def channel(project_id: int) -> str:
    return f"board:{project_id}"


def access_channel(user_id: int) -> str:
    """Nudges a user's open streams to re-check their access (membership changed)."""
    return f"access:{user_id}"


async def append(project_id: int, type_: str, payload: dict, actor_id: int | None) -> BoardEvent:
    """Take the project's next seq and store the event. Must run inside the write's transaction.

    The UPDATE takes the project row lock on PostgreSQL, so the next writer of the same
    project waits until this one commits: seq N is always committed before N+1 exists.
    """
    await Project.filter(id=project_id).update(event_seq=F("event_seq") + 1)
    seq = await Project.filter(id=project_id).first().values_list("event_seq", flat=True)
    return await BoardEvent.create(
        project_id=project_id, seq=seq, type=type_, payload=payload, actor_id=actor_id
    )


def wire(event: BoardEvent) -> str:
    """The broadcast message: JSON text on every backend."""
    full = orjson.dumps(
        {
            "id": event.id,
            "projectId": event.project_id,
            "seq": event.seq,
            "type": event.type,
            "payload": event.payload,
            "actorId": event.actor_id,
            "at": event.created_at.isoformat(),
        }
    )
    if len(full) > MAX_WIRE_BYTES:
        return orjson.dumps({"projectId": event.project_id, "seq": event.seq}).decode()
    return full.decode()


async def publish(broadcast, events: list[BoardEvent], access_user_ids=()) -> None:
    """Best effort: subscribers refill any gap from the table, so a lost publish is not lost data."""
    if broadcast is None:
        return
    messages = [(channel(e.project_id), wire(e)) for e in events]
    messages += [(access_channel(uid), "{}") for uid in sorted(set(access_user_ids))]
    for name, message in messages:
        try:
            await broadcast.publish(channel=name, message=message)
        except Exception as exc:  # noqa: BLE001 - the write has committed; never fail it now
            log.warning("publish to %s failed (%s); subscribers will refill from the log", name, exc)


PRUNE_EVERY_SECONDS = 3600


async def prune(retention_days: int) -> int:
    """Delete events older than the retention window; returns how many went."""
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    return await BoardEvent.filter(created_at__lt=cutoff).delete()


async def prune_forever(retention_days: int) -> None:
    while True:
        try:
            removed = await prune(retention_days)
            if removed:
                log.info("pruned %d board events older than %d days", removed, retention_days)
        except Exception:  # noqa: BLE001 - try again next round
            log.warning("pruning board events failed", exc_info=True)
        await asyncio.sleep(PRUNE_EVERY_SECONDS)
