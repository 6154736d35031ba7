"""Keyset cursor pagination over a Tortoise queryset.

A cursor encodes the sort values of its row and the row id, so pages stay stable when rows
are inserted or moved elsewhere in the list (unlike offsets).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Generic, TypeVar

import orjson
from tortoise.expressions import Q
from tortoise.fields import CharField, DateField, DatetimeField, Field, IntField, TextField
from tortoise.models import Model
from tortoise.queryset import QuerySet

from models import orm
from resolvers import codec
from resolvers.errors import BadInput

DEFAULT_PAGE = 50
MAX_PAGE = 100
_TEXT_MAX = 10_000  # a sort value of an unbounded text column, in a cursor

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class Order:
    """Sort fields (name, descending); `id` in the same direction as the last one breaks ties."""

    fields: tuple[tuple[str, bool], ...]

    def with_tiebreak(self) -> tuple[tuple[str, bool], ...]:
        if any(f == "id" for f, _ in self.fields):
            return self.fields
        return (*self.fields, ("id", self.fields[-1][1] if self.fields else False))


@dataclass
class Page(Generic[M]):
    items: list[M]
    cursors: Sequence[str]
    has_next_page: bool
    has_previous_page: bool
    # Unpaginated, for totalCount; None for a page that knows its total otherwise
    # (resolvers/loaders.py CountedPage).
    queryset: QuerySet[M] | None

    async def total_count(self) -> int:
        if self.queryset is None:
            raise TypeError("a page without its queryset counts its total itself")
        return await self.queryset.count()


def check_page_args(first: int | None, last: int | None) -> None:
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 0 <= value <= MAX_PAGE:
            raise BadInput(f"`{name}` must be between 0 and {MAX_PAGE}", field=name)
    if first is not None and last is not None:
        raise BadInput("Pass `first` or `last`, not both", field="last")


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"dt": value.isoformat()}
    if isinstance(value, date):
        return {"d": value.isoformat()}
    if hasattr(value, "value"):  # enums
        return value.value
    return value


class _Malformed(Exception):
    pass


def _decode_value(value: Any, field: Field[Any]) -> Any:
    """`value` as the sort field can hold it, or _Malformed.

    A cursor comes back from the client: each value must have the type and range of its
    column, or PostgreSQL fails the statement (a string compared with a timestamptz, 2**31
    with an int4) where SQLite silently compares whatever it is given.
    """
    if value is None:
        if field.null:
            return None
        raise _Malformed
    if isinstance(field, IntField):
        limits = field.constraints
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Malformed
        if not limits["ge"] <= value <= limits["le"]:
            raise _Malformed
        return value
    if isinstance(field, (CharField, TextField)):
        if not isinstance(value, str) or "\x00" in value:
            raise _Malformed
        if len(value) > (getattr(field, "max_length", None) or _TEXT_MAX):
            raise _Malformed
        enum = getattr(field, "enum_type", None)
        if enum is not None and value not in {member.value for member in enum}:
            raise _Malformed
        return value
    if isinstance(field, DatetimeField):
        moment = datetime.fromisoformat(_only(value, "dt"))
        if moment.tzinfo is None:  # we only issue aware times (use_tz)
            raise _Malformed
        return moment.astimezone(UTC)  # OverflowError at the ends of the calendar
    if isinstance(field, DateField):
        return date.fromisoformat(_only(value, "d"))
    # A sort on a column of another type needs its own rule here before it can page.
    raise _Malformed


def _only(value: Any, key: str) -> str:
    if not isinstance(value, dict) or value.keys() != {key} or not isinstance(value[key], str):
        raise _Malformed
    key_value: str = value[key]
    return key_value


def encode_cursor(row: Any, fields: tuple[tuple[str, bool], ...]) -> str:
    values = [_encode_value(getattr(row, name)) for name, _ in fields]
    return codec.encode(orjson.dumps(values))


def decode_cursor(
    cursor: str, fields: tuple[tuple[str, bool], ...], arg: str, model: type[Model]
) -> list[Any]:
    try:
        values = orjson.loads(codec.decode(cursor))
    except ValueError:  # orjson.JSONDecodeError is one too
        raise BadInput("Malformed cursor", field=arg) from None
    if not isinstance(values, list) or len(values) != len(fields):
        raise BadInput("Cursor does not belong to this list or ordering", field=arg)
    columns = orm.fields_of(model)
    try:
        return [_decode_value(v, columns[name]) for (name, _), v in zip(fields, values)]
    except (_Malformed, TypeError, ValueError, OverflowError):
        raise BadInput("Malformed cursor", field=arg) from None


def _after(fields: tuple[tuple[str, bool], ...], values: list[Any], forward: bool) -> Q:
    """Rows strictly after `values` in the given order (or before, when not forward)."""
    clauses = []
    for i, (name, desc) in enumerate(fields):
        op = "gt" if desc != forward else "lt"
        eq = {f: v for (f, _), v in zip(fields[:i], values[:i])}
        clauses.append(Q(**eq, **{f"{name}__{op}": values[i]}))
    q = clauses[0]
    for c in clauses[1:]:
        q = q | c
    lead, desc = fields[0]
    if len(fields) > 1 and values[0] is not None:
        # Implied by the OR, but PostgreSQL seeks an index only with a bound on the leading
        # column: without it a page deep in a long list reads every row before it.
        q = Q(**{f"{lead}__{'gte' if desc != forward else 'lte'}": values[0]}) & q
    return q


async def paginate(
    queryset: QuerySet[M],
    order: Order,
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Page[M]:
    check_page_args(first, last)
    fields = order.with_tiebreak()
    qs = queryset
    if after:
        qs = qs.filter(_after(fields, decode_cursor(after, fields, "after", qs.model), True))
    if before:
        qs = qs.filter(_after(fields, decode_cursor(before, fields, "before", qs.model), False))
    backwards = last is not None
    limit = last if last is not None else (first if first is not None else DEFAULT_PAGE)
    ordering = [(("-" if desc != backwards else "") + name) for name, desc in fields]
    rows = list(await qs.order_by(*ordering).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    return Page(
        items=rows,
        cursors=[encode_cursor(r, fields) for r in rows],
        has_next_page=more if not backwards else bool(before),
        has_previous_page=more if backwards else bool(after),
        queryset=queryset,
    )
