"""Who is calling, decided after the document has passed its limits: a request refused by the
parser, validation or cost analysis runs no SQL at all, not even the credential lookup."""

from __future__ import annotations

from strawberry.extensions import SchemaExtension

from resolvers.access import Access
from resolvers.errors import Unauthenticated
from resolvers.identity.auth import authenticate
from resolvers.loaders import Loaders


class FailedAuth(Access):
    """A viewer whose credential was rejected: anything that needs identity raises the error."""

    def __init__(self, error: Unauthenticated) -> None:
        super().__init__(None)
        self.error = error

    @property
    def user(self):
        raise self.error


async def access_for(authorization: str | None, secret: str) -> Access:
    try:
        return Access(await authenticate(authorization, secret))
    except Unauthenticated as error:
        return FailedAuth(error)


class Authentication(SchemaExtension):
    """Resolves the HTTP request's `Authorization` header (kept on the context as
    `authorization`) into `context.access` just before execution. Websockets authenticate once
    in connection_init and carry no pending header."""

    async def on_execute(self):
        context = self.execution_context.context
        request = getattr(context, "request", None)
        if request is not None and request.scope.get("type") == "websocket":
            # A websocket's context serves all its operations: each starts with empty loaders,
            # or a query would read what an earlier one cached before a change.
            context.loaders = Loaders()
        pending = getattr(context, "authorization", None)
        if pending is not None:
            context.authorization = None
            context.access = await access_for(pending, context.settings.secret_key)
        yield
