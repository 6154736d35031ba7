"""ASGI middleware: the instance's rate limiter in every request's scope, and a cap on the
websockets one IP address may hold open."""

from __future__ import annotations

import logging
from collections import Counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from resolvers.ratelimit import SCOPE_KEY, Limiter
from server.settings import Settings

log = logging.getLogger("pcg.ratelimit")

# RFC 6455 "Try Again Later": clients back off instead of treating it as a server error.
WS_TRY_AGAIN_LATER = 1013


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.limiter = Limiter(settings.broadcast_url)
        self.max_sockets = settings.rate_limit_sockets_per_ip
        # Per instance, like the sockets themselves: an instance's file descriptors and
        # memory are what the cap protects.
        self.open_sockets: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, self._closing_on_shutdown(receive), send)
            return
        scope.setdefault("state", {})[SCOPE_KEY] = self.limiter
        if kind != "websocket" or self.max_sockets <= 0:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        if self.open_sockets[ip] >= self.max_sockets:
            await _refuse(scope, receive, send)
            return
        self.open_sockets[ip] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open_sockets[ip] -= 1
            if self.open_sockets[ip] <= 0:
                del self.open_sockets[ip]

    def _closing_on_shutdown(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.limiter.close()
            return message

        return wrapped


async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
    """Complete the handshake, then close with 1013: a close before accept reaches clients
    as a bare HTTP 403, which says nothing about trying again."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    offered = scope.get("subprotocols") or []
    await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
    await send({"type": "websocket.close", "code": WS_TRY_AGAIN_LATER,
                "reason": "Too many open websockets from this address"})
