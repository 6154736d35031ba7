"""Input rules shared by every mutation. Each failure is a BAD_USER_INPUT naming its field."""

from __future__ import annotations

import re

from resolvers.email.transport import mailbox_ok
from resolvers.errors import BadInput

TITLE_MAX = 500
DESCRIPTION_MAX = 50_000
COMMENT_MAX = 10_000
NAME_MAX = 200

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def text(value: str, field: str, *, max_len: int, required: bool = True) -> str:
    if not isinstance(value, str):
        raise BadInput(f"`{field}` must be a string", field=field)
    if "\x00" in value:
        raise BadInput(f"`{field}` must not contain NUL characters", field=field)
    stripped = value.strip()
    if required and not stripped:
        raise BadInput(f"`{field}` must not be empty", field=field)
    if len(value) > max_len:
        raise BadInput(f"`{field}` is longer than {max_len} characters", field=field, max=max_len)
    return stripped if required else value


def email(value: str, field: str = "email") -> str:
    value = text(value, field, max_len=254).lower()
    # One plain mailbox, as the outbox can mail it: no quotes, brackets, commas or spaces
    # that could name a second recipient or break a header (non-ASCII letters are fine).
    if not _EMAIL.match(value) or not mailbox_ok(value):
        raise BadInput("Not a valid email address", field=field)
    return value


def password(value: str, field: str = "password") -> str:
    if not isinstance(value, str) or len(value) < 8:
        raise BadInput("Password must be at least 8 characters", field=field)
    if len(value) > 1024:
        raise BadInput("Password is longer than 1024 characters", field=field)
    return value


def slug(value: str, field: str = "slug") -> str:
    if not isinstance(value, str) or not _SLUG.match(value):
        raise BadInput(
            "Slug must be 1-64 lowercase letters, digits or dashes, not starting or ending "
            "with a dash",
            field=field,
        )
    return value


def color(value: str, field: str = "color") -> str:
    if not isinstance(value, str) or not _COLOR.match(value):
        raise BadInput("Color must be a hex color like #1f6feb", field=field)
    return value.lower()


def field_key(value: str, field: str = "key") -> str:
    if not isinstance(value, str) or not _KEY.match(value):
        raise BadInput(
            "Key must start with a lowercase letter and hold only a-z, 0-9 and _ (max 64)",
            field=field,
        )
    return value
