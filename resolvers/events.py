"""Board events: appended inside a write's transaction, published after it commits."""

from __future__ import annotations

import logging

import orjson
from tortoise.expressions import F

from models import BoardEvent, Project

log = logging.getLogger("pcg.events")


def channel(project_id: int) -> str:
    return f"board:{project_id}"


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
    return orjson.dumps(
        {
            "id": event.id,
            "projectId": event.project_id,
            "seq": event.seq,
            "type": event.type,
            "payload": event.payload,
            "actorId": event.actor_id,
            "at": event.created_at.isoformat(),
        }
    ).decode()


async def publish(broadcast, events: list[BoardEvent]) -> None:
    """Best effort: subscribers refill any gap from the table, so a lost publish is not lost data."""
    if broadcast is None:
        return
    for event in events:
        try:
            await broadcast.publish(channel=channel(event.project_id), message=wire(event))
        except Exception:  # noqa: BLE001 - the write has committed; never fail it now
            log.exception("publish of board event %s/%s failed", event.project_id, event.seq)
