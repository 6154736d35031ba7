"""The HTTP side of /graphql, checked before anything costs: method, content type (the CSRF
rule), body size, JSON shape. Every refusal is a JSON GraphQL error with `extensions.code`."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from starlette.requests import Request
from starlette.responses import Response
from strawberry.http import GraphQLRequestData

JSON_TYPES = ("application/json", "application/graphql-response+json")
GRAPHQL_RESPONSE = "application/graphql-response+json"


def response_media_type(accept: str | None) -> str:
    """The GraphQL-over-HTTP media type the client prefers: `application/graphql-response+json`
    when it asks for it ahead of (or without) `application/json`, else `application/json`."""
    best, best_q = "application/json", -1.0
    for position, part in enumerate((accept or "").split(",")):
        media, _, params = part.strip().partition(";")
        media = media.strip().lower()
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media in (GRAPHQL_RESPONSE, "application/json") and q > best_q and q > 0:
            best, best_q = media, q - position * 1e-6
    return best


@dataclass
class TransportError(Exception):
    status: int
    code: str
    message: str
    headers: dict[str, str] | None = None


def error_response(status: int, code: str, message: str, request_id: str | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    extensions = {"code": code}
    if request_id:
        extensions["requestId"] = request_id
    body = orjson.dumps({"errors": [{"message": message, "extensions": extensions}]})
    return Response(body, status, headers=headers, media_type="application/json")


def wants_ide(request: Request) -> bool:
    """A browser opening /graphql (what Strawberry renders GraphiQL for)."""
    accept = request.headers.get("accept", "")
    return (
        request.method == "GET"
        and "query" not in request.query_params
        and "extensions" not in request.query_params
        and ("text/html" in accept or "*/*" in accept)
    )


def _media_type(request: Request) -> tuple[str, str | None]:
    raw = request.headers.get("content-type", "")
    media, _, params = raw.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "charset":
            charset = value.strip().strip('"').lower()
    return media.strip().lower(), charset


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise TransportError(400, "BAD_REQUEST", "Content-Length is not a number")
        if int(declared) > limit:
            raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> TransportError:
    return TransportError(
        413, "PAYLOAD_TOO_LARGE", f"The request body is larger than {limit} bytes"
    )


def _json_param(request: Request, name: str):
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise TransportError(400, "BAD_REQUEST", f"`{name}` must be JSON") from None


async def read_graphql_request(request: Request, max_body_bytes: int,
                               protocol: str = "http") -> GraphQLRequestData:
    """The one operation a GET or POST carries, or a TransportError. `protocol` is the
    streaming transport the client asked for by its Accept header (graphql-sse's
    text/event-stream, Apollo's multipart subscriptions), "http" otherwise."""
    if request.method == "GET":
        # Queries only (Strawberry refuses mutations over GET); nothing to forge: a GET carries
        # no ambient credential here (tokens travel in the Authorization header).
        return _operation({
            "query": request.query_params.get("query"),
            "variables": _json_param(request, "variables"),
            "operationName": request.query_params.get("operationName"),
            "extensions": _json_param(request, "extensions"),
        }, protocol)
    if request.method != "POST":
        raise TransportError(
            405, "METHOD_NOT_ALLOWED",
            "Send GraphQL operations as POST with Content-Type: application/json, or queries as GET",
            {"Allow": "GET, POST"},
        )
    # Only JSON bodies run. A browser cannot send one cross-origin without a CORS preflight,
    # which is what makes this the CSRF rule: form posts and text/plain never execute.
    media, charset = _media_type(request)
    if media not in JSON_TYPES:
        raise TransportError(
            415, "UNSUPPORTED_MEDIA_TYPE",
            "Content-Type must be application/json" + (f", not {media}" if media else ""),
        )
    if charset not in (None, "utf-8", "utf8"):
        raise TransportError(415, "UNSUPPORTED_MEDIA_TYPE", "The body must be UTF-8 JSON")
    body = await _read_body(request, max_body_bytes)
    try:
        data = orjson.loads(body)  # strict UTF-8, nesting capped at 1,024 levels
    except orjson.JSONDecodeError as error:
        raise TransportError(400, "BAD_REQUEST", f"The body is not valid JSON: {error}") from None
    if isinstance(data, list):
        raise TransportError(400, "BAD_REQUEST", "Batched operations are not supported: send one per request")
    if not isinstance(data, dict):
        raise TransportError(400, "BAD_REQUEST", "The body must be a JSON object with a `query`")
    return _operation(data, protocol)


def _operation(data: dict, protocol: str = "http") -> GraphQLRequestData:
    query = data.get("query")
    extensions = data.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        raise TransportError(400, "BAD_REQUEST", "`extensions` must be an object or null")
    # Without a document, a persisted query's hash names it (server/persisted.py).
    by_hash = query is None and extensions is not None and "persistedQuery" in extensions
    if not by_hash and (not isinstance(query, str) or not query.strip()):
        raise TransportError(400, "BAD_REQUEST", "`query` must be a non-empty string")
    variables = data.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise TransportError(400, "BAD_REQUEST", "`variables` must be an object or null")
    operation_name = data.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise TransportError(400, "BAD_REQUEST", "`operationName` must be a string or null")
    return GraphQLRequestData(
        query=query, variables=variables, operation_name=operation_name or None,
        extensions=extensions, protocol=protocol,
    )
