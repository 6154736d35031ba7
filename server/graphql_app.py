"""Strawberry's ASGI app with our context: authentication and loaders per request, and
websocket authentication from the connection_init payload."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime

import orjson
from cross_web import HTTPException, StarletteRequestAdapter
from starlette.requests import Request
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError

from resolvers.access import Viewer
from resolvers.auth import authenticate
from resolvers.errors import ServiceUnavailable, Unauthenticated
from schema.errors import UNAVAILABLE, convert
from server.context import Context
from server.settings import Settings
from server.transport import TransportError, error_response, read_graphql_request, wants_ide
from server.ws_protocol import WS_FORBIDDEN, LegacyWSHandler, TransportWSHandler

log = logging.getLogger("pcg.ws")

# Strawberry's GraphiQL page: its scripts and styles come from unpkg, inline bootstrap code.
GRAPHIQL_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' https://unpkg.com; "
    "style-src 'unsafe-inline' https://unpkg.com; font-src https://unpkg.com data:; "
    "img-src data: https:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


class RequestAdapter(StarletteRequestAdapter):
    @property
    def state(self) -> dict:
        """The ASGI scope's state, where __call__ leaves the operation it read."""
        return self._request.scope.setdefault("state", {})


class PcgGraphQL(GraphQL):
    graphql_ws_handler_class = LegacyWSHandler
    graphql_transport_ws_handler_class = TransportWSHandler
    request_adapter_class = RequestAdapter

    def __init__(self, schema, settings: Settings, broadcast, nora=None) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            allow_queries_via_get=False,
            keep_alive=True,
            keep_alive_interval=15,
            # Browsers' websocket handshakes from other origins are refused (1008) unless listed.
            allowed_origins=list(settings.cors_origins),
        )
        self.settings = settings
        self.broadcast = broadcast
        self.nora = nora

    async def get_context(self, request, response) -> Context:
        headers = request.headers
        is_websocket = request.scope["type"] == "websocket"
        return Context(
            settings=self.settings,
            # Anonymous until the Authentication extension has resolved the header, after the
            # document passed its limits. Websockets authenticate in on_ws_connect, from the
            # connection_init payload.
            viewer=Viewer(None),
            authorization=None if is_websocket else headers.get("authorization"),
            broadcast=self.broadcast,
            nora=self.nora,
            request=request,
            response=response,
            ip=request.client.host if request.client else None,
            request_id=request.scope.get("state", {}).get("request_id") or _request_id(headers),
        )

    async def on_ws_connect(self, context: Context):
        params = context.connection_params or {}
        credential = params.get("authorization") or params.get("Authorization")
        if not isinstance(credential, str):
            credential = context.request.headers.get("authorization")
        if credential and not credential.lower().startswith("bearer "):
            credential = f"Bearer {credential}"
        try:
            principal = await authenticate(credential, self.settings.secret_key)
        except Unauthenticated as error:
            raise ConnectionRejectionError({"message": error.message, "code": error.code}) from None
        if principal is None:
            raise ConnectionRejectionError(
                {"message": "Authentication required", "code": "UNAUTHENTICATED"}
            )
        context.viewer = Viewer(principal)
        if principal.token_expires_at is not None:
            _close_at_expiry(context.request, principal.token_expires_at)
        return {"userId": principal.user.id}

    async def process_result(self, request, result):
        if result.errors:
            request_id = request.scope.get("state", {}).get("request_id")
            result.errors = [convert(e, request_id) for e in result.errors]
        return await super().process_result(request, result)

    def create_response(self, response_data, sub_response):
        response = super().create_response(response_data, sub_response)
        if _unavailable(response_data):
            # A dependency failed: the client should come back, on this same connection.
            response.status_code = 503
            response.headers["Retry-After"] = str(ServiceUnavailable.retry_after)
        return response

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        request_id = scope.get("state", {}).get("request_id")
        try:
            if self.graphql_ide and wants_ide(request):
                response = await self.run(request)
            else:
                # Before authentication and any other work: a refused body costs nothing.
                operation = await read_graphql_request(request, self.settings.max_body_bytes)
                scope.setdefault("state", {})["graphql_request"] = operation
                response = await self.run(request)
        except TransportError as error:
            response = error_response(error.status, error.code, error.message, request_id, error.headers)
        except HTTPException as error:
            code = "NOT_FOUND" if error.status_code == 404 else "BAD_REQUEST"
            response = error_response(error.status_code, code, error.reason, request_id)
        await response(scope, receive, send)

    async def parse_http_body(self, request_adapter):
        operation = request_adapter.state.get("graphql_request")
        if operation is None:  # pragma: no cover - __call__ always reads it first
            raise HTTPException(400, "No GraphQL operation in the request")
        return operation

    async def render_graphql_ide(self, request):
        response = await super().render_graphql_ide(request)
        response.headers["Content-Security-Policy"] = GRAPHIQL_CSP
        return response

    def encode_json(self, data: object) -> str:
        # Text, not bytes: websocket messages must be text frames, which graphql-ws, gql and
        # browsers require (they reject binary frames).
        return orjson.dumps(data).decode()


def _close_at_expiry(websocket, expires_at: datetime) -> None:
    """An access token is short-lived; a socket opened with it does not outlive it."""

    async def close() -> None:
        with contextlib.suppress(Exception):  # already closed by the client
            await websocket.close(code=WS_FORBIDDEN, reason="Token expired")

    delay = max(0.0, (expires_at - datetime.now(UTC)).total_seconds())
    asyncio.get_running_loop().call_later(delay, lambda: asyncio.ensure_future(close()))


def _unavailable(response_data) -> bool:
    results = response_data if isinstance(response_data, list) else [response_data]
    return any(
        (error.get("extensions") or {}).get("code") == UNAVAILABLE
        for result in results for error in (result.get("errors") or ())
    )


def _request_id(headers) -> str:
    rid = headers.get("x-request-id", "")
    return rid[:64] if rid and rid.isprintable() else uuid.uuid4().hex
