"""A conversation's event log: the same gap-free pattern as the board, channel `nora:<id>`.

Events are appended inside a transaction (the conversation row's `event_seq` is bumped
first, so on PostgreSQL its row lock orders writers) and published only after it commits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tortoise.transactions import in_transaction

from models import NoraConversation, NoraEvent
from resolvers.event.log import EventLog


def channel(conversation_id: int) -> str:
    return f"nora:{conversation_id}"


def cancel_channel(message_id: int) -> str:
    """Where cancelNoraMessage reaches the instance that generates the message."""
    return f"nora-cancel:{message_id}"


NORA_LOG = EventLog(kind="nora", model=NoraEvent, owner=NoraConversation, key="conversation_id", channel=channel)


class EventBatch:
    def __init__(self) -> None:
        self.events: list[NoraEvent] = []

    async def event(self, conversation_id: int, type_: str, payload: dict) -> NoraEvent:
        event = await NORA_LOG.append(conversation_id, type_, payload)
        self.events.append(event)
        return event


@asynccontextmanager
async def writing(broadcast) -> AsyncIterator[EventBatch]:
    """One transaction for rows and events; the events go out after it commits."""
    batch = EventBatch()
    async with in_transaction():
        yield batch
    await NORA_LOG.publish(broadcast, batch.events)
