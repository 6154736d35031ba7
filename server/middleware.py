"""ASGI middleware: request ids, security headers, CORS, unhandled errors as JSON."""

from __future__ import annotations

import logging
import uuid

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from resolvers import metrics
from resolvers.errors import unavailable_from
from resolvers.log_context import LogContext, current
from server.transport import error_response

log = logging.getLogger("pcg.errors")


class RequestIdMiddleware:
    """Take a sane `X-Request-ID` from the client or make one; echo it in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if incoming and len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        # Every log line written for this request carries its id (server/logs.py).
        log_token = current.set(LogContext(request_id))
        try:
            await self._call(scope, receive, send, request_id)
        finally:
            current.reset(log_token)

    async def _call(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        if scope["type"] == "websocket":
            # No response headers to add, and every subscription message passes through send.
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


class WebSocketMetricsMiddleware:
    """Counts open websockets: from the handshake's accept to the end of the connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        accepted = False

        async def counting_send(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept" and not accepted:
                accepted = True
                metrics.WEBSOCKETS.inc()
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            if accepted:
                metrics.WEBSOCKETS.dec()


class JsonCORSMiddleware(CORSMiddleware):
    """Starlette's CORS rules (an allow-list, preflights answered), with refusals in the
    API's JSON error shape instead of plain text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        message = response.body.decode()
        headers = {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}
        return error_response(403, "FORBIDDEN", message, headers=headers)


def cors(settings) -> Middleware:
    return Middleware(
        JsonCORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST"],
        allow_headers=["authorization", "content-type", "x-request-id"],
        expose_headers=[
            "x-request-id", "retry-after", "x-ratelimit-limit", "x-ratelimit-remaining",
            "x-ratelimit-reset", "x-ratelimit-used", "x-ratelimit-resource",
        ],
        max_age=600,
    )


# Every response; pages that render (GraphiQL, the board) set their own fuller CSP.
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_DEFAULT_CSP = b"default-src 'none'; frame-ancestors 'none'"
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app = app
        self.extra = [*_SECURITY_HEADERS, *([_HSTS] if hsts else [])]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in self.extra if h[0] not in present)
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", _DEFAULT_CSP))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class UnhandledErrorMiddleware:
    """An exception no handler caught becomes a JSON answer with the request id: 503
    SERVICE_UNAVAILABLE with Retry-After when a dependency failed, 500 otherwise. The
    exception stops here, so uvicorn keeps the client's connection open (it closes a
    connection whose application raised)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as error:
            if started:  # too late for an answer of our own; let the server end it
                raise
            request_id = scope.get("state", {}).get("request_id")
            unavailable = unavailable_from(error)
            if unavailable is not None:
                log.warning("dependency unavailable (request %s, %s): %s: %s", request_id,
                            scope.get("path"), type(error).__name__, error)
                response = error_response(503, unavailable.code, unavailable.message, request_id,
                                          headers={"Retry-After": str(unavailable.retry_after)})
            else:
                log.error("unhandled error (request %s, %s)", request_id, scope.get("path"), exc_info=error)
                response = error_response(500, "INTERNAL_SERVER_ERROR", "Internal server error", request_id)
            await response(scope, receive, send)
