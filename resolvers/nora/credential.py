"""Whether the credential that asked for a reply still holds. A reply acts as its asker
(resolvers/nora/tools.py) long after the request that started it, so it must stop when that
session ends or that API key is revoked, as the asker's requests and websockets do.

- A session: the process's set of ended sessions (resolvers/identity/revocations.py), the
  check every request makes, so no statement; and `SessionRegistry.on_end` stops a running
  reply on the very signal that closes the session's websockets, on every instance.
- An API key: no such set exists (each request of a key reads its row anyway). Its
  revocation nudges its creator's access channel, which the generation listens to, and the
  key's row is read again right before each tool call: one statement, as each request pays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from resolvers.event.streams import credential_still_valid

if TYPE_CHECKING:
    from resolvers.context import Context

SESSION_ENDED = "session_ended"
KEY_REVOKED = "key_revoked"

# A generation's stop reason -> the code and text its reply ends FAILED with.
ENDINGS: dict[str, tuple[str, str]] = {
    SESSION_ENDED: ("SESSION_ENDED", "The session that asked this ended; NORA stopped"),
    KEY_REVOKED: ("API_KEY_REVOKED", "The API key that asked this was revoked or expired; NORA stopped"),
}


def ended(ctx: Context) -> str | None:
    """SESSION_ENDED if the reply's session has ended (in-process, no statement), else None."""
    principal = ctx.access.principal
    registry = ctx.session_registry
    if principal is None or principal.session_id is None or registry is None:
        return None
    return SESSION_ENDED if registry.is_revoked(principal.session_id) else None


def on_end(ctx: Context, callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` when the reply's session ends; returns what forgets it."""
    principal = ctx.access.principal
    registry = ctx.session_registry
    if principal is None or principal.session_id is None or registry is None:
        return lambda: None
    return registry.on_end(principal.session_id, callback)


async def key_still_valid(ctx: Context) -> bool:
    """For a reply asked with an API key, whether the key is still neither revoked nor
    expired (one statement); True for any other credential (no statement)."""
    if ctx.access.api_key is None:
        return True
    return await credential_still_valid(ctx.access)
