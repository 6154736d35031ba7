"""Custom task properties, checked against the project's CustomFieldDefinitions."""

from __future__ import annotations

import math
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from tortoise.exceptions import IntegrityError

from models import (
    AuditAction,
    BoardEventType,
    CustomFieldDefinition,
    CustomFieldType,
    OrganizationMember,
    Project,
    Task,
    orm,
)
from models.snapshot import dump
from resolvers import validation
from resolvers.access import Permission
from resolvers.errors import BadInput, Conflict
from resolvers.ids import to_global_id
from resolvers.project.projects import require as require_project
from resolvers.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from resolvers.context import Context

MAX_TEXT = 2_000
# NUMBER values: any finite float64, and integers whose magnitude is at most 2**53, so that
# every client reading the JSON (JavaScript's Number included) gets exactly what was stored.
# Beyond that the value cannot be stored as it was sent (the JSON encoder refuses integers
# past 64 bits) or would come back as another number.
MAX_EXACT_INT = 2**53
NUMBER_RANGE = f"Expected a finite number; integers between -{MAX_EXACT_INT} and {MAX_EXACT_INT}"


async def definitions(project_id: int) -> dict[str, CustomFieldDefinition]:
    return {d.key: d for d in await CustomFieldDefinition.filter(project_id=project_id)}


async def validate(
    project: Project,
    values: object,
    *,
    existing: dict[str, Any] | None = None,
    field: str = "customProperties",
) -> dict[str, Any]:
    """Return the merged, normalised properties or raise BAD_USER_INPUT.

    `values` maps field keys to values; a null value removes the property. Unknown keys,
    wrong types and missing required fields are rejected.
    """
    if not isinstance(values, dict):
        raise BadInput("Custom properties must be an object of key → value", field=field)
    defs = await definitions(project.id)
    result = dict(existing or {})
    user_ids: set[int] = set()
    for key, value in values.items():
        definition = defs.get(key)
        if definition is None:
            raise BadInput(f"Unknown custom field `{key}`", field=f"{field}.{key}")
        if value is None:
            result.pop(key, None)
            continue
        result[key] = _check(definition, value, f"{field}.{key}", user_ids)
    for key, definition in defs.items():
        if definition.required and key not in result:
            raise BadInput(f"Custom field `{key}` is required", field=f"{field}.{key}")
    if user_ids:
        members: set[int] = set(
            await orm.column_values(
                OrganizationMember.filter(organization_id=project.organization_id, user_id__in=user_ids),
                "user_id",
            )
        )
        if missing := user_ids - members:
            raise BadInput(
                "User custom fields must name members of the organization",
                field=field,
                userIds=[to_global_id("User", pk) for pk in sorted(missing)],
            )
    return result


# `value` is the client's JSON, checked here; the result is the JSON value stored.
def _check(definition: CustomFieldDefinition, value: Any, path: str, user_ids: set[int]) -> Any:
    kind = definition.type
    if kind == CustomFieldType.TEXT:
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise BadInput(f"Expected text of at most {MAX_TEXT} characters", field=path)
        return value
    if kind == CustomFieldType.NUMBER:
        if not _storable_number(value):
            raise BadInput(NUMBER_RANGE, field=path)
        return value
    if kind == CustomFieldType.DATE:
        try:
            return date.fromisoformat(value).isoformat()
        except (TypeError, ValueError):
            raise BadInput("Expected a date as YYYY-MM-DD", field=path) from None
    if kind == CustomFieldType.URL:
        parsed = urlparse(value) if isinstance(value, str) else None
        if (
            not parsed
            or parsed.scheme not in ("http", "https")
            or not parsed.netloc
            or len(value) > 2048
        ):
            raise BadInput("Expected an http(s) URL", field=path)
        return value
    if kind == CustomFieldType.CHECKBOX:
        if not isinstance(value, bool):
            raise BadInput("Expected true or false", field=path)
        return value
    if kind == CustomFieldType.SELECT:
        if value not in definition.options:
            raise BadInput(f"Expected one of {definition.options}", field=path)
        return value
    if kind == CustomFieldType.MULTI_SELECT:
        if not isinstance(value, list) or any(v not in definition.options for v in value):
            raise BadInput(f"Expected a list of values from {definition.options}", field=path)
        return list(dict.fromkeys(value))
    if kind == CustomFieldType.USER:
        from resolvers.ids import decode_id

        if not isinstance(value, str):
            raise BadInput("Expected a User ID", field=path)
        user_ids.add(decode_id(value, "User", path))
        return value
    raise BadInput("Unsupported custom field type", field=path)  # pragma: no cover


def _storable_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) <= MAX_EXACT_INT
    return isinstance(value, float) and math.isfinite(value)


# -- defining fields ---------------------------------------------------------------------------

FIELD_NAME_MAX = 100
OPTION_MAX = 100
MAX_OPTIONS = 100
_CHOICE_TYPES = (CustomFieldType.SELECT, CustomFieldType.MULTI_SELECT)


def _options(kind: CustomFieldType, options: list[str] | None) -> list[str]:
    if kind not in _CHOICE_TYPES:
        if options:
            raise BadInput("Only SELECT and MULTI_SELECT fields take options", field="options")
        return []
    if not options:
        raise BadInput("SELECT and MULTI_SELECT fields need at least one option", field="options")
    if len(options) > MAX_OPTIONS:
        raise BadInput(f"At most {MAX_OPTIONS} options", field="options")
    cleaned = [validation.text(o, "options", max_len=OPTION_MAX) for o in options]
    if len(set(cleaned)) != len(cleaned):
        raise BadInput("Options must be unique", field="options")
    return cleaned


def _taken(key: str) -> Conflict:
    return Conflict(f"This project already has a custom field with key {key!r}", field="key")


async def define_field(
    ctx: Context,
    project_id: int,
    *,
    key: str,
    name: str,
    type: CustomFieldType,
    options: list[str] | None = None,
    required: bool = False,
) -> CustomFieldDefinition:
    project = await require_project(ctx, project_id, Permission.MANAGE_PROJECT)
    if project.archived_at is not None:
        raise BadInput("The project is archived", field="projectId")
    key = validation.field_key(key)
    name = validation.text(name, "name", max_len=FIELD_NAME_MAX)
    options = _options(type, options)
    # Every task must hold a required field; a brand-new field is held by none, so it can
    # only start out required while the project has no tasks yet (archived ones included).
    if required and await Task.exists(project_id=project.id):
        raise BadInput("A field can only be required in a project without tasks", field="required")
    if await CustomFieldDefinition.exists(project_id=project.id, key=key):
        raise _taken(key)
    try:
        async with unit_of_work(ctx) as work:
            definition = await CustomFieldDefinition.create(
                project_id=project.id,
                key=key,
                name=name,
                type=type,
                options=options,
                required=required,
            )
            after = dump(definition)
            await work.audit(
                AuditAction.CUSTOM_FIELD_CREATE, definition.id,
                organization_id=project.organization_id,
                after=after,
            )
            await work.event(
                project.id, BoardEventType.CUSTOM_FIELD_DEFINED, {"fieldId": definition.id, "field": after}
            )
    except IntegrityError:  # a concurrent definition of the same key won
        raise _taken(key) from None
    return definition
