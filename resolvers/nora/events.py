"""A conversation's event log: the same gap-free pattern as the board, channel `nora:<id>`.

Events are appended inside a transaction (the conversation row's `event_seq` is bumped
first, so on PostgreSQL its row lock orders writers) and published only after it commits.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import orjson
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from models import Conversation, NoraEvent
from resolvers.events import MAX_WIRE_BYTES
from resolvers.streams import EventLog

log = logging.getLogger("pcg.nora")


def channel(conversation_id: int) -> str:
    return f"nora:{conversation_id}"


def cancel_channel(message_id: int) -> str:
    """Where cancelNoraMessage reaches the instance that generates the message."""
    return f"nora-cancel:{message_id}"


async def append(conversation_id: int, type_: str, payload: dict) -> NoraEvent:
    """Take the conversation's next seq and store the event. Must run inside a transaction."""
    await Conversation.filter(id=conversation_id).update(event_seq=F("event_seq") + 1)
    seq = await Conversation.filter(id=conversation_id).first().values_list("event_seq", flat=True)
    return await NoraEvent.create(conversation_id=conversation_id, seq=seq, type=type_, payload=payload)


def wire(event: NoraEvent) -> str:
    full = orjson.dumps(
        {
            "id": event.id,
            "conversationId": event.conversation_id,
            "seq": event.seq,
            "type": event.type,
            "payload": event.payload,
            "at": event.created_at.isoformat(),
        }
    )
    if len(full) > MAX_WIRE_BYTES:
        # Subscribers read an oversized event (a long final reply) from the log.
        return orjson.dumps({"conversationId": event.conversation_id, "seq": event.seq}).decode()
    return full.decode()


def from_wire(data: dict) -> NoraEvent:
    event = NoraEvent(
        id=data["id"],
        conversation_id=data["conversationId"],
        seq=data["seq"],
        type=data["type"],
        payload=data["payload"],
        created_at=datetime.fromisoformat(data["at"]),
    )
    event._saved_in_db = True
    return event


NORA_LOG = EventLog(
    kind="nora", model=NoraEvent, owner=Conversation, key="conversation_id", channel=channel,
    from_wire=from_wire,
)


async def publish(broadcast, events: list[NoraEvent]) -> None:
    """Best effort, like the board: a lost publish is refilled from the log by subscribers."""
    if broadcast is None:
        return
    for event in events:
        try:
            await broadcast.publish(channel=channel(event.conversation_id), message=wire(event))
        except Exception as exc:  # noqa: BLE001 - committed already; never fail the write now
            log.warning("publish of nora event failed (%s); subscribers will refill", exc)


class EventBatch:
    def __init__(self) -> None:
        self.events: list[NoraEvent] = []

    async def event(self, conversation_id: int, type_: str, payload: dict) -> NoraEvent:
        event = await append(conversation_id, type_, payload)
        self.events.append(event)
        return event


@asynccontextmanager
async def writing(broadcast) -> AsyncIterator[EventBatch]:
    """One transaction for rows and events; the events go out after it commits."""
    batch = EventBatch()
    async with in_transaction():
        yield batch
    await publish(broadcast, batch.events)
