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

from typing import Any

from tortoise.fields.data import DatetimeField

from models import Task


class _Lazy:
    """A column converted on first read (a non-data descriptor: the converted value then
    sits in the instance's __dict__ and shadows it)."""

    __slots__ = ("name", "raw", "field")

    def __init__(self, name: str, field) -> None:
        self.name = name
        self.raw = "_raw_" + name
        self.field = field

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.field.to_python_value(obj.__dict__.pop(self.raw))
        return value


class Row:
    """Base of the row classes: identity by primary key, as models have it."""

    model: Any = None
    _lazy: frozenset = frozenset()

    @property
    def pk(self) -> Any:
        return self.id

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, (type(self), self.model)) and other.pk == self.pk)

    def __hash__(self) -> int:
        return hash(self.pk)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.pk}>"

    @classmethod
    def from_db(cls, row: dict) -> Row:
        """The row with every column converted as `model._init_from_db` converts it."""
        obj = cls.__new__(cls)
        values = obj.__dict__
        meta = cls.model._meta
        lazy = cls._lazy
        for key, attr, _field in meta.db_native_fields:
            values[attr] = row[key]
        for key, attr, field in meta.db_default_fields:
            value = row[key]
            values[attr] = None if value is None else field.field_type(value)
        for key, attr, field in meta.db_complex_fields:
            if attr in lazy:
                values["_raw_" + attr] = row[key]
            else:
                values[attr] = field.to_python_value(row[key])
        return obj


def row_class(model, name: str) -> type[Row]:
    """`model`'s row class; its datetime columns are converted on first read."""
    lazy = {
        attr: _Lazy(attr, field)
        for attr, field in model._meta.fields_map.items()
        if isinstance(field, DatetimeField)
    }
    return type(name, (Row,), {"model": model, "_lazy": frozenset(lazy), "__module__": __name__, **lazy})


TaskRow = row_class(Task, "TaskRow")

# Model -> the row classes that stand for it in reads.
ROW_CLASSES: dict[type, tuple[type, ...]] = {Task: (TaskRow,)}
