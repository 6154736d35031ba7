"""Rows read for display, built without Tortoise's per-row model construction.

A board reads 500 tasks per request. `Model._init_from_db` converts every column of every
row, and on SQLite a datetime column is text that Tortoise parses (three per task, read by
almost no board). A row class here has the model's attribute names and the same converted
values, from the model's own field converters (per backend, as `_init_from_db` picks them),
with the expensive columns converted on first read and kept. Rows serve reads only: they are
not saved, and hold no relation attributes (ids only, like the resolvers use).

The GraphQL types accept a model's row class wherever they accept the model
(schema/common.py model_type_check).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tortoise.fields import Field
from tortoise.fields.data import CharEnumFieldInstance, DatetimeField

from models import Task, orm

_CHAR_ENUM_TO_PYTHON = CharEnumFieldInstance.to_python_value


class _Lazy:
    """A column converted on first read (a non-data descriptor: the converted value then
    sits in the instance's __dict__ and shadows it)."""

    __slots__ = ("name", "raw", "field")

    def __init__(self, name: str, field: Field[Any]) -> None:
        self.name = name
        self.raw = "_raw_" + name
        self.field = field

    def __get__(self, obj: Row | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.field.to_python_value(obj.__dict__.pop(self.raw))
        return value


class Row:
    """Base of the row classes: identity by primary key, as models have it."""

    model: Any = None
    _lazy: frozenset[str] = frozenset()
    _cached: tuple[Any, ...] | None = None

    @property
    def pk(self) -> Any:
        return self.__dict__["id"]

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, (type(self), self.model)) and other.pk == self.pk)

    def __hash__(self) -> int:
        return hash(self.pk)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.pk}>"

    @classmethod
    def from_db(cls, row: Mapping[str, Any]) -> Row:
        """The row with every column converted as `model._init_from_db` converts it."""
        return cls.builder()(row)

    @classmethod
    def builder(cls) -> Callable[[Mapping[str, Any]], Row]:
        """`from_db` for many rows of one statement (the conversions looked up once)."""
        copies, converts, lazy = cls._conversions()
        new = cls.__new__

        def build(row: Mapping[str, Any]) -> Row:
            obj = new(cls)
            values = obj.__dict__
            for key, attr in copies:
                values[attr] = row[key]
            for key, attr, convert in converts:
                values[attr] = convert(row[key])
            for key, raw in lazy:
                values[raw] = row[key]
            return obj

        return build

    @classmethod
    def _conversions(cls) -> tuple[Any, Any, Any]:
        """(columns copied, columns converted, columns kept for later) for the model's
        current backend: Tortoise picks the field lists per connection at init."""
        lists = orm.conversions_of(cls.model)
        native, default, complex_ = lists
        cached = cls._cached
        if cached is not None and all(a is b for a, b in zip(cached[0], lists)):
            previous: tuple[Any, Any, Any] = cached[1]
            return previous
        copies = [(key, attr) for key, attr, _ in native]
        converts = [(key, attr, _nullable(field.field_type)) for key, attr, field in default]
        lazy = []
        for key, attr, field in complex_:
            if attr in cls._lazy:
                lazy.append((key, "_raw_" + attr))
            else:
                converts.append((key, attr, _converter(field)))
        plan: tuple[Any, Any, Any] = (tuple(copies), tuple(converts), tuple(lazy))
        cls._cached = (lists, plan)
        return plan


def _nullable(field_type: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        return None if value is None else field_type(value)

    return convert


def _converter(field: Field[Any]) -> Callable[[Any], Any]:
    """field.to_python_value; for an enum column, the member looked up by value first
    (what Enum(value) returns), Enum(value) itself for anything else."""
    enum_type = getattr(field, "enum_type", None)
    to_python = field.to_python_value
    if enum_type is None or type(field).to_python_value is not _CHAR_ENUM_TO_PYTHON:
        return to_python
    members = enum_type._value2member_map_

    def convert(value: Any) -> Any:
        member = members.get(value) if value.__class__ is str else None
        return member if member is not None else to_python(value)

    return convert


def row_class(model: type[Any], name: str) -> type[Row]:
    """`model`'s row class; its datetime columns are converted on first read."""
    lazy = {
        attr: _Lazy(attr, field)
        for attr, field in orm.fields_of(model).items()
        if isinstance(field, DatetimeField)
    }
    return type(name, (Row,), {"model": model, "_lazy": frozenset(lazy), "__module__": __name__, **lazy})


TaskRow = row_class(Task, "TaskRow")

# Model -> the row classes that stand for it in reads.
ROW_CLASSES: dict[type, tuple[type, ...]] = {Task: (TaskRow,)}
