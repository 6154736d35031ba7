"""Custom task properties, checked against the project's CustomFieldDefinitions."""

from __future__ import annotations

import math
from datetime import date
from urllib.parse import urlparse

from models import CustomFieldDefinition, CustomFieldType, OrganizationMember, Project
from resolvers.errors import BadInput

MAX_TEXT = 2_000


async def definitions(project_id: int) -> dict[str, CustomFieldDefinition]:
    return {d.key: d for d in await CustomFieldDefinition.filter(project_id=project_id)}


async def validate(
    project: Project, values: dict, *, existing: dict | None = None, field: str = "customProperties"
) -> dict:
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
        members = set(
            await OrganizationMember.filter(
                organization_id=project.organization_id, user_id__in=user_ids
            ).values_list("user_id", flat=True)
        )
        if missing := user_ids - members:
            raise BadInput(
                "User custom fields must name members of the organization",
                field=field,
                userIds=sorted(missing),
            )
    return result


def _check(definition: CustomFieldDefinition, value, path: str, user_ids: set[int]):
    kind = definition.type
    if kind == CustomFieldType.TEXT:
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise BadInput(f"Expected text of at most {MAX_TEXT} characters", field=path)
        return value
    if kind == CustomFieldType.NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadInput("Expected a number", field=path)
        return value
    if kind == CustomFieldType.DATE:
        try:
            return date.fromisoformat(value).isoformat()
        except (TypeError, ValueError):
            raise BadInput("Expected a date as YYYY-MM-DD", field=path) from None
    if kind == CustomFieldType.URL:
        parsed = urlparse(value) if isinstance(value, str) else None
        if not parsed or parsed.scheme not in ("http", "https") or not parsed.netloc or len(value) > 2048:
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
