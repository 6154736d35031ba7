"""Strawberry's ASGI app with our context: authentication and loaders per request, and
websocket authentication from the connection_init payload."""

from __future__ import annotations

import logging
import uuid

import orjson
from cross_web import HTTPException, StarletteRequestAdapter
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import (
    GRAPHQL_SSE_PROTOCOL,
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
)

from resolvers.access import Access
from resolvers.context import Context, user_agent_of
from resolvers.documents import TrustedDocuments
from resolvers.errors import ServiceUnavailable, Unauthenticated
from resolvers.identity.auth import authenticate
from schema.errors import UNAVAILABLE, convert
from server import graphiql
from server.http_cache import http_cache
from server.persisted import PersistedQueries, PersistedQueryError
from server.settings import Settings
from server.transport import (
    GRAPHQL_RESPONSE,
    TransportError,
    error_response,
    read_graphql_request,
    response_media_type,
    wants_ide,
)
from server.ws_protocol import LegacyWSHandler, TransportWSHandler, close_at_expiry

log = logging.getLogger("pcg.ws")

# Our GraphiQL build (server/graphiql.py): every script, style, font and worker from this
# origin, no inline script. Inline styles stay allowed: GraphiQL and Monaco set element styles
# and insert <style> elements at run time. 'self' covers same-origin ws: and wss: (CSP3).
GRAPHIQL_CSP = (
    "default-src 'none'; script-src 'self'; worker-src 'self'; style-src 'self' 'unsafe-inline'; "
    "font-src 'self' data:; img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
# Strawberry's page, the fallback without our build: scripts and styles from unpkg, inline
# bootstrap code.
GRAPHIQL_CDN_CSP = (
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

    def __init__(self, schema, settings: Settings, broadcast, nora=None, persisted=None,
                 documents=None, sessions=None, response_cache=None) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            # Queries over GET (urql's default, cacheable); Strawberry refuses mutations there.
            allow_queries_via_get=True,
            keep_alive=True,
            keep_alive_interval=15,
            # Websockets both ways, and subscriptions over plain HTTP for clients without one.
            subscription_protocols=(
                GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL,
                GRAPHQL_SSE_PROTOCOL, MULTIPART_SUBSCRIPTION_PROTOCOL,
            ),
            # Browsers' websocket handshakes from other origins are refused (1008) unless listed.
            allowed_origins=list(settings.cors_origins),
        )
        self.settings = settings
        self.persisted = persisted or PersistedQueries("memory://", settings.limits.max_document_chars)
        self.documents = documents or TrustedDocuments(settings.trusted_documents)
        self.broadcast = broadcast
        self.nora = nora
        # The instance's SessionRegistry: ended sessions, and the sockets open on each.
        self.sessions = sessions
        self.response_cache = response_cache

    async def get_context(self, request, response) -> Context:
        headers = request.headers
        is_websocket = request.scope["type"] == "websocket"
        return Context(
            settings=self.settings,
            # Anonymous until the Authentication extension has resolved the header, after the
            # document passed its limits. Websockets authenticate in on_ws_connect, from the
            # connection_init payload.
            access=Access(None),
            authorization=None if is_websocket else headers.get("authorization"),
            broadcast=self.broadcast,
            nora=self.nora,
            session_registry=self.sessions,
            response_cache=self.response_cache,
            request=request,
            response=response,
            documents=self.documents,
            ip=request.client.host if request.client else None,
            user_agent=user_agent_of(headers),
            request_id=request.scope.get("state", {}).get("request_id") or _request_id(headers),
        )

    async def on_ws_connect(self, context: Context):
        credential = connection_credential(context.connection_params)
        if credential is None:
            credential = context.request.headers.get("authorization")
        if credential and not credential.lower().startswith("bearer "):
            credential = f"Bearer {credential}"
        try:
            principal = await authenticate(credential, self.settings.secret_key, self.sessions)
        except Unauthenticated as error:
            context.ws_rejection = {"message": error.message, "code": error.code, **error.extensions}
            raise ConnectionRejectionError(context.ws_rejection) from None
        if principal is None:
            context.ws_rejection = {
                "message": "Authentication required: send connection_init with "
                           '{"authorization": "Bearer <token>"}',
                "code": "UNAUTHENTICATED", "reason": "NO_CREDENTIAL",
            }
            raise ConnectionRejectionError(context.ws_rejection)
        context.access = Access(principal)
        if principal.token_expires_at is not None:
            close_at_expiry(context.request, principal.token_expires_at)
        if principal.session_id is not None and self.sessions is not None:
            # Closed (4403) on every instance as soon as its session ends.
            self.sessions.watch(principal.session_id, context.request)
        return {"userId": principal.user.id}

    async def process_result(self, request, result):
        if result.errors:
            request_id = request.scope.get("state", {}).get("request_id")
            result.errors = [convert(e, request_id) for e in result.errors]
        return await super().process_result(request, result)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        request_id = scope.get("state", {}).get("request_id")
        try:
            if wants_ide(request):
                if not self.graphql_ide:
                    raise TransportError(404, "NOT_FOUND", "GraphiQL is off here (PCG_GRAPHIQL=1 turns it on)")
                scope.setdefault("state", {})["render_ide"] = True
                response = await self.run(request)
            else:
                # Before authentication and any other work: a refused body costs nothing.
                stream = self.stream_transport(request.headers.get("accept", ""))
                operation = await read_graphql_request(
                    request, self.settings.max_body_bytes, stream.protocol if stream else "http"
                )
                operation.query = await self.persisted.resolve(
                    operation.query, operation.extensions, fallback=self.documents.body
                )
                scope.setdefault("state", {})["graphql_request"] = operation
                response = await self.run(request)
                if request.method == "GET" and response.status_code == 200 and hasattr(response, "body"):
                    response = http_cache(request, response)
        except TransportError as error:
            response = error_response(error.status, error.code, error.message, request_id, error.headers)
        except PersistedQueryError as error:
            # 200 for the two codes Apollo's PersistedQueryLink reacts to, as Apollo Server does.
            status = 400 if error.code == "BAD_REQUEST" else 200
            response = error_response(status, error.code, error.message, request_id)
        except HTTPException as error:
            if request.method == "GET" and "not allowed when using GET" in error.reason:
                response = error_response(405, "METHOD_NOT_ALLOWED", "Mutations need POST", request_id,
                                          {"Allow": "POST"})
            else:
                code = "NOT_FOUND" if error.status_code == 404 else "BAD_REQUEST"
                response = error_response(error.status_code, code, error.reason, request_id)
        await response(scope, receive, send)

    def stream_transport(self, accept: str):
        """A streaming transport (graphql-sse, multipart) only when the client prefers it: urql
        lists text/event-stream after the JSON types and must get JSON for a query, while
        graphql-sse and Apollo's multipart link put theirs first. (Strawberry takes any
        mention.)"""
        preferred = accept.split(",", 1)[0]
        return self._get_stream_transport_from_headers({"accept": preferred}) if preferred else None

    async def get_sub_response(self, request):
        sub_response = await super().get_sub_response(request)
        sub_response.media = response_media_type(request.headers.get("accept"))
        return sub_response

    def create_response(self, response_data, sub_response):
        # Strawberry's, with the body encoded once (encode_json gives text for websockets,
        # which Starlette would encode again: a board is 167 KB).
        response = Response(orjson.dumps(response_data), status_code=200, media_type="application/json")
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        if sub_response.status_code:
            response.status_code = sub_response.status_code
        if _unavailable(response_data):
            # A dependency failed: the client should come back, on this same connection.
            response.status_code = 503
            response.headers["Retry-After"] = str(ServiceUnavailable.retry_after)
        if getattr(sub_response, "media", None) != GRAPHQL_RESPONSE:
            return response
        # GraphQL over HTTP: a request that never executed (parse, validation, variables,
        # limits) is a 400 without `data`; errors of an executed operation stay 200.
        errors = response_data.get("errors") if isinstance(response_data, dict) else None
        if errors and response_data.get("data") is None and not any(e.get("path") for e in errors):
            response_data = {k: v for k, v in response_data.items() if k != "data"}
            response.body = self.encode_json(response_data).encode()
            response.headers["content-length"] = str(len(response.body))
            if response.status_code == 200:
                response.status_code = 400
        response.headers["content-type"] = GRAPHQL_RESPONSE + "; charset=utf-8"
        return response

    def should_render_graphql_ide(self, request_adapter) -> bool:
        # Decided in __call__ (transport.wants_ide), which also knows persisted-query GETs.
        return bool(request_adapter.state.get("render_ide"))

    async def parse_http_body(self, request_adapter):
        operation = request_adapter.state.get("graphql_request")
        if operation is None:  # pragma: no cover - __call__ always reads it first
            raise HTTPException(400, "No GraphQL operation in the request")
        return operation

    async def render_graphql_ide(self, request):
        if graphiql.is_built():
            return HTMLResponse(graphiql.page(), headers={
                "Content-Security-Policy": GRAPHIQL_CSP, "Cache-Control": "no-cache",
            })
        return HTMLResponse(graphiql.with_build_hint(self.graphql_ide_html), headers={
            "Content-Security-Policy": GRAPHIQL_CDN_CSP, "Cache-Control": "no-cache",
        })

    def encode_json(self, data: object) -> str:
        # Text, not bytes: websocket messages must be text frames, which graphql-ws, gql and
        # browsers require (they reject binary frames).
        return orjson.dumps(data).decode()


def connection_credential(params) -> str | None:
    """The credential in a connection_init payload, in the shapes clients send it:
    `{"authorization": ...}` (graphql-ws docs, gql), `{"Authorization": ...}`, and
    `{"headers": {"Authorization": ...}}` (Apollo Client, Hasura)."""
    if not isinstance(params, dict):
        return None
    for holder in (params, params.get("headers")):
        if isinstance(holder, dict):
            for key, value in holder.items():
                if isinstance(key, str) and key.lower() == "authorization" and isinstance(value, str):
                    return value
    return None


def _unavailable(response_data) -> bool:
    results = response_data if isinstance(response_data, list) else [response_data]
    return any(
        (error.get("extensions") or {}).get("code") == UNAVAILABLE
        for result in results for error in (result.get("errors") or ())
    )


def _request_id(headers) -> str:
    rid = headers.get("x-request-id", "")
    return rid[:64] if rid and rid.isprintable() else uuid.uuid4().hex
