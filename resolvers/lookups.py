"""One row by equality filters (a primary key, an `is_active` flag), without the query builder.

Every request looks up its user, and most a project or a task, by primary key. Through a
QuerySet each lookup builds its SQL anew (pypika), about 150-250 µs of CPU per statement on
the 2-core machine, more than running it; a light query (`task(id)`) spent more on building
its three statements than on anything else. Here the statement text is built once per
(model, filters, relation, dialect) and the rows become models through `_init_from_db`, as the
QuerySet's own executor builds them (select_related included), on the same connection the
QuerySet would choose (a transaction's, when one is open).
"""

from __future__ import annotations

from typing import Any, TypeVar

from tortoise.exceptions import MultipleObjectsReturned
from tortoise.models import Model

from models import orm

M = TypeVar("M", bound=Model)

_STATEMENTS: dict[tuple[Any, ...], str] = {}


def _columns(model: type[Model], alias: str, prefix: str | None) -> list[str]:
    columns = orm.columns_of(model)
    if prefix is None:
        return [f'"{alias}"."{c}"' for c in columns]
    return [f'"{alias}"."{c}" AS "{prefix}.{c}"' for c in columns]


def _statement(model: type[Model], where: tuple[str, ...], related: str | None, dialect: str) -> str:
    key = (model, where, related, dialect)
    cached = _STATEMENTS.get(key)
    if cached is not None:
        return cached
    select = _columns(model, "_t", None)
    join = ""
    if related is not None:
        other, source = orm.relation_of(model, related)
        select += _columns(other, "_r", related)
        join = (f' LEFT OUTER JOIN "{orm.table_of(other)}" "_r"'
                f' ON "_r"."{orm.pk_column_of(other)}" = "_t"."{source}"')
    conditions = " AND ".join(
        f'"_t"."{orm.column_of(model, name)}" = {mark}' for name, mark in zip(where, orm.placeholders(dialect, len(where)))
    )
    sql = f'SELECT {", ".join(select)} FROM "{orm.table_of(model)}" "_t"{join} WHERE {conditions} LIMIT 2'
    _STATEMENTS[key] = sql
    return sql


async def one(model: type[M], *, related: str | None = None, **where: Any) -> M | None:
    """`model.get_or_none(**where)` (with `.select_related(related)`) for equality filters on
    the model's own columns: None without a row; MultipleObjectsReturned as get_or_none."""
    db = orm.db_of(model)
    sql = _statement(model, tuple(where), related, db.capabilities.dialect)
    rows = await db.execute_query_dict(sql, list(where.values()))
    if not rows:
        return None
    if len(rows) > 1:
        raise MultipleObjectsReturned(model)
    row = rows[0]
    if related is None:
        return orm.from_row(model, row)
    prefix = related + "."
    instance = orm.from_row(model, {k: v for k, v in row.items() if not k.startswith(prefix)})
    values = {k[len(prefix):]: v for k, v in row.items() if k.startswith(prefix)}
    other, _ = orm.relation_of(model, related)
    # As the executor of select_related: a row of NULLs is no related object.
    orm.set_related(instance, related, orm.from_row(other, values) if any(values.values()) else None)
    return instance


_MANY: dict[tuple[Any, ...], str] = {}


async def by_ids(model: type[M], ids: list[Any]) -> list[M]:
    """`model.filter(id__in=ids)`: the rows whose primary key is in `ids`, in no order."""
    db = orm.db_of(model)
    dialect = db.capabilities.dialect
    key = (model, len(ids), dialect)
    sql = _MANY.get(key)
    if sql is None:
        sql = (f'SELECT {", ".join(_columns(model, "_t", None))} FROM "{orm.table_of(model)}" "_t"'
               f' WHERE "_t"."{orm.pk_column_of(model)}" IN ({", ".join(orm.placeholders(dialect, len(ids)))})')
        if len(ids) <= 64:  # the common batch sizes; a long IN list is built each time
            _MANY[key] = sql
    return [orm.from_row(model, row) for row in await db.execute_query_dict(sql, list(ids))]
