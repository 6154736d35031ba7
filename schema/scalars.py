"""Strawberry's date and time scalars with the `@specifiedBy` URL of the format they use, so
code generators map them to a date type instead of `unknown` (JSON already carries ECMA-404's)."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime

from strawberry.schema.types.base_scalars import DateDefinition, DateTimeDefinition

DateTime = dataclasses.replace(
    DateTimeDefinition,
    description="A date and time, RFC 3339 (e.g. 2026-12-01T09:30:00+00:00). Answers are in "
    "UTC with their offset; send an offset too.",
    specified_by_url="https://datatracker.ietf.org/doc/html/rfc3339#section-5.6",
)
Date = dataclasses.replace(
    DateDefinition,
    description="A calendar day, RFC 3339 full-date / ISO 8601 (e.g. 2026-12-01).",
    specified_by_url="https://datatracker.ietf.org/doc/html/rfc3339#section-5.6",
)

SCALAR_OVERRIDES = {datetime: DateTime, date: Date}
