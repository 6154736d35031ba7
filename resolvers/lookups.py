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

from typing import Any

from tortoise.models import Model
from tortoise.router import router

_STATEMENTS: dict[tuple, tuple[str, int]] = {}


def _db(model):
    return router.db_for_read(model) or model._meta.db


def _columns(model, alias: str, prefix: str | None) -> list[str]:
    columns = model._meta.fields_db_projection.values()
    if prefix is None:
        return [f'"{alias}"."{c}"' for c in columns]
    return [f'"{alias}"."{c}" AS "{prefix}.{c}"' for c in columns]


def _statement(model, where: tuple[str, ...], related: str | None, dialect: str) -> tuple[str, int]:
    key = (model, where, related, dialect)
    cached = _STATEMENTS.get(key)
    if cached is not None:
        return cached
    meta = model._meta
    mark = (lambda i: f"${i}") if dialect == "postgres" else (lambda i: "?")
    select = _columns(model, "_t", None)
    join = ""
    count = 0
    if related is not None:
        field = meta.fields_map[related]
        other = field.related_model
        select += _columns(other, "_r", related)
        source = meta.fields_db_projection[field.source_field]
        join = f' LEFT OUTER JOIN "{other._meta.db_table}" "_r" ON "_r"."{other._meta.db_pk_column}" = "_t"."{source}"'
        count = len(other._meta.fields_db_projection)
    conditions = " AND ".join(
        f'"_t"."{meta.fields_db_projection[name]}" = {mark(i)}' for i, name in enumerate(where, 1)
    )
    sql = f'SELECT {", ".join(select)} FROM "{meta.db_table}" "_t"{join} WHERE {conditions} LIMIT 2'
    _STATEMENTS[key] = (sql, count)
    return sql, count


async def one(model: type[Model], *, related: str | None = None, **where: Any) -> Model | None:
    """`model.get_or_none(**where)` (with `.select_related(related)`) for equality filters on
    the model's own columns: None without a row; MultipleObjectsReturned as get_or_none."""
    db = _db(model)
    sql, related_columns = _statement(model, tuple(where), related, db.capabilities.dialect)
    rows = await db.execute_query_dict(sql, list(where.values()))
    if not rows:
        return None
    if len(rows) > 1:
        from tortoise.exceptions import MultipleObjectsReturned

        raise MultipleObjectsReturned(model)
    row = rows[0]
    if related is None:
        return model._init_from_db(**row)
    prefix = related + "."
    own = {k: v for k, v in row.items() if not k.startswith(prefix)}
    instance = model._init_from_db(**own)
    values = {k[len(prefix):]: v for k, v in row.items() if k.startswith(prefix)}
    other = model._meta.fields_map[related].related_model
    # As the executor of select_related: a row of NULLs is no related object.
    obj = other._init_from_db(**values) if any(v for v in values.values()) else None
    object.__setattr__(instance, f"_{related}", obj)
    return instance


_MANY: dict[tuple, str] = {}


async def by_ids(model: type[Model], ids: list) -> list[Model]:
    """`model.filter(id__in=ids)`: the rows whose primary key is in `ids`, in no order."""
    db = _db(model)
    dialect = db.capabilities.dialect
    key = (model, len(ids), dialect)
    sql = _MANY.get(key)
    if sql is None:
        meta = model._meta
        marks = ", ".join(f"${i}" for i in range(1, len(ids) + 1)) if dialect == "postgres" else ", ".join("?" * len(ids))
        sql = (f'SELECT {", ".join(_columns(model, "_t", None))} FROM "{meta.db_table}" "_t"'
               f' WHERE "_t"."{meta.db_pk_column}" IN ({marks})')
        if len(ids) <= 64:  # the common batch sizes; a long IN list is built each time
            _MANY[key] = sql
    build = model._init_from_db
    return [build(**row) for row in await db.execute_query_dict(sql, list(ids))]
