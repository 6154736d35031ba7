"""The broadcast hub: broadcaster.Broadcast, hardened.

- `subscribe(*channels)` registers one local queue on several channels, under a lock, so
  concurrent first subscribers cannot race the backend (broadcaster 0.3.1 raises KeyError).
- The Redis and PostgreSQL backends reconnect and resubscribe by themselves after the
  server goes away (broadcaster 0.3.1's listener dies and its subscribers hang forever).
  Each reconnection puts a GAP message on every subscribed channel: whatever was published
  meanwhile is lost by the broker, so subscribers refill from the event log.
Messages are JSON text on every backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Self
from urllib.parse import urlparse

from broadcaster import Broadcast, Event
from broadcaster._backends.base import BroadcastBackend
from broadcaster._backends.memory import MemoryBackend
from broadcaster._base import Unsubscribed

from resolvers import metrics

if TYPE_CHECKING:
    import asyncpg
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

log = logging.getLogger("pcg.broadcast")

GAP = "__gap__"
_MAX_BACKOFF = 2.0


class Subscription:
    # Queues hold Event | None as broadcaster's own do (None ends its subscribers); Hub's
    # subscribe never puts None, which would end this one too.
    def __init__(self, queue: asyncio.Queue[Event | None]) -> None:
        self._queue = queue

    async def get(self) -> Event:
        event = await self._queue.get()
        if event is None:
            raise Unsubscribed()
        return event

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self.get()
        except Unsubscribed:
            raise StopAsyncIteration from None


class Hub(Broadcast):
    def __init__(self, url: str) -> None:
        super().__init__(backend=make_backend(url, self._signal_gap))
        self.url = url
        self._lock = asyncio.Lock()

    async def connected(self) -> bool:
        """Whether the broker answers now (readiness); the in-process backend always does."""
        check = getattr(self._backend, "connected", None)
        return True if check is None else await check()
    async def connect(self) -> None:
        await super().connect()
        metrics.BROKER_CONNECTED.set(1)

    async def _signal_gap(self) -> None:
        # Called once per reconnection of the backend.
        metrics.BROKER_RECONNECTS.inc()
        metrics.BROKER_CONNECTED.set(1)
        for channel, queues in list(self._subscribers.items()):
            for queue in list(queues):
                queue.put_nowait(Event(channel=channel, message=GAP))

    # Several channels on one queue: a wider signature than Broadcast.subscribe(channel), whose
    # context manager is not used (mypy sees the override as incompatible in its return type).
    @asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[Subscription]:  # type: ignore[override]
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        joined: list[str] = []
        try:
            async with self._lock:
                for channel in channels:
                    if channel not in self._subscribers:
                        await self._backend.subscribe(channel)
                        self._subscribers[channel] = set()
                    self._subscribers[channel].add(queue)
                    joined.append(channel)
            yield Subscription(queue)
        finally:
            async with self._lock:
                for channel in joined:
                    queues = self._subscribers.get(channel)
                    if queues is None:
                        continue
                    queues.discard(queue)
                    if not queues:
                        del self._subscribers[channel]
                        try:
                            await self._backend.unsubscribe(channel)
                        except Exception:  # noqa: BLE001 - the reconnect loop resubscribes anyway
                            log.warning("unsubscribe from %s failed", channel, exc_info=True)


def make_backend(url: str, on_reconnect: Callable[[], Awaitable[None]]) -> BroadcastBackend:
    scheme = urlparse(url).scheme
    if scheme == "memory":
        return MemoryBackend(url)
    if scheme in ("redis", "rediss"):
        return ResilientRedisBackend(url, on_reconnect)
    if scheme in ("postgres", "postgresql"):
        return ResilientPostgresBackend(url, on_reconnect)
    raise ValueError(f"Unsupported broadcast URL scheme {scheme!r}: use memory://, redis:// or postgres://")


class ResilientRedisBackend(BroadcastBackend):
    def __init__(self, url: str, on_reconnect: Callable[[], Awaitable[None]]) -> None:
        self._url = url
        self._on_reconnect = on_reconnect
        self._channels: set[str] = set()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._pubsub: PubSub | None = None
        self._conn: Redis | None = None
        self._task: asyncio.Task[None] | None = None

    def _connection(self) -> Redis:
        if self._conn is None:
            raise RuntimeError("redis broadcast backend used before connect()")
        return self._conn

    async def connect(self) -> None:
        from redis import asyncio as redis

        self._conn = redis.Redis.from_url(
            self._url, health_check_interval=5, socket_connect_timeout=2
        )
        # Fail fast at startup with a clear error. (redis-py annotates its commands for the
        # sync and the async client at once: Awaitable[bool] | bool.)
        await self._conn.ping()  # type: ignore[misc]
        await self._open()
        self._task = asyncio.create_task(self._run(), name="redis-broadcast")

    async def _open(self) -> None:
        pubsub = self._connection().pubsub(ignore_subscribe_messages=True)
        await pubsub.connect()
        if self._channels:
            await pubsub.subscribe(*self._channels)
        self._pubsub = pubsub

    async def _drop(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()
            except Exception:  # noqa: BLE001 - already broken
                pass

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            try:
                if self._pubsub is None:
                    await self._open()
                    log.warning("redis broadcast reconnected; %d channels resubscribed", len(self._channels))
                    backoff = 0.05
                    await self._on_reconnect()
                if not self._channels:
                    await asyncio.sleep(0.05)
                    continue
                pubsub = self._pubsub
                if pubsub is None:  # dropped by a failed subscribe() meanwhile
                    raise ConnectionError("redis pubsub connection dropped")
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message and message.get("type") == "message":
                    self._queue.put_nowait(
                        Event(channel=message["channel"].decode(), message=message["data"].decode())
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - connection lost: reconnect with backoff
                metrics.BROKER_CONNECTED.set(0)
                log.warning("redis broadcast connection lost (%s); reconnecting", exc)
                await self._drop()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)

    async def disconnect(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # The listener's own end (its CancelledError, or a late error) is collected; a
            # cancellation of this caller still propagates.
            await asyncio.gather(self._task, return_exceptions=True)
        await self._drop()
        if self._conn is not None:
            await self._conn.aclose()

    async def connected(self) -> bool:
        if self._pubsub is None or self._conn is None:  # the run loop is reconnecting
            return False
        try:
            return bool(await self._conn.ping())  # type: ignore[misc] # see connect()
        except Exception:  # noqa: BLE001 - any failure means not connected
            return False

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        if self._pubsub is not None:
            try:
                await self._pubsub.subscribe(channel)
            except Exception:  # noqa: BLE001 - the run loop reconnects and resubscribes all
                await self._drop()

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        if self._pubsub is not None:
            await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, message: str) -> None:
        await self._connection().publish(channel, message)

    async def next_published(self) -> Event:
        return await self._queue.get()


class ResilientPostgresBackend(BroadcastBackend):
    """LISTEN/NOTIFY on a dedicated connection; notifications go out through a small pool."""

    def __init__(self, url: str, on_reconnect: Callable[[], Awaitable[None]]) -> None:
        self._url = url.replace("postgres://", "postgresql://", 1)
        self._on_reconnect = on_reconnect
        self._channels: set[str] = set()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._listen: asyncpg.Connection | None = None
        self._pool: asyncpg.Pool | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        import asyncpg

        self._pool = await asyncpg.create_pool(self._url, min_size=1, max_size=2)
        await self._open()
        self._task = asyncio.create_task(self._run(), name="postgres-broadcast")

    async def _open(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self._url)
        conn.add_termination_listener(lambda _conn: self._lost.set())
        for channel in self._channels:
            await conn.add_listener(channel, self._notified)
        self._lost.clear()
        self._listen = conn

    def _notified(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        self._queue.put_nowait(Event(channel=channel, message=payload))

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            await self._lost.wait()
            metrics.BROKER_CONNECTED.set(0)
            log.warning("postgres broadcast connection lost; reconnecting")
            self._listen = None
            while True:
                try:
                    await self._open()
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    log.warning("postgres broadcast reconnect failed (%s)", exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF)
            backoff = 0.05
            await self._on_reconnect()

    async def disconnect(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._listen is not None:
            with contextlib.suppress(Exception):  # already broken: closing is best effort
                await self._listen.close()
        if self._pool is not None:
            await self._pool.close()

    async def connected(self) -> bool:
        listen = self._listen
        if listen is None or listen.is_closed() or self._pool is None:
            return False
        try:
            await self._pool.fetchval("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - any failure means not connected
            return False

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        if self._listen is not None:
            try:
                await self._listen.add_listener(channel, self._notified)
            except Exception:  # noqa: BLE001 - the run loop reconnects and re-listens
                self._lost.set()

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        if self._listen is not None:
            await self._listen.remove_listener(channel, self._notified)

    async def publish(self, channel: str, message: str) -> None:
        if self._pool is None:
            raise RuntimeError("postgres broadcast backend used before connect()")
        await self._pool.execute("SELECT pg_notify($1, $2)", channel, message)

    async def next_published(self) -> Event:
        return await self._queue.get()

