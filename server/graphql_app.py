"""Strawberry's ASGI app with our context: authentication and loaders per request, and
websocket authentication from the connection_init payload."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime

import orjson
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError

from resolvers.access import Viewer
from resolvers.auth import authenticate
from resolvers.errors import Unauthenticated
from schema.errors import convert
from server.context import Context
from server.settings import Settings
from server.ws_protocol import WS_FORBIDDEN, LegacyWSHandler, TransportWSHandler

log = logging.getLogger("pcg.ws")


class FailedAuth(Viewer):
    """A viewer whose credential was rejected: anything that needs identity raises the error."""

    def __init__(self, error: Unauthenticated) -> None:
        super().__init__(None)
        self.error = error

    @property
    def user(self):
        raise self.error


class PcgGraphQL(GraphQL):
    graphql_ws_handler_class = LegacyWSHandler
    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(self, schema, settings: Settings, broadcast, nora=None) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            allow_queries_via_get=False,
            keep_alive=True,
            keep_alive_interval=15,
        )
        self.settings = settings
        self.broadcast = broadcast
        self.nora = nora

    async def viewer_for(self, authorization: str | None) -> Viewer:
        try:
            return Viewer(await authenticate(authorization, self.settings.secret_key))
        except Unauthenticated as error:
            return FailedAuth(error)

    async def get_context(self, request, response) -> Context:
        headers = request.headers
        is_websocket = request.scope["type"] == "websocket"
        # Websockets authenticate in on_ws_connect, from the connection_init payload.
        viewer = Viewer(None) if is_websocket else await self.viewer_for(headers.get("authorization"))
        return Context(
            settings=self.settings,
            viewer=viewer,
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


def _request_id(headers) -> str:
    rid = headers.get("x-request-id", "")
    return rid[:64] if rid and rid.isprintable() else uuid.uuid4().hex
