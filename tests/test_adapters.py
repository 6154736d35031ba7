"""The seams to Tortoise, Strawberry/graphql-core and broadcaster internals live in a few
adapter modules. Each seam is pinned here against the installed versions, so an upgrade that
moves one fails here, loudly, instead of as a wrong answer somewhere else; and no other
module may reach for those libraries' private names.

Adapters: models/orm.py (Tortoise models and querysets), server/db_resilience.py (Tortoise's
connection pool and transactions, with its own contract test), schema/runtime.py
(Strawberry's schema and validation), schema/root.py's ExecutionContext (graphql-core's
public execution hooks), server/ws_protocol.py (Strawberry's websocket handlers),
resolvers/broadcast.py (broadcaster).
"""

from __future__ import annotations

import ast
import asyncio
import contextvars
import inspect
import logging
from pathlib import Path

import broadcaster
import pytest
from broadcaster import Event
from broadcaster._backends.base import BroadcastBackend
from broadcaster._base import Unsubscribed
from graphql import GraphQLSchema, parse
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.subscriptions.protocols.graphql_transport_ws import handlers as transport_ws
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from models import Label, Organization, OrganizationMember, Task, orm
from resolvers.broadcast import Subscription
from schema import runtime
from schema.root import schema

ROOT = Path(__file__).resolve().parent.parent

ADAPTERS = {
    "models/orm.py",
    "server/db_resilience.py",
    "server/metrics.py",  # reads the pool's size through db_resilience's seam names
    "schema/runtime.py",
    "server/ws_protocol.py",
    "resolvers/broadcast.py",
}
# Private names of Tortoise, Strawberry, graphql-core and broadcaster objects that this code
# base has needed (or may be tempted to use).
LIBRARY_PRIVATES = {
    "_meta", "_saved_in_db", "_init_from_db", "_make_query", "_choose_db_if_not_chosen", "_db",
    "_pool", "_parent", "_connection", "_finalized", "_in_transaction", "_pool_init_lock",
    "_schema", "_subscribers", "_backend", "_backends", "_listener_task",
}
LIBRARIES = ("tortoise", "strawberry", "graphql", "broadcaster", "pypika_tortoise")


def _modules() -> list[Path]:
    paths = []
    for folder in ("models", "resolvers", "schema", "server", "bench"):
        paths += sorted((ROOT / folder).rglob("*.py"))
    return paths


