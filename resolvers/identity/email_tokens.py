"""Single-use tokens sent by email (models/email.py EmailToken): verification and reset links.

A token is 256 random bits in URL-safe base64; only its SHA-256 is stored. Issuing one for a
purpose deletes the user's earlier unused ones of that purpose, so only the newest link works.
Redeeming is a conditional UPDATE (`used_at IS NULL`) inside the caller's unit of work: of two
concurrent redemptions exactly one wins, and a rolled-back write leaves the token unused.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from models import EmailToken, EmailTokenPurpose, User
from resolvers.errors import BadInput
from resolvers.identity.auth import hash_secret

TOKEN_MAX = 200
# Expired tokens are kept this long past their expiry (a late click says "expired", not
# "invalid"), then deleted by the outbox worker's housekeeping.
KEEP_EXPIRED = timedelta(days=7)


def _human(ttl: timedelta) -> str:
    minutes = int(ttl.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} minutes"
    hours = minutes // 60
    return f"{hours} hours" if hours < 48 else f"{hours // 24} days"


async def issue(user: User, purpose: EmailTokenPurpose, ttl: timedelta) -> tuple[str, str]:
    """A new token for `user`'s current address: (plaintext for the link, "expires in" text).
    Two statements whatever the user has: delete the earlier unused ones, insert this one."""
    token = secrets.token_urlsafe(32)
    await discard(user.id, purpose)
    await EmailToken.create(
        user_id=user.id, purpose=purpose, token_hash=hash_secret(token), email=user.email,
        expires_at=datetime.now(UTC) + ttl,
    )
    return token, _human(ttl)


def _invalid() -> BadInput:
    return BadInput("This link is invalid or has already been used", field="token", reason="TOKEN_INVALID")


async def find(token: str, purpose: EmailTokenPurpose) -> tuple[EmailToken, User]:
    """The unused, unexpired token and its user, or BAD_USER_INPUT (`reason`: TOKEN_INVALID
    or TOKEN_EXPIRED). An unknown, used, other-purpose or stale (the address changed since)
    token are all TOKEN_INVALID alike. Read outside the write, so no slow work (a password
    hash) is spent on a bad token."""
    if not isinstance(token, str) or not 0 < len(token) <= TOKEN_MAX:
        raise _invalid()
    row = await EmailToken.get_or_none(token_hash=hash_secret(token), purpose=purpose).select_related("user")
    if row is None or row.used_at is not None or not row.user.is_active or row.user.email != row.email:
        raise _invalid()
    if row.expires_at <= datetime.now(UTC):
        raise BadInput("This link has expired; ask for a new one", field="token", reason="TOKEN_EXPIRED")
    return row, row.user


async def redeem(row: EmailToken) -> None:
    """Mark the token used; inside the unit of work. TOKEN_INVALID if another request did
    first (the write then rolls back)."""
    now = datetime.now(UTC)
    taken = await EmailToken.filter(id=row.id, used_at__isnull=True, expires_at__gt=now).update(used_at=now)
    if not taken:
        raise _invalid()


async def discard(user_id: int, purpose: EmailTokenPurpose) -> int:
    """Delete the user's unused tokens of `purpose` (after one of them was used)."""
    return await EmailToken.filter(user_id=user_id, purpose=purpose, used_at__isnull=True).delete()


async def prune() -> int:
    return await EmailToken.filter(expires_at__lt=datetime.now(UTC) - KEEP_EXPIRED).delete()
