"""Board events: appended inside a write's transaction, published after it commits."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import orjson
from tortoise.expressions import F
from tortoise.models import Model

from models import BoardEvent, NoraEvent, Project, orm
from resolvers import codec, metrics
from resolvers.errors import BadInput

if TYPE_CHECKING:
    from resolvers.broadcast import Hub

log = logging.getLogger("pcg.events")


# Messages larger than this go out as stubs (seq only) and subscribers read the event from
# the log: PostgreSQL NOTIFY payloads are limited to 8000 bytes.
MAX_WIRE_BYTES = 7000
REFILL_BATCH = 500


def channel(project_id: int) -> str:
    return f"board:{project_id}"


def access_channel(user_id: int) -> str:
    """Nudges a user's open streams to re-check their access (membership changed)."""
    return f"access:{user_id}"


E = TypeVar("E", bound=Model)


@dataclass(frozen=True)
class EventLog(ABC, Generic[E]):
    """A durable event log with a dense `seq` per owner row, and its broadcast channel.

    `owner` holds the counter (`event_seq` on Project for the board, on Conversation for
    NORA; `audit_seq` on Organization for the audit log); `key` is the log's column pointing
    at it; `extra` names further columns carried on the wire; `kind` prefixes cursors so that
    a cursor of one stream is rejected by another. What is read off an event (its type, its
    seq, its wire form) depends on the event's model: `PayloadLog` (board, NORA) and
    resolvers/audit/stream.py `AuditLog` say it.
    """

    kind: str
    model: type[E]
    owner: type[Model]
    key: str
    channel: Callable[[int], str]
    extra: tuple[str, ...] = ()
    counter: str = "event_seq"

    @abstractmethod
    def type_of(self, event: E) -> str:
        """What happened, as streams compare it with their `access_events`."""

    @abstractmethod
    def seq_of(self, event: E) -> int:
        """The event's place in its log."""

    @abstractmethod
    def wire(self, event: E) -> str:
        """The broadcast message: JSON text on every backend; a stub (no payload) when large."""

    @abstractmethod
    def from_wire(self, data: dict[str, Any]) -> E:
        """A read-only event from a full wire message (as if read from the log)."""

    async def append(self, key: int, type_: str, payload: dict[str, Any], **extra: object) -> E:
        """Take the owner's next seq and store the event. Must run inside the write's
        transaction: the UPDATE takes the owner's row lock on PostgreSQL, so the next writer
        waits until this one commits and seq N is always committed before N+1 exists."""
        await self.owner.filter(id=key).update(event_seq=F("event_seq") + 1)
        seq: int = await orm.first_value(self.owner.filter(id=key), "event_seq")
        # Columns named at run time, typed as Model.create's own **kwargs.
        columns: dict[str, Any] = {self.key: key, **extra}
        event = await self.model.create(**columns, seq=seq, type=type_, payload=payload)
        # Counted when written, inside the transaction: a rolled-back write still counts.
        metrics.appended(self.kind)
        return event

    def encode_cursor(self, key: int, seq: int) -> str:
        return codec.encode(f"{self.kind}:{key}:{seq}")

    def decode_cursor(self, cursor: str, key: int) -> int:
        try:
            raw = codec.decode_text(cursor)
            kind, owner, seq = raw.split(":")
            if kind != self.kind or int(owner) != key or int(seq) < 0:
                raise ValueError
            return int(seq)
        except ValueError:
            raise BadInput("Malformed cursor, or a cursor of another stream", field="after") from None

    async def current_seq(self, key: int) -> int:
        seq: int | None = await orm.first_value(self.owner.filter(id=key), self.counter)
        return seq or 0

    async def oldest_kept(self, key: int) -> int | None:
        seq: int | None = await orm.first_value(self.model.filter(**{self.key: key}).order_by("seq"), "seq")
        return seq

    async def after(self, key: int, seq: int, upto: int | None = None) -> list[E]:
        """Logged events after `seq` (up to `upto`), at most REFILL_BATCH of them."""
        qs = self.model.filter(**{self.key: key, "seq__gt": seq})
        if upto is not None:
            qs = qs.filter(seq__lte=upto)
        return list(await qs.order_by("seq").limit(REFILL_BATCH))

    async def publish(
        self, broadcast: Hub | None, events: Sequence[E], nudges: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Best effort: subscribers refill any gap from the log, so a lost publish loses no
        data. `nudges` are further (channel, message) pairs sent after the events."""
        if broadcast is None:
            return
        messages = [(self.channel(getattr(e, self.key)), self.wire(e)) for e in events]
        published = 0
        for index, (name, message) in enumerate([*messages, *nudges]):
            is_event = index < len(messages)
            try:
                await broadcast.publish(channel=name, message=message)
                if is_event:
                    published += 1
            except Exception as exc:  # noqa: BLE001 - the write has committed; never fail it now
                if is_event:
                    metrics.PUBLISH_FAILED.labels(self.kind).inc()
                log.warning("publish to %s failed (%s); subscribers will refill from the log", name, exc)
        if published:
            metrics.published(self.kind, published)


# The logs whose events carry a type and a JSON payload.
P = TypeVar("P", BoardEvent, NoraEvent)


@dataclass(frozen=True)
class PayloadLog(EventLog[P]):
    """The board's log and NORA's: each event is a row of the log's own model."""

    def type_of(self, event: P) -> str:
        return event.type

    def seq_of(self, event: P) -> int:
        return event.seq

    def wire(self, event: P) -> str:
        full = orjson.dumps(
            {
                "id": event.id,
                "key": getattr(event, self.key),
                "seq": event.seq,
                "type": event.type,
                "payload": event.payload,
                "at": event.created_at.isoformat(),
                **{name: getattr(event, name) for name in self.extra},
            }
        )
        if len(full) > MAX_WIRE_BYTES:
            return orjson.dumps({"key": getattr(event, self.key), "seq": event.seq}).decode()
        return full.decode()

    def from_wire(self, data: dict[str, Any]) -> P:
        return orm.detached(self.model, {
            "id": data["id"],
            "seq": data["seq"],
            "type": data["type"],
            "payload": data["payload"],
            "created_at": datetime.fromisoformat(data["at"]),
            self.key: data["key"],
            **{name: data[name] for name in self.extra},
        })


BOARD = PayloadLog(
    kind="board", model=BoardEvent, owner=Project, key="project_id", channel=channel,
    extra=("actor_id",),
)


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
