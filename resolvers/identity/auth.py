"""Credentials: password hashes, signed access tokens, API keys."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from models import ApiKey, User
from resolvers import lookups
from resolvers.errors import Unauthenticated
from resolvers.identity import key_usage
from resolvers.ids import parse_pk

if TYPE_CHECKING:
    from resolvers.identity.revocations import SessionRegistry

API_KEY_PREFIX = "pcg_"
_hasher = PasswordHasher()
# Verified against when the email is unknown, so both paths cost the same.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


# argon2 takes ~170 ms of CPU and 64 MiB per call (it releases the GIL): run on the event loop,
# 16 concurrent logins stalled every other client for seconds. Its own few threads also bound
# the memory a burst of logins can take.
_HASH_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="argon2")


def hash_password(password: str) -> str:
    """Blocking; for the CLI, the demo seed and tests. Requests use `hash_password_async`."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Blocking; requests use `verify_password_async`."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def hash_password_async(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_HASH_POOL, hash_password, password)


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(
        _HASH_POOL, verify_password, password_hash, password
    )


def issue_access_token(
    user: User, secret: str, ttl_seconds: int, session_id: int, *, not_after: datetime | None = None
) -> tuple[str, datetime]:
    """A signed access token of `session_id` (its `sid` claim), valid `ttl_seconds` and never
    past `not_after` (the session's own end)."""
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=ttl_seconds)
    if not_after is not None and not_after < expires:
        expires = not_after
    exp = int(expires.timestamp())
    claims = {
        "sub": str(user.id),
        "sid": str(session_id),
        "iat": int(now.timestamp()),
        "exp": exp,
        "jti": uuid.uuid4().hex,
        "typ": "access",
    }
    # `exp` is whole seconds: report what the token says.
    return jwt.encode(claims, secret, algorithm="HS256"), datetime.fromtimestamp(exp, UTC)


def new_api_key() -> tuple[str, str, str]:
    """Return (plaintext key shown once, display prefix, stored hash)."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[:12], hash_secret(key)


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    user: User
    api_key: ApiKey | None = None
    token_expires_at: datetime | None = None
    # The session an access token belongs to (None for an API key).
    session_id: int | None = None


async def authenticate(
    authorization: str | None, secret: str, sessions: SessionRegistry | None
) -> Principal | None:
    """Resolve an Authorization header value to a principal.

    None means anonymous; a credential that is present but bad raises UNAUTHENTICATED,
    so a client with an expired token learns it instead of silently seeing nothing.
    `sessions` is the process's set of ended sessions (None only where no token can come:
    the CLI).
    """
    if not authorization:
        return None
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise Unauthenticated("Authorization must be 'Bearer <token or API key>'")
    if credential.startswith(API_KEY_PREFIX):
        return await _api_key_principal(credential)
    return await _token_principal(credential, secret, sessions)


@dataclass(frozen=True, slots=True)
class _AccessClaims:
    user_id: int
    session_id: int
    expires: int  # the token's `exp`, seconds since the epoch


class _VerifiedTokens:
    """Access tokens whose signature and claims were checked, by (secret, token).

    A client presents the same token for up to 15 minutes, and verifying it again (pyjwt:
    base64, JSON, HMAC, claim checks) was a tenth of a small request's CPU. Only a token that
    passed every check is kept, so a forged or malformed one costs the full verification
    each time; what can change after verification is checked on every use: expiry here,
    the session's end and the user's row in `_token_principal`. Bounded: the oldest entries
    go first."""

    def __init__(self, size: int = 8192) -> None:
        self.size = size
        self._entries: dict[tuple[str, str], _AccessClaims] = {}

    def get(self, secret: str, token: str) -> _AccessClaims | None:
        return self._entries.get((secret, token))

    def put(self, secret: str, token: str, claims: _AccessClaims) -> None:
        if len(self._entries) >= self.size:
            del self._entries[next(iter(self._entries))]
        self._entries[(secret, token)] = claims

    def clear(self) -> None:
        self._entries.clear()


verified_tokens = _VerifiedTokens()


def _verify(token: str, secret: str) -> _AccessClaims:
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["exp", "sub", "iat"]}
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("Access token expired", reason="TOKEN_EXPIRED") from None
    except jwt.InvalidTokenError:
        raise Unauthenticated("Invalid access token", reason="TOKEN_INVALID") from None
    # Signed by us, yet checked like any input: a `sub` no user id can have never reaches
    # the database (PostgreSQL refuses an int4 beyond 2**31 with an error, not "no row").
    user_id = parse_pk("User", claims["sub"])
    if claims.get("typ") != "access" or user_id is None:
        raise Unauthenticated("Invalid access token", reason="TOKEN_INVALID")
    if "sid" not in claims:
        # Issued before sessions existed: such a token could not be ended by logOutEverywhere
        # or an organization owner, so it is not honoured (README "Sessions").
        raise Unauthenticated(
            "This access token belongs to no session (issued before sessions existed): log in again",
            reason="TOKEN_INVALID",
        )
    session_id = parse_pk("Session", claims["sid"])
    if session_id is None:
        raise Unauthenticated("Invalid access token", reason="TOKEN_INVALID")
    # pyjwt accepts any int()-able `exp`; kept as the number it compared.
    return _AccessClaims(user_id, session_id, int(claims["exp"]))


async def _token_principal(token: str, secret: str, sessions: SessionRegistry | None) -> Principal:
    claims = verified_tokens.get(secret, token)
    if claims is None:
        claims = _verify(token, secret)
        verified_tokens.put(secret, token, claims)
    elif claims.expires <= time.time():  # pyjwt's own test, without leeway
        raise Unauthenticated("Access token expired", reason="TOKEN_EXPIRED")
    # Before any statement: an ended session's token costs nothing to refuse.
    if sessions is not None and sessions.is_revoked(claims.session_id):
        raise Unauthenticated("This session has ended: log in again", reason="SESSION_REVOKED")
    user = await lookups.one(User, id=claims.user_id, is_active=True)
    if user is None:
        raise Unauthenticated("Invalid access token", reason="TOKEN_INVALID")
    return Principal(
        user=user, token_expires_at=datetime.fromtimestamp(claims.expires, UTC),
        session_id=claims.session_id,
    )


async def _api_key_principal(key: str) -> Principal:
    api_key = await lookups.one(ApiKey, related="created_by", key_hash=hash_secret(key))
    now = datetime.now(UTC)
    if (
        api_key is None
        or api_key.revoked_at is not None
        or (api_key.expires_at is not None and api_key.expires_at <= now)
        or not api_key.created_by.is_active
    ):
        raise Unauthenticated("Invalid or revoked API key", reason="API_KEY_INVALID")
    await key_usage.record_use(api_key)
    return Principal(user=api_key.created_by, api_key=api_key)
