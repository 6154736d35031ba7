"""The one place that touches Tortoise ORM's private names.

Everything else asks this module: model metadata (fields, columns, table, key range), rows
built without a query (from raw SQL rows or event snapshots), and the SQL Tortoise would run
for a queryset. tests/test_adapters.py pins each seam against the installed Tortoise, so an
upgrade that moves one fails there, loudly, and not as a wrong answer somewhere else.
(server/db_resilience.py is the adapter to Tortoise's connection pool and transactions.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import tortoise.backends.base.client
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.fields import Field
from tortoise.models import Model
from tortoise.queryset import QuerySet

M = TypeVar("M", bound=Model)


def fields_of(model: type[Model]) -> dict[str, Field[Any]]:
    """Every field of `model` by Python name, foreign-key id columns (`project_id`) included."""
    return model._meta.fields_map


def column_of(model: type[Model], name: str) -> str:
    """The database column of field `name`."""
    return model._meta.fields_db_projection.get(name, name)


def table_of(model: type[Model]) -> str:
    return model._meta.db_table


def db_of(model: type[Model]) -> BaseDBAsyncClient:
    """The connection (or the current transaction's) that `model` reads and writes through."""
    return model._meta.db


def columns_of(model: type[Model]) -> list[str]:
    """The database column of every field, foreign-key id columns included."""
    return list(model._meta.fields_db_projection.values())


def pk_column_of(model: type[Model]) -> str:
    return model._meta.db_pk_column


def relation_of(model: type[Model], name: str) -> tuple[type[Model], str]:
    """The model that the foreign key `name` points to, and the column holding its id."""
    field: Any = model._meta.fields_map[name]
    related: type[Model] = field.related_model
    return related, model._meta.fields_db_projection[field.source_field]


def set_related(instance: Model, name: str, obj: Model | None) -> None:
    """What `select_related(name)` leaves on `instance`: the related row, or None."""
    object.__setattr__(instance, f"_{name}", obj)


def conversions_of(model: type[Model]) -> tuple[Any, Any, Any]:
    """How a row becomes attributes on the current connection, as `from_row` does it:
    (column, attribute, field) of the columns the driver returns as they are, of those made
    with the field's Python type, and of those converted by the field's to_python_value.
    Tortoise picks the lists per backend when it starts."""
    meta = model._meta
    return meta.db_native_fields, meta.db_default_fields, meta.db_complex_fields


def pk_max(model: type[Model]) -> int:
    """The largest primary key the column can hold (int4 or int8)."""
    return int(model._meta.pk.constraints["le"])


def from_row(model: type[M], row: Mapping[str, Any]) -> M:
    """A model instance from a row of raw SQL (a dict, or the driver's row read by column
    name), as a query would have built it."""
    return model._init_from_db(**row)


def detached(model: type[M], values: dict[str, Any]) -> M:
    """A read-only instance from values that were read before (an event's snapshot): it
    behaves as loaded from the database, so relations and saves see a stored row."""
    instance = model(**values)
    instance._saved_in_db = True
    return instance


def placeholders(dialect: str, count: int, start: int = 0) -> list[str]:
    """`count` parameter placeholders for raw SQL in `dialect` (a connection's
    `capabilities.dialect`), after `start` parameters already bound: PostgreSQL numbers them
    ($n), SQLite takes them in order (?). Values are always bound, never formatted in."""
    if dialect == "postgres":
        return [f"${i}" for i in range(start + 1, start + count + 1)]
    return ["?"] * count


def sql_of(qs: QuerySet[Any]) -> tuple[BaseDBAsyncClient, str, list[Any]]:
    """The connection, parameterized SQL and parameters Tortoise would run for `qs`."""
    qs._choose_db_if_not_chosen()
    qs._make_query()
    sql, params = qs.query.get_parameterized_sql()
    return qs._db, sql, params


async def column_values(qs: QuerySet[Any], name: str) -> list[Any]:
    """`name` of every row of `qs`: values_list(name, flat=True), typed as what it returns
    (Tortoise 1.1 annotates the flat form as a list of tuples)."""
    values: list[Any] = await qs.values_list(name, flat=True)
    return values


async def first_value(qs: QuerySet[Any], name: str) -> Any:
    """`name` of the first row of `qs`, None without one: first().values_list(name, flat=True),
    which Tortoise annotates as a tuple."""
    return await qs.first().values_list(name, flat=True)


# -- statements ---------------------------------------------------------------------------------

# What Tortoise's clients log on the same logger that are not statements.
NOT_STATEMENTS = ("Created connection", "Closed connection")
_statement_listeners: list[Callable[[], None]] = []


class StatementLog:
    """Stands in for the `tortoise.db_client` logger on every Tortoise client (each takes
    `tortoise.backends.base.client.db_client_logger` when it is made, and transactions take
    their connection's). Tortoise logs each statement there at DEBUG; counting them from log
    records kept that logger at DEBUG and built a record per statement (5% of a small
    request's CPU). Here each statement is counted as it is logged, and a record is made only
    when the logger is enabled for DEBUG (a test counting statements, `--log-level debug`)."""

    __slots__ = ("logger",)

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        if not str(msg).startswith(NOT_STATEMENTS):
            for listener in _statement_listeners:
                listener()
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug(msg, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.logger, name)


def on_statement(listener: Callable[[], None]) -> None:
    """Call `listener` for every statement any Tortoise client sends (once per listener)."""
    if listener not in _statement_listeners:
        _statement_listeners.append(listener)


# Before any client exists: models/ is imported before Tortoise starts.
tortoise.backends.base.client.db_client_logger = StatementLog(  # type: ignore[attr-defined,assignment]
    logging.getLogger("tortoise.db_client")
)
