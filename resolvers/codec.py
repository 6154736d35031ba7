"""The text of IDs and cursors: URL-safe base64 without padding.

One codec for global IDs (resolvers/ids.py), list cursors (resolvers/pagination.py) and event
cursors (resolvers/event/log.py). Each caller turns a decoding failure into its own error
message; here every failure is a ValueError (binascii.Error and UnicodeDecodeError are ones).
"""

from __future__ import annotations

import base64


def encode(raw: bytes | str) -> str:
    if isinstance(raw, str):
        raw = raw.encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(text: str) -> bytes:
    """Bytes of `text`, padded back; ValueError if it is not base64."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode_text(text: str) -> str:
    """UTF-8 text of `text`; ValueError if it is not base64 of UTF-8."""
    return decode(text).decode()
