"""Gap-free event streams: subscribe, replay from the log, then go live.

1. authorize; 2. subscribe to the channel (before reading, so nothing published meanwhile is
missed); 3. replay logged events after the cursor; 4. stream live events, dropping any seq
already sent and refilling from the log whenever a jump in seq, a GAP from a reconnecting
broker or an oversized (stub) message shows that something was not carried live.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import orjson

from models import BoardEvent, Project
from resolvers.broadcast import GAP
from resolvers.errors import BadInput, Forbidden, NotFound
from resolvers.events import access_channel, channel

REFILL_BATCH = 500
# Re-check read access at least this often even without a membership signal.
ACCESS_RECHECK_SECONDS = 30.0
ACCESS_EVENTS = frozenset({"MemberRemoved", "MemberRoleChanged"})


@dataclass(frozen=True)
class ResyncRequired:
    """The cursor is older than the log keeps: refetch, then resubscribe from `seq`."""

    project_id: int
    seq: int
    occurred_at: datetime


def encode_cursor(project_id: int, seq: int) -> str:
    return base64.urlsafe_b64encode(f"board:{project_id}:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, project_id: int) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, pid, seq = raw.split(":")
        if kind != "board" or int(pid) != project_id or int(seq) < 0:
            raise ValueError
        return int(seq)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadInput("Malformed cursor, or a cursor of another stream", field="after") from None


def from_wire(data: dict) -> BoardEvent:
    event = BoardEvent(
        id=data["id"],
        project_id=data["projectId"],
        seq=data["seq"],
        type=data["type"],
        payload=data["payload"],
        actor_id=data["actorId"],
        created_at=datetime.fromisoformat(data["at"]),
    )
    event._saved_in_db = True
    return event


async def _current_seq(project_id: int) -> int:
    return await Project.filter(id=project_id).first().values_list("event_seq", flat=True) or 0


async def _oldest_kept(project_id: int) -> int | None:
    row = await BoardEvent.filter(project_id=project_id).order_by("seq").first().values_list("seq", flat=True)
    return row


async def _refill(project_id: int, after: int, upto: int | None = None) -> list[BoardEvent]:
    qs = BoardEvent.filter(project_id=project_id, seq__gt=after)
    if upto is not None:
        qs = qs.filter(seq__lte=upto)
    return list(await qs.order_by("seq").limit(REFILL_BATCH))


async def _still_readable(viewer, project_id: int) -> bool:
    await viewer.reload()
    try:
        await viewer.project(project_id)
        return True
    except NotFound:
        return False


async def board_events(ctx, project_id: int, after: str | None) -> AsyncIterator[BoardEvent | ResyncRequired]:
    viewer = ctx.viewer
    await viewer.project(project_id)  # NOT_FOUND exactly as for a project that does not exist
    last = decode_cursor(after, project_id) if after is not None else None
    async with ctx.broadcast.subscribe(channel(project_id), access_channel(viewer.user_id)) as sub:
        if last is None:
            last = await _current_seq(project_id)
        else:
            oldest = await _oldest_kept(project_id)
            current = await _current_seq(project_id)
            floor = oldest if oldest is not None else current + 1
            if last > current:
                raise BadInput("Cursor is ahead of this stream", field="after")
            if last + 1 < floor:
                yield ResyncRequired(project_id, current, datetime.now().astimezone())
                last = current

        async def refill(upto: int | None = None):
            nonlocal last
            while True:
                batch = await _refill(project_id, last, upto)
                for event in batch:
                    last = event.seq
                    yield event
                if len(batch) < REFILL_BATCH:
                    return

        async for event in refill():
            yield event
        while True:
            try:
                message = await asyncio.wait_for(sub.get(), ACCESS_RECHECK_SECONDS)
            except TimeoutError:
                if not await _still_readable(viewer, project_id):
                    raise Forbidden("You no longer have access to this project") from None
                continue
            if message.channel != channel(project_id):
                if not await _still_readable(viewer, project_id):
                    raise Forbidden("You no longer have access to this project")
                continue
            if message.message == GAP:
                async for event in refill():
                    yield event
                continue
            data = orjson.loads(message.message)
            seq = data["seq"]
            if seq <= last:
                continue
            if seq == last + 1 and "payload" in data:
                events = [from_wire(data)]
                last = seq
            else:
                events = [e async for e in refill(upto=seq)]
            for event in events:
                if event.type in ACCESS_EVENTS and not await _still_readable(viewer, project_id):
                    raise Forbidden("You no longer have access to this project")
                yield event


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def materialize(model, snapshot: dict | None):
    """A read-only model instance from an event snapshot (camelCase keys, ISO dates)."""
    if snapshot is None:
        return None
    from datetime import date

    from tortoise.fields import DateField, DatetimeField
    from tortoise.fields.data import CharEnumFieldInstance

    fields = model._meta.fields_map
    values = {}
    for key, value in snapshot.items():
        name = _snake(key)
        field = fields.get(name)
        if field is None:
            continue
        if value is not None:
            if isinstance(field, DatetimeField):
                value = datetime.fromisoformat(value)
            elif isinstance(field, DateField):
                value = date.fromisoformat(value)
            elif isinstance(field, CharEnumFieldInstance):
                value = field.enum_type(value)
        values[name] = value
    instance = model(**values)
    instance._saved_in_db = True
    return instance
