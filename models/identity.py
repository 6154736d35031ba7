from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, ClassVar

from tortoise import fields
from tortoise.models import Model

from models.org import OrgRole

if TYPE_CHECKING:
    from models.org import Organization


class User(Model):
    # What audit entries and events show of it (models/snapshot.py); never a secret.
    snapshot_fields: ClassVar[tuple[str, ...]] = ("id", "email", "name")
    id = fields.IntField(primary_key=True)
    email = fields.CharField(max_length=254, unique=True)
    name = fields.CharField(max_length=200)
    password_hash = fields.CharField(max_length=255)
    is_active = fields.BooleanField(default=True)
    # When the owner of `email` proved it (a verification link, or a password reset by email);
    # null: unverified (models/email.py EmailToken, resolvers/identity/verification.py).
    email_verified_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "users"


class ApiKeyScope(str, Enum):
    """What a key may do within its role: READ keys run queries and subscriptions only."""

    READ = "read"
    WRITE = "write"


class ApiKey(Model):
    """An organization-scoped key. It acts as its creator, capped at `role`.

    Only a SHA-256 of the secret is stored: keys are 256-bit random, so a slow KDF would
    buy nothing and cost every request.
    """

    # What audit entries and events show of it (models/snapshot.py); never a secret.
    snapshot_fields: ClassVar[tuple[str, ...]] = ("id", "organization_id", "name", "prefix", "role", "scope", "created_by_id", "expires_at", "revoked_at")
    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="api_keys"
    )
    organization_id: int
    created_by: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="api_keys"
    )
    created_by_id: int
    name = fields.CharField(max_length=100)
    prefix = fields.CharField(max_length=16)
    key_hash = fields.CharField(max_length=64, unique=True)
    role = fields.CharEnumField(OrgRole, max_length=16)
    # Keys made before scopes existed could write: they stay WRITE.
    scope = fields.CharEnumField(ApiKeyScope, max_length=8, default=ApiKeyScope.WRITE)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)
    expires_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_key"


class SessionEndReason(str, Enum):
    """Why a session ended before its time (`Session.revoke_reason`)."""

    LOG_OUT = "log_out"  # logOut, from the session itself
    REVOKED = "revoked"  # revokeSession, by its user from any of their sessions
    LOG_OUT_EVERYWHERE = "log_out_everywhere"  # logOutEverywhere
    ENDED_BY_ORGANIZATION = "ended_by_organization"  # endMemberSessions, by an org owner
    REFRESH_TOKEN_REUSE = "refresh_token_reuse"  # a rotated refresh token came back: theft
    PASSWORD_RESET = "password_reset"  # the password was reset (every session ends)


class Session(Model):
    """A login: what its refresh tokens rotate within and its access tokens name (`sid`).

    It ends when revoked (`revoked_at`), when no refresh came for the idle timeout, or at
    `expires_at` (its absolute lifetime); the strictest policy among the user's enterprise
    organizations applies at each refresh (resolvers/identity/sessions.py).
    """

    snapshot_fields: ClassVar[tuple[str, ...]] = ("id", "user_id", "user_agent", "ip", "created_at", "expires_at", "revoked_at", "revoke_reason")
    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="sessions"
    )
    user_id: int
    # As the client sent them at login (User-Agent cut to 512 characters).
    user_agent = fields.CharField(max_length=512, null=True)
    ip = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    # The login or the last refresh: what the idle timeout counts from.
    last_used_at = fields.DatetimeField()
    # Its ends as the policy set them at the login or the last refresh (a refresh checks the
    # policy again, and a session never outlives what it was last given).
    idle_expires_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    # When the last access token issued for it expires: a revoked session must be refused
    # by every instance until then, and not a moment longer (resolvers/identity/revocations.py).
    tokens_expire_at = fields.DatetimeField(db_index=True)
    revoked_at = fields.DatetimeField(null=True)
    revoke_reason = fields.CharEnumField(SessionEndReason, max_length=32, null=True)

    class Meta:
        table = "session"
        # The viewer's sessions, newest first (viewer.sessions; logOutEverywhere).
        indexes = (("user", "created_at", "id"),)


class RefreshToken(Model):
    """One link of a session's chain of rotating refresh tokens.

    Only a SHA-256 of the token is kept (it is 256-bit random: a slow hash would buy nothing).
    `used_at` is set when it is exchanged for
    its successor (`parent` links them); presenting a used token again is theft (or a benign
    race, within a few seconds: see resolvers/identity/sessions.py)."""

    # Tortoise 1.1 subclasses BigIntField from IntField without its value type: the
    # annotation gives it (else every read of the column is Any).
    id: fields.Field[int] = fields.BigIntField(primary_key=True)
    session: fields.ForeignKeyRelation[Session] = fields.ForeignKeyField(
        "models.Session", related_name="refresh_tokens"
    )
    session_id: int
    # The token it replaced (null for the login's). A plain column: Aerich cannot create a
    # table that references itself.
    parent_id: fields.Field[int | None] = fields.BigIntField(null=True, db_index=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "refresh_token"