def _offenders(source: str, rel: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute) and node.attr in LIBRARY_PRIVATES
            # Our own classes' attributes (a hub's `self._pool`) are ours to name.
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append(f"{rel}:{node.lineno} .{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module:
            top = node.module.split(".")[0]
            private_module = any(part.startswith("_") for part in node.module.split("."))
            private_name = any(alias.name.startswith("_") for alias in node.names)
            if top in LIBRARIES and (private_module or private_name):
                found.append(f"{rel}:{node.lineno} from {node.module} import ...")
    return found


def test_no_module_outside_the_adapters_touches_a_library_private_name():
    offenders = []
    for path in _modules():
        rel = path.relative_to(ROOT).as_posix()
        if rel not in ADAPTERS:
            offenders += _offenders(path.read_text(), rel)
    assert offenders == []


def test_the_check_sees_what_it_looks_for():
    sample = (
        "from broadcaster._backends.base import BroadcastBackend\n"
        "from strawberry.extensions.validation_cache import _get_validate_cache\n"
        "fields = Task._meta.fields_map\n"
        "task._saved_in_db = True\n"
        "self._pool = None\n"
    )
    assert sorted(o.split(" ", 1)[1] for o in _offenders(sample, "x.py")) == [
        "._meta",
        "._saved_in_db",
        "from broadcaster._backends.base import ...",
        "from strawberry.extensions.validation_cache import ...",
    ]


# -- Tortoise (models/orm.py) --------------------------------------------------------------


async def test_tortoise_seams(app):
    fields = orm.fields_of(Task)
    assert {"project_id", "created_at", "custom_properties"} <= set(fields)
    assert orm.column_of(Task, "project_id") == "project_id"
    assert orm.table_of(Comment_model()) == "task_comment"
    assert orm.pk_max(Task) == 2**31 - 1
    db = orm.db_of(OrganizationMember)
    assert hasattr(db, "execute_query_dict") and hasattr(db, "query_class")
    label = orm.from_row(Label, {"id": 7, "project_id": 3, "name": "x", "color": "#000000",
                                 "created_at": "2026-01-01T00:00:00+00:00"})
    assert (label.id, label.project_id, label.name) == (7, 3, "x")
    detached = orm.detached(Label, {"id": 8, "project_id": 3, "name": "y", "color": "#000000"})
    assert detached.pk == 8 and detached._saved_in_db  # noqa: SLF001 - the seam itself
    connection, sql, params = orm.sql_of(Task.filter(project_id=5, title="t"))
    assert connection is orm.db_of(Task)
    assert "task" in sql and 5 in params and "t" in params
    # values_list(flat=True), typed as it returns: plain values, not tuples.
    org = await Organization.create(slug="seams", name="Seams")
    assert await orm.column_values(Organization.filter(id=org.id), "slug") == ["seams"]
    assert await orm.column_values(Organization.filter(id=-1), "slug") == []
    assert await orm.first_value(Organization.filter(id=org.id), "slug") == "seams"
    assert await orm.first_value(Organization.filter(id=-1), "slug") is None
    # Used by resolvers/lookups.py and resolvers/rows.py (rows without the query builder).
    assert {"id", "project_id", "title", "status"} <= set(orm.columns_of(Task))
    assert orm.pk_column_of(Task) == "id"
    related, source = orm.relation_of(Task, "project")
    assert (related.__name__, source) == ("Project", "project_id")
    task = orm.from_row(Task, {c: None for c in orm.columns_of(Task)} | {"id": 1, "project_id": 2})
    orm.set_related(task, "project", None)
    assert task.project is None
    native, default, complex_ = orm.conversions_of(Task)
    converted = {attr for _, attr, _ in (*native, *default, *complex_)}
    assert converted == set(orm.columns_of(Task)) - {"project_id"} | {"project_id"}
    assert all(callable(field.to_python_value) for _, _, field in complex_)


@pytest.mark.both_databases
async def test_every_statement_reaches_the_statement_listeners(app):
    """Tortoise's clients log through models/orm.StatementLog (the module global they take
    when made, and the connection's inside a transaction): one call per statement, none for
    the pool's set-up lines, and no log record built unless the logger is at DEBUG."""
    heard: list[int] = []
    # Only this test's statements: the app's background tasks (NORA's sweep) run their own.
    mine: contextvars.ContextVar[bool] = contextvars.ContextVar("mine", default=False)

    def listener() -> None:
        if mine.get():
            heard.append(1)

    orm.on_statement(listener)
    mine.set(True)
    try:
        await _statements_heard(heard)
    finally:
        orm._statement_listeners.remove(listener)  # noqa: SLF001 - the test's own listener


async def _statements_heard(heard: list[int]) -> None:
    from tortoise.transactions import in_transaction

    db = orm.db_of(Organization)
    assert isinstance(db.log, orm.StatementLog)
    await Organization.filter(id=-1).first()
    assert len(heard) == 1
    async with in_transaction() as connection:
        assert isinstance(connection.log, orm.StatementLog)
        await Organization.filter(id=-1).using_db(connection).first()
        await Organization.filter(id=-2).using_db(connection).exists()
    assert len(heard) == 3
    db.log.debug("Created connection pool %s with params: %s", None, None)
    assert len(heard) == 3

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("tortoise.db_client")
    handler, previous = Keep(level=logging.DEBUG), logger.level
    logger.addHandler(handler)
    try:
        logger.setLevel(logging.INFO)
        await Organization.filter(id=-1).first()
        assert records == [] and len(heard) == 4
        logger.setLevel(logging.DEBUG)
        await Organization.filter(id=-1).first()
        assert len(records) == 1 and len(heard) == 5
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def Comment_model():  # noqa: N802 - the model named as the API names it
    from models import Comment

    return Comment


# -- Strawberry / graphql-core (schema/runtime.py, schema/root.py) -------------------------


def test_strawberry_seams():
    graphql_schema = runtime.graphql_schema(schema)
    assert isinstance(graphql_schema, GraphQLSchema)
    document = parse("{ __typename }")
    rules = tuple(schema.validation_rules) if hasattr(schema, "validation_rules") else ()
    assert list(runtime.validate_cached(graphql_schema, document, rules)) == []
    before = runtime.validate_cached.cache_info().hits
    runtime.validate_cached(graphql_schema, document, rules)
    assert runtime.validate_cached.cache_info().hits == before + 1
    # The execution context hooks schema/root.py overrides or sets.
    for name in ("build_per_event_executor", "execute_operation", "execute_field", "complete_value"):
        assert callable(getattr(StrawberryGraphQLCoreExecutionContext, name)), name
    # schema/root.py replaces the instance's `is_awaitable` (Tortoise models define __await__).
    assert callable(StrawberryGraphQLCoreExecutionContext.is_awaitable)


def test_strawberry_websocket_seams():
    """server/ws_protocol.py overrides these; their shapes must not move under it."""
    assert issubclass(transport_ws._OperationStreamClosed, Exception)  # noqa: SLF001
    parameters = inspect.signature(BaseGraphQLWSHandler.handle_async_results).parameters
    assert list(parameters)[:2] == ["self", "operation_id"]


# -- broadcaster (resolvers/broadcast.py) --------------------------------------------------


def test_broadcaster_seams():
    assert broadcaster.__version__.startswith("0.3.")
    hub = broadcaster.Broadcast("memory://")
    assert isinstance(hub._subscribers, dict)  # noqa: SLF001 - the seam itself
    assert hasattr(hub, "_backend")
    abstract = {"connect", "disconnect", "subscribe", "unsubscribe", "publish", "next_published"}
    assert abstract <= {name for name, _ in inspect.getmembers(BroadcastBackend, inspect.isfunction)}


async def test_hub_subscription_ends_on_broadcasters_end_marker():
    # Hub's queues live in broadcaster's `_subscribers`, typed Queue[Event | None]: None is
    # broadcaster's end of a subscription, and ends ours the same way (Unsubscribed on get).
    queue: asyncio.Queue[Event | None] = asyncio.Queue()
    subscription = Subscription(queue)
    queue.put_nowait(Event(channel="c", message="m"))
    queue.put_nowait(None)
    assert [event async for event in subscription] == [Event(channel="c", message="m")]
    queue.put_nowait(None)
    with pytest.raises(Unsubscribed):
        await subscription.get()


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_every_adapter_exists(name):
    assert (ROOT / name).is_file()
