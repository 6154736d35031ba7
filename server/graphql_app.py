"""Strawberry's ASGI app with our context: authentication and loaders per request."""

from __future__ import annotations

import uuid

import orjson
from strawberry.asgi import GraphQL

from resolvers.access import Viewer
from resolvers.auth import authenticate
from resolvers.errors import Unauthenticated
from schema.errors import convert
from server.context import Context
from server.settings import Settings


class FailedAuth(Viewer):
    """A viewer whose credential was rejected: anything that needs identity raises the error."""

    def __init__(self, error: Unauthenticated) -> None:
        super().__init__(None)
        self.error = error

    @property
    def user(self):
        raise self.error


class PcgGraphQL(GraphQL):
    def __init__(self, schema, settings: Settings, broadcast) -> None:
        super().__init__(schema, graphql_ide="graphiql", allow_queries_via_get=False)
        self.settings = settings
        self.broadcast = broadcast

    async def viewer_for(self, authorization: str | None) -> Viewer:
        try:
            return Viewer(await authenticate(authorization, self.settings.secret_key))
        except Unauthenticated as error:
            return FailedAuth(error)

    async def get_context(self, request, response) -> Context:
        headers = request.headers
        viewer = await self.viewer_for(headers.get("authorization"))
        return Context(
            settings=self.settings,
            viewer=viewer,
            broadcast=self.broadcast,
            request=request,
            response=response,
            ip=request.client.host if request.client else None,
            request_id=request.scope.get("state", {}).get("request_id") or _request_id(headers),
        )

    async def process_result(self, request, result):
        if result.errors:
            request_id = request.scope.get("state", {}).get("request_id")
            result.errors = [convert(e, request_id) for e in result.errors]
        return await super().process_result(request, result)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)


def _request_id(headers) -> str:
    rid = headers.get("x-request-id", "")
    return rid[:64] if rid and rid.isprintable() else uuid.uuid4().hex
