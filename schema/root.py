"""Assembles the Query, Mutation and Subscription roots into the schema."""

from __future__ import annotations

import logging
from typing import Annotated

import strawberry
from graphql.error import GraphQLError
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import ParserCache
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from tortoise.models import Model

from resolvers import nodes as node_resolvers
from resolvers.errors import NotFound
from resolvers.ids import decode_id
from resolvers.org import organizations as org_resolvers
from resolvers.project import projects as project_resolvers
from resolvers.task import tasks as task_resolvers
from schema import caching, execution, sharing
from schema.audit import AUDIT_EVENT_TYPES, AuditSubscription
from schema.authentication import Authentication
from schema.common import After, Before, First, IncludeArchived, Info, Last, Node, ProjectSearch, ctx
from schema.errors import ErrorCodes, is_expected
from schema.event import EVENT_TYPES, ResyncRequired, Subscription
from schema.identity import AccountEmailMutations, ApiKeyMutations, SessionMutations, UserMutations, Viewer
from schema.limits import RequestLimits
from schema.metrics import OperationMetrics
from schema.nora import (
    NORA_EVENT_TYPES,
    NoraMutations,
    NoraQueries,
    NoraResyncRequired,
    NoraSubscription,
)
from schema.org import Organization, OrgMutations, OrgSessionMutations
from schema.project import LabelMutations, Project, ProjectConnection, ProjectMutations
from schema.ratelimit import RateLimitExtension, RateLimitQueries
from schema.scalars import SCALAR_OVERRIDES
from schema.task import Task, TaskMutations

log = logging.getLogger("pcg.errors")


@strawberry.type
class Query:
    @strawberry.field(description="The authenticated caller.")
    async def viewer(self, info: Info) -> Viewer:
        return Viewer(user=ctx(info).access.user)

    @strawberry.field(description="Any object by global ID; null if it does not exist or is not visible.")
    async def node(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="A global ID.")]
    ) -> Node | None:
        return await node_resolvers.node(ctx(info), id)

    @strawberry.field(description="Objects by global IDs, in order; null where not found (max 100).")
    async def nodes(
        self,
        info: Info,
        ids: Annotated[list[strawberry.ID], strawberry.argument(description="At most 100 global IDs.")],
    ) -> list[Node | None]:
        return await node_resolvers.nodes(ctx(info), ids)

    @strawberry.field(description="An organization by slug; null unless the viewer is a member.")
    async def organization(
        self, info: Info, slug: Annotated[str, strawberry.argument(description="The organization's slug.")]
    ) -> Organization | None:
        return await org_resolvers.organization_by_slug(ctx(info), slug)

    @strawberry.field(description="Projects the viewer may see, across organizations.")
    async def projects(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        include_archived: IncludeArchived = False,
        search: ProjectSearch = None,
    ) -> ProjectConnection:
        page = await project_resolvers.projects(
            ctx(info),
            include_archived=include_archived,
            search=search,
            first=first,
            after=after,
            last=last,
            before=before,
        )
        return ProjectConnection.of(page)

    @strawberry.field(description="A project by ID; null if it does not exist or is not visible.")
    async def project(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="A Project ID.")]
    ) -> Project | None:
        try:
            return await ctx(info).access.project(decode_id(id, "Project"))
        except NotFound:
            return None

    @strawberry.field(description="A task by ID; null if it does not exist or is not visible.")
    async def task(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="A Task ID.")]
    ) -> Task | None:
        return await task_resolvers.get_task_or_none(ctx(info), decode_id(id, "Task"))


def _root(name: str, description: str, parts: tuple[type, ...]) -> type:
    # strawberry.tools.merge_types, with a description.
    return strawberry.type(type(name, parts, {}), description=description)


Query = _root(
    "Query",
    "Reads. What the viewer may not see is null or NOT_FOUND, exactly as if it did not exist.",
    (Query, NoraQueries, RateLimitQueries),
)
Mutation = _root(
    "Mutation",
    "Writes. Each takes one `input` object (logOut and resendVerificationEmail none, "
    "logOutEverywhere an optional one) and returns a payload; a refused write changes nothing "
    "and says why in `extensions.code`.",
    (UserMutations, SessionMutations, AccountEmailMutations, OrgMutations, OrgSessionMutations,
     ApiKeyMutations, ProjectMutations, TaskMutations, LabelMutations, NoraMutations),
)
Subscription = _root(
    "Subscription",
    "Live event streams, over a websocket (graphql-transport-ws or graphql-ws). Resume with "
    "`after` to miss nothing.",
    (Subscription, NoraSubscription, AuditSubscription),
)

# Types reached only through an interface (BoardEvent, NoraEvent, AuditLogEvent): every event
# type and each stream's resync marker. A schema built without one could not return it.
STREAM_TYPES = (
    *EVENT_TYPES.values(), ResyncRequired, *NORA_EVENT_TYPES.values(), NoraResyncRequired,
    *AUDIT_EVENT_TYPES,
)


class ExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Tortoise model instances define `__await__` (resolving to themselves), so graphql-core
    took every model in a list for an awaitable and awaited each in its own task. They are
    plain values here; this saves about a fifth of the CPU of a large board."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.is_awaitable = _is_awaitable
        self.share = None

    def build_per_event_executor(self, payload):
        executor = super().build_per_event_executor(payload)
        executor.share = sharing.share_key(executor, payload)
        return executor

    def execute_operation(self, serially=None):
        if self.share is not None:
            return sharing.execute_shared(self, self._execute, serially)
        store = getattr(self.context_value, "response_cache", None)
        if store is not None and caching.cacheable(self):
            return caching.answer(self, store, self._execute, serially)
        return self._execute(serially)

    def _execute(self, serially=None):
        # The compiled plan when the operation allows it (schema/execution), else graphql-core.
        settings = getattr(self.context_value, "settings", None)
        if getattr(settings, "compiled_execution", False):
            result = execution.execute(self, serially)
            if result is not NotImplemented:
                return result
        return super().execute_operation(serially)


def _is_awaitable(value) -> bool:
    return not isinstance(value, Model) and optimized_is_awaitable(value)


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context=None) -> None:
        for error in errors:
            if not is_expected(error):
                # The id the masked error carries in its extensions, also on a websocket.
                request_id = getattr(getattr(execution_context, "context", None), "request_id", None)
                log.error("unexpected error at %s", ".".join(map(str, error.path or ())) or "-",
                          exc_info=error.original_error, extra={"request_id": request_id})


def build_schema() -> strawberry.Schema:
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        execution_context_class=ExecutionContext,
        scalar_overrides=SCALAR_OVERRIDES,
        types=list(STREAM_TYPES),
        extensions=[
            OperationMetrics,
            ErrorCodes,
            lambda: ParserCache(maxsize=1024),
            # Depth, aliases, cost and page sizes, each fragment walked once (Strawberry's
            # QueryDepthLimiter re-walked a fragment at every spread), then the spec's
            # validation, cached.
            RequestLimits,
            Authentication,
            RateLimitExtension,
        ],
    )


schema = build_schema()
