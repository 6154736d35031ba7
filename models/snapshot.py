"""One serializer per model: how a row appears in audit entries (before/after), in event
payloads, and how an event's copy becomes a read-only model again (`load`).

Each model that is audited or carried by events declares `snapshot_fields`, the Python names
of the fields it shows (never secrets such as hashes). Keys are the API's camelCase
(`project_id` -> `projectId`), dates ISO 8601, enums their values; `load` reverses exactly
that, from the same declaration.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from enum import Enum
from typing import Any, TypeVar

from tortoise.fields import DateField, DatetimeField
from tortoise.fields.data import CharEnumFieldInstance
from tortoise.models import Model

from models import orm

M = TypeVar("M", bound=Model)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _dump_value(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _loader(field: Any) -> Callable[[Any], Any] | None:
    if isinstance(field, DatetimeField):
        return datetime.fromisoformat
    if isinstance(field, DateField):
        return date.fromisoformat
    if isinstance(field, CharEnumFieldInstance):
        return field.enum_type
    return None


class Serializer:
    def __init__(self, model: type[Model]) -> None:
        names: tuple[str, ...] = model.snapshot_fields  # type: ignore[attr-defined]
        fields = orm.fields_of(model)
        unknown = [n for n in names if n not in fields]
        if unknown:
            raise TypeError(f"{model.__name__}.snapshot_fields names no field: {unknown}")
        self.model = model
        self.keys = tuple((name, camel(name)) for name in names)
        self.loaders = {camel(name): (name, _loader(fields[name])) for name in names}
        self.cache_key = f"__pcg_{model.__name__}"

    def dump(self, instance: Model) -> dict[str, Any]:
        return {key: _dump_value(getattr(instance, name)) for name, key in self.keys}

    def load(self, data: dict[str, Any]) -> Model:
        """A read-only instance; cached on `data`, which one event shares with all its
        subscribers (so it is built once per event, not once per subscriber)."""
        cached: Model | None = data.get(self.cache_key)
        if cached is not None:
            return cached
        values = {}
        for key, value in data.items():
            known = self.loaders.get(key)
            if known is None:
                continue  # extra context an entry carries (labelIds, ...)
            name, convert = known
            values[name] = convert(value) if convert is not None and value is not None else value
        instance = orm.detached(self.model, values)
        data[self.cache_key] = instance
        return instance


_SERIALIZERS: dict[type[Model], Serializer] = {}


def serializer(model: type[Model]) -> Serializer:
    found = _SERIALIZERS.get(model)
    if found is None:
        found = _SERIALIZERS[model] = Serializer(model)
    return found


def dump(instance: Model) -> dict[str, Any]:
    """The snapshot of `instance` (camelCase keys, JSON values)."""
    return serializer(type(instance)).dump(instance)


def load(model: type[M], data: dict[str, Any] | None) -> M | None:
    """The read-only `model` an event or entry carried, or None."""
    if data is None:
        return None
    return serializer(model).load(data)  # type: ignore[return-value]
