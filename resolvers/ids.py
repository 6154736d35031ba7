"""Opaque Relay global IDs: urlsafe base64 of "Type:pk".

An ID is well-formed only if its pk could be a row of its table: a positive integer within the
primary key column's range, written in ASCII digits without leading zeros (as `to_global_id`
writes them). Anything else is BAD_USER_INPUT "Malformed ID", never a query: PostgreSQL refuses
2**31 for an int4 column with an error (SQLite simply finds nothing), and a number that cannot
name a row says nothing about any row, so refusing it leaks nothing.
"""

from __future__ import annotations

import re
from functools import lru_cache

from models import (
    ApiKey,
    AuditEntry,
    Comment,
    CustomFieldDefinition,
    Invite,
    Label,
    NoraConversation,
    NoraMessage,
    Organization,
    OrganizationMember,
    Project,
    ProjectMember,
    Session,
    Task,
    User,
    orm,
)
from resolvers import codec
from resolvers.errors import BadInput

# Node type -> the model whose primary key its IDs carry.
_MODELS = {
    "User": User,
    "Organization": Organization,
    "OrganizationMember": OrganizationMember,
    "Invite": Invite,
    "Project": Project,
    "ProjectMember": ProjectMember,
    "Label": Label,
    "CustomFieldDefinition": CustomFieldDefinition,
    "Task": Task,
    "Comment": Comment,
    "ApiKey": ApiKey,
    "NoraConversation": NoraConversation,
    "NoraMessage": NoraMessage,
    "AuditEntry": AuditEntry,
    "Session": Session,
}
NODE_TYPES = frozenset(_MODELS)
# Serial keys start at 1; the upper bound is the column's (int4 for most, int8 for messages).
_PK_MAX = {name: orm.pk_max(model) for name, model in _MODELS.items()}
_CANONICAL = re.compile(r"[1-9][0-9]*")


def parse_pk(type_name: str, text: object) -> int | None:
    """`text` as a primary key of `type_name`'s table, or None if no row can have it."""
    maximum = _PK_MAX.get(type_name)
    if maximum is None or not isinstance(text, str) or len(text) > 19:
        return None
    if not _CANONICAL.fullmatch(text):
        return None
    value = int(text)
    return value if value <= maximum else None


@lru_cache(maxsize=65_536)
def to_global_id(type_name: str, pk: int) -> str:
    # Cached: a response names the same rows again and again (a board's labels and people),
    # and a row's ID never changes. 65,536 short strings are a few megabytes at most.
    return codec.encode(f"{type_name}:{pk}")


def parse_global_id(gid: str) -> tuple[str, int]:
    """Return (type, pk) or raise BAD_USER_INPUT for anything that is not one of our IDs."""
    if not isinstance(gid, str) or not 0 < len(gid) <= 100:
        raise BadInput("Malformed ID", id=str(gid)[:100])
    try:
        raw = codec.decode_text(gid)
    except ValueError:
        raise BadInput("Malformed ID", id=gid) from None
    type_name, sep, digits = raw.partition(":")
    pk = parse_pk(type_name, digits) if sep else None
    if pk is None:
        raise BadInput("Malformed ID", id=gid)
    return type_name, pk


def decode_id(gid: str, expected: str, field: str = "id") -> int:
    type_name, pk = parse_global_id(gid)
    if type_name != expected:
        raise BadInput(f"Expected a {expected} ID", field=field, id=gid)
    return pk


def decode_optional(gid: str | None, expected: str, field: str) -> int | None:
    return None if gid is None else decode_id(gid, expected, field)
