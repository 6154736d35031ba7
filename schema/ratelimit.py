"""Admission: every operation's cost is charged to its caller's budget before it executes.

Over HTTP a charged response carries GitHub's X-RateLimit-* headers, and one over budget is
HTTP 429 with Retry-After and a RATE_LIMITED error. Over a websocket each query, mutation and
subscription start is charged the same way (events of a running subscription are not) and a
refusal is that operation's error.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextvars import ContextVar
from datetime import UTC, datetime

import strawberry
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.error import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from resolvers import ratelimit
from schema.common import Info, ctx

# The charge of the operation being executed. A context variable, not the context object:
# a websocket's context is shared by all of its operations, each of which runs in a task of
# its own (and so sees its own value).
_charged: ContextVar[tuple[int, ratelimit.Window | None] | None] = ContextVar(
    "pcg_rate_limit", default=None
)


class RateLimitExtension(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:
        execution_context = self.execution_context
        context = execution_context.context
        cost = ratelimit.points(getattr(execution_context, "pcg_cost", None))
        window = await ratelimit.admit(context, cost)
        token = _charged.set((cost, window))
        try:
            if window is not None:
                self._refuse_if_over(window, context, execution_context)
            yield
        finally:
            _charged.reset(token)

    @staticmethod
    def _refuse_if_over(window, context, execution_context) -> None:
        response = _http_response(context)
        if response is not None and window.charged:
            response.headers.update(ratelimit.headers(window))
        if window.allowed:
            return
        error = ratelimit.over_budget(window)
        if execution_context.operation_type is OperationType.SUBSCRIPTION:
            # A preset result does not stop subscribe(); an error raised here does, and
            # Strawberry sends it as the subscription's error.
            raise error
        if response is not None:
            response.status_code = 429
            response.headers["Retry-After"] = str(window.retry_after)
        execution_context.result = GraphQLExecutionResult(
            data=None, errors=[GraphQLError(error.message, original_error=error)]
        )


def _http_response(context):
    """Strawberry's temporal response of an HTTP request; None on a websocket, where the
    context's `response` is the socket itself."""
    request = getattr(context, "request", None)
    if request is None or request.scope.get("type") != "http":
        return None
    return getattr(context, "response", None)


@strawberry.type(description="The caller's budget of points per minute, as after this operation.")
class RateLimit:
    cost: int = strawberry.field(description="Points this operation cost.")
    limit: int = strawberry.field(description="Points per minute for the caller (user, API key or IP address).")
    remaining: int = strawberry.field(description="Points left in the current window.")
    used: int = strawberry.field(description="Points spent in the current window.")
    reset_at: datetime = strawberry.field(description="When the current window ends.")


@strawberry.type
class RateLimitQueries:
    @strawberry.field(description="The caller's rate limit. Reading it costs nothing extra.")
    async def rate_limit(self, info: Info) -> RateLimit:
        cost, window = _charged.get() or (1, None)
        if window is None or not window.charged:
            # Limiting is off or its store is unreachable: the full budget, nothing spent.
            _, limit = await ratelimit.budget_of(ctx(info))
            return RateLimit(cost=cost, limit=limit, remaining=limit, used=0,
                             reset_at=_at(time.time() + ratelimit.GRAPHQL_WINDOW))
        return RateLimit(cost=window.cost, limit=window.limit, remaining=window.remaining,
                         used=window.used, reset_at=_at(window.reset_at))


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(math.ceil(epoch), UTC)
