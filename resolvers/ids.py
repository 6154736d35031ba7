"""Opaque Relay global IDs: urlsafe base64 of "Type:pk"."""

from __future__ import annotations

import base64
import binascii

from resolvers.errors import BadInput

NODE_TYPES = frozenset(
    {
        "User",
        "Organization",
        "OrganizationMember",
        "Invite",
        "Project",
        "ProjectMember",
        "Label",
        "CustomFieldDefinition",
        "Task",
        "Comment",
        "ApiKey",
        "NoraConversation",
        "NoraMessage",
    }
)


def to_global_id(type_name: str, pk: int) -> str:
    raw = f"{type_name}:{pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_global_id(gid: str) -> tuple[str, int]:
    """Return (type, pk) or raise BAD_USER_INPUT for anything that is not one of our IDs."""
    if not isinstance(gid, str) or not 0 < len(gid) <= 100:
        raise BadInput("Malformed ID", id=str(gid)[:100])
    try:
        raw = base64.urlsafe_b64decode(gid + "=" * (-len(gid) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadInput("Malformed ID", id=gid) from None
    type_name, sep, pk = raw.partition(":")
    if not sep or type_name not in NODE_TYPES or not pk.isdigit() or len(pk) > 18:
        raise BadInput("Malformed ID", id=gid)
    return type_name, int(pk)


def decode_id(gid: str, expected: str, field: str = "id") -> int:
    type_name, pk = parse_global_id(gid)
    if type_name != expected:
        raise BadInput(f"Expected a {expected} ID", field=field, id=gid)
    return pk


def decode_optional(gid: str | None, expected: str, field: str) -> int | None:
    return None if gid is None else decode_id(gid, expected, field)
