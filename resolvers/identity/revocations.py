"""Ended sessions, as every instance must know them: their access tokens are refused at once
and their websockets closed, without a statement per request.

An access token names its session (`sid`). Checking the session row on every request would
cost a statement each; instead each process keeps the set of sessions that ended while one
of their access tokens may still be alive (`Session.tokens_expire_at`), and nothing else, so
the set holds only the revocations of the last access-token lifetime (15 minutes by default):

- the instance that ends a session adds it here right after the commit, before answering;
- it publishes the ids on the broadcast channel `sessions:revoked` (Redis or PostgreSQL
  between instances, in-process with memory://), and every instance adds them, closes that
  session's websockets (4403) and stops what else acts with it (`on_end`: running NORA
  replies) as the message arrives: within milliseconds;
- a broker reconnection may have lost messages (the hub puts a GAP on the channel): the set is
  reloaded from the database then, at startup (after subscribing, so nothing falls between),
  and every RESYNC_SECONDS on a shared broker in case a publish failed at its sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import orjson

from models import Session

if TYPE_CHECKING:
    from resolvers.broadcast import Hub

log = logging.getLogger("pcg.sessions")

CHANNEL = "sessions:revoked"
# Ids per message: PostgreSQL's NOTIFY carries at most 8,000 bytes.
CHUNK = 200
RESYNC_SECONDS = 30.0
RETRY_SECONDS = 1.0
# 4403 as for a refused connection_init; the reason in the protocol's 123 bytes.
CLOSE_CODE = 4403
CLOSE_REASON = "UNAUTHENTICATED: Session ended (SESSION_REVOKED)"


class SessionRegistry:
    """This process's view of ended sessions, and the websockets open on each session."""

    def __init__(self, broadcast: Hub | None) -> None:
        self.broadcast = broadcast
        # session id -> epoch seconds when the last access token issued for it expires
        self._revoked: dict[int, float] = {}
        # session id -> its open websockets; and each websocket's session
        self._sockets: dict[int, set[Any]] = {}
        self._socket_session: dict[int, int] = {}
        # session id -> what must stop when it ends (running NORA replies started with it)
        self._listeners: dict[int, set[Callable[[], None]]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._loaded = asyncio.Event()
        self._next_sweep = 0.0
        shared = broadcast is not None and urlparse(broadcast.url).scheme != "memory"
        self._resync_every = RESYNC_SECONDS if shared else None

    # -- the check (every authenticated request: no I/O) ----------------------------------------

    def is_revoked(self, session_id: int) -> bool:
        return session_id in self._revoked

    def __len__(self) -> int:
        return len(self._revoked)

    # -- learning of ended sessions --------------------------------------------------------------

    def ended(self, entries: Iterable[tuple[int, float]]) -> None:
        """Sessions that ended: refuse their tokens from now on and close their sockets."""
        now = time.time()
        for session_id, until in entries:
            if until > now:
                self._revoked[session_id] = max(until, self._revoked.get(session_id, 0.0))
            for websocket in list(self._sockets.pop(session_id, ())):
                self._socket_session.pop(id(websocket), None)
                self._close(websocket)
            for callback in self._listeners.pop(session_id, ()):
                callback()
        self._forget_expired(now)

    async def publish(self, entries: list[tuple[int, float]]) -> None:
        """Tell every instance (this one included, again: harmless)."""
        if self.broadcast is not None:
            await publish(self.broadcast, entries)

    def _forget_expired(self, now: float) -> None:
        # Their access tokens have expired: the signature check refuses them on its own.
        if now >= self._next_sweep:
            self._next_sweep = now + 60
            for session_id in [s for s, until in self._revoked.items() if until <= now]:
                del self._revoked[session_id]

    # -- websockets ---------------------------------------------------------------------------------

    def watch(self, session_id: int, websocket: Any) -> None:
        """A socket authenticated by an access token of `session_id`: closed when it ends."""
        self.unwatch(websocket)
        if self.is_revoked(session_id):  # ended while the socket was authenticating
            self._close(websocket)
            return
        self._sockets.setdefault(session_id, set()).add(websocket)
        self._socket_session[id(websocket)] = session_id

    def unwatch(self, websocket: Any) -> None:
        session_id = self._socket_session.pop(id(websocket), None)
        if session_id is None:
            return
        sockets = self._sockets.get(session_id)
        if sockets is not None:
            sockets.discard(websocket)
            if not sockets:
                del self._sockets[session_id]

    def watched(self) -> int:
        """Sockets waiting on their session (0 once every socket has closed)."""
        return len(self._socket_session)

    # -- other work done with a session ---------------------------------------------------------

    def on_end(self, session_id: int, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (synchronously; it must not raise) when `session_id` ends, on the
        same signal that closes its websockets; at once if it has ended already (ended while
        the work was starting). Returns the function that forgets it."""
        if self.is_revoked(session_id):
            callback()
            return lambda: None
        self._listeners.setdefault(session_id, set()).add(callback)

        def forget() -> None:
            callbacks = self._listeners.get(session_id)
            if callbacks is not None:
                callbacks.discard(callback)
                if not callbacks:
                    del self._listeners[session_id]

        return forget

    def listening(self) -> int:
        """Callbacks waiting on their session (0 once every such work has ended)."""
        return sum(len(callbacks) for callbacks in self._listeners.values())

    def _close(self, websocket: Any) -> None:
        async def close() -> None:
            with contextlib.suppress(Exception):  # already closed by the client
                await websocket.close(code=CLOSE_CODE, reason=CLOSE_REASON)

        task = asyncio.ensure_future(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe, then load what ended before: a revocation committed in between is in the
        load or in a message, never in neither. A database that cannot be read now does not
        hold up the start (no request can authenticate without it either): the load is retried
        every second until it succeeds."""
        self._task = asyncio.create_task(self._run(), name="session-revocations")
        subscribed = asyncio.ensure_future(self._loaded.wait())
        await asyncio.wait([subscribed, self._task], return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            subscribed.cancel()
            self._task.result()  # raises what stopped it

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def reload(self) -> None:
        """Every ended session whose access tokens may still be presented: one statement over
        the index on tokens_expire_at."""
        now = datetime.now(UTC)
        rows = await Session.filter(revoked_at__isnull=False, tokens_expire_at__gt=now).values_list(
            "id", "tokens_expire_at"
        )
        self.ended((sid, until.timestamp()) for sid, until in rows)

    async def _run(self) -> None:
        from resolvers.broadcast import GAP

        if self.broadcast is None:
            await self._first_load()
            return
        async with self.broadcast.subscribe(CHANNEL) as subscription:
            await self._first_load()
            while True:
                try:
                    event = await asyncio.wait_for(subscription.get(), self._resync_every)
                except TimeoutError:
                    await self._reload_quietly()
                    continue
                if event.message == GAP:
                    await self._reload_quietly()
                    continue
                try:
                    self.ended((int(sid), float(until)) for sid, until in orjson.loads(event.message))
                except (ValueError, TypeError) as error:
                    log.warning("ignored a malformed message on %s: %s", CHANNEL, error)

    async def _first_load(self) -> None:
        loaded = await self._reload_quietly()
        self._loaded.set()
        while not loaded:
            await asyncio.sleep(RETRY_SECONDS)
            loaded = await self._reload_quietly()

    async def _reload_quietly(self) -> bool:
        try:
            await self.reload()
            return True
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - the database may be down for a moment
            log.warning("could not load ended sessions (%s); retrying", error)
            return False


async def publish(broadcast: Hub, entries: list[tuple[int, float]]) -> None:
    """Best effort: it runs after the commit and never fails the write; an instance that
    misses a message catches up at its next resync (or broker reconnection)."""
    for start in range(0, len(entries), CHUNK):
        chunk = [[sid, round(until, 3)] for sid, until in entries[start:start + CHUNK]]
        try:
            await broadcast.publish(channel=CHANNEL, message=orjson.dumps(chunk).decode())
        except Exception as error:  # noqa: BLE001 - committed already; the resync catches up
            log.warning("publishing %d ended sessions failed (%s); instances resync within %s s",
                        len(chunk), error, RESYNC_SECONDS)
