"""Sessions: what a login opens, what its refresh tokens rotate within, and how it ends.

- `logIn` opens a session and hands out a short access token naming it (`sid`)
  and an opaque refresh token (`pcgr_...`, 256 random bits; only its SHA-256 is stored).
- `refreshToken` exchanges the refresh token for a new pair: the old token is marked used and
  its successor stored, one conditional UPDATE deciding which of concurrent callers rotates.
- A used token presented again ends the whole session (theft: someone holds a copy), except
  within REUSE_GRACE seconds of its exchange while its successor is still unused: then it is a
  retry (a lost response) or a second tab racing the first, and it is answered with the very
  successor the first exchange produced. Successors are derived from their parent with the
  server's key (HMAC), so the answer can be repeated without storing any token; no second
  chain ever branches off.
- A session ends when revoked (logOut, revokeSession, logOutEverywhere, endMemberSessions,
  reuse), when no refresh came for the idle timeout, or at its absolute end; the strictest
  policy among the user's enterprise organizations and the server's settings applies.
  Ending one goes through `end_sessions`: after the commit its access tokens are refused and
  its websockets closed on every instance (resolvers/identity/revocations.py).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from models import AuditAction, Organization, Plan, RefreshToken, Session, SessionEndReason, User
from models.snapshot import dump
from resolvers.errors import Unauthenticated
from resolvers.identity.auth import hash_secret, issue_access_token
from resolvers.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from resolvers.context import Context
    from resolvers.unit_of_work import UnitOfWork

log = logging.getLogger("pcg.sessions")

REFRESH_PREFIX = "pcgr_"
# A refresh token is the prefix and 43 characters; anything much longer is no token of ours
# and is refused before it is hashed or looked up.
REFRESH_MAX = 128
REUSE_GRACE = timedelta(seconds=10)


@dataclass(frozen=True)
class Policy:
    """Seconds: how long a session lives without a refresh, and at most from its login."""

    idle_timeout: int
    max_age: int


@dataclass(frozen=True)
class Issued:
    """What logIn and refreshToken hand out."""

    user: User
    session: Session
    access_token: str
    expires_at: datetime
    refresh_token: str


def _invalid() -> Unauthenticated:
    return Unauthenticated("Invalid refresh token", reason="TOKEN_INVALID")


def _ended() -> Unauthenticated:
    return Unauthenticated("This session has ended: log in again", reason="SESSION_REVOKED")


def _expired(why: str) -> Unauthenticated:
    return Unauthenticated(f"This session has expired ({why}): log in again", reason="SESSION_EXPIRED")


# -- policy -----------------------------------------------------------------------------------


async def policy_for(ctx: Context, user_id: int) -> Policy:
    """The server's settings, tightened by each enterprise organization the user belongs to
    (one statement). An organization's override counts only while it is on enterprise."""
    rows = await Organization.filter(
        members__user_id=user_id, plan=Plan.ENTERPRISE
    ).values_list("session_idle_timeout", "session_max_age")
    settings = ctx.settings
    idle = [settings.session_idle_timeout, *(r[0] for r in rows if r[0] is not None)]
    age = [settings.session_max_age, *(r[1] for r in rows if r[1] is not None)]
    return Policy(idle_timeout=min(idle), max_age=min(age))


def server_policy(ctx: Context) -> Policy:
    return Policy(ctx.settings.session_idle_timeout, ctx.settings.session_max_age)


def ends_at(session: Session, policy: Policy) -> datetime:
    """The session's absolute end: what it was last given, shortened by a tightened policy."""
    return min(session.expires_at, session.created_at + timedelta(seconds=policy.max_age))


def idle_ends_at(session: Session, policy: Policy) -> datetime:
    return min(session.idle_expires_at, session.last_used_at + timedelta(seconds=policy.idle_timeout))


def _token_deadline(ctx: Context, now: datetime, policy: Policy, session_end: datetime) -> datetime:
    """When an access token issued now expires: its lifetime, cut at the session's absolute
    end and at its idle end, in whole seconds (what the token's `exp` says)."""
    deadline = min(
        now + timedelta(seconds=ctx.settings.access_token_ttl),
        session_end,
        now + timedelta(seconds=policy.idle_timeout),
    )
    return datetime.fromtimestamp(int(deadline.timestamp()), UTC)


# -- tokens -----------------------------------------------------------------------------------


def _new_refresh_token() -> str:
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


def _successor(ctx: Context, token: str) -> str:
    """The token that replaces `token`: derived with the server's key, so a retry within the
    grace window gets the same one without it ever being stored."""
    digest = hmac.new(ctx.settings.secret_key.encode(), b"refresh:" + token.encode(), hashlib.sha256)
    return REFRESH_PREFIX + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def _access(ctx: Context, user: User, session: Session, deadline: datetime) -> tuple[str, datetime]:
    return issue_access_token(
        user, ctx.settings.secret_key, ctx.settings.access_token_ttl, session.id, not_after=deadline
    )


def _user_agent(ctx: Context) -> str | None:
    # The request's (or the websocket handshake's), as the server read it into the context:
    # printable characters only (PostgreSQL refuses NUL), cut to the column
    # (resolvers/context.py user_agent_of, which the audit entries use too).
    return ctx.user_agent


# -- opening ----------------------------------------------------------------------------------


async def open_session(work: UnitOfWork, ctx: Context, user: User, policy: Policy) -> Issued:
    """A new session of `user` with its first refresh token, inside the caller's unit of
    work (which audits it)."""
    now = datetime.now(UTC)
    expires_at = now + timedelta(seconds=policy.max_age)
    deadline = _token_deadline(ctx, now, policy, expires_at)
    session = await Session.create(
        user_id=user.id, user_agent=_user_agent(ctx), ip=ctx.ip, created_at=now, last_used_at=now,
        idle_expires_at=now + timedelta(seconds=policy.idle_timeout), expires_at=expires_at,
        tokens_expire_at=deadline,
    )
    refresh_token = _new_refresh_token()
    await RefreshToken.create(session_id=session.id, token_hash=hash_secret(refresh_token))
    token, expires = _access(ctx, user, session, deadline)
    return Issued(user, session, token, expires, refresh_token)


async def issue_outside_request(
    user: User, secret: str, ttl_seconds: int, *, user_agent: str | None = None,
    max_age: int = 30 * 24 * 3600,
) -> Issued:
    """A session with its tokens, written directly: for `pcg seed --demo` (whose token must
    outlive the usual access-token lifetime), tests and benchmarks. Not audited."""
    now = datetime.now(UTC)
    expires_at = now + timedelta(seconds=max(max_age, ttl_seconds))
    deadline = datetime.fromtimestamp(int((now + timedelta(seconds=ttl_seconds)).timestamp()), UTC)
    session = await Session.create(
        user_id=user.id, user_agent=user_agent, created_at=now, last_used_at=now,
        idle_expires_at=expires_at,
        expires_at=expires_at, tokens_expire_at=max(deadline, now),
    )
    refresh_token = _new_refresh_token()
    await RefreshToken.create(session_id=session.id, token_hash=hash_secret(refresh_token))
    token, expires = issue_access_token(user, secret, ttl_seconds, session.id)
    return Issued(user, session, token, expires, refresh_token)


async def log_in(ctx: Context, user: User) -> Issued:
    """A session for a user whose password was just checked, audited as user.log_in."""
    policy = await policy_for(ctx, user.id)
    async with unit_of_work(ctx) as work:
        issued = await open_session(work, ctx, user, policy)
        await work.audit(
            AuditAction.USER_LOG_IN, issued.session.id, organization_id=None, actor_id=user.id,
            after=dump(issued.session),
        )
    return issued


async def audit_failed_log_in(ctx: Context, user: User | None) -> None:
    """user.log_in_failed, in the account's own log when the email is an account's. What was
    typed is never stored: not the password, and not an unknown email either (people type
    their password into the email field)."""
    async with unit_of_work(ctx) as work:
        await work.audit(
            AuditAction.USER_LOG_IN_FAILED, user.id if user else "", organization_id=None,
            actor_id=user.id if user else None,
            after={"reason": "wrong_password" if user else "unknown_email"},
        )


# -- refreshing -------------------------------------------------------------------------------


class _LostRace(Exception):
    """Another request exchanged the same token first (it committed meanwhile)."""


async def refresh(ctx: Context, presented: object) -> Issued:
    if (
        not isinstance(presented, str)
        or not presented.startswith(REFRESH_PREFIX)
        or len(presented) > REFRESH_MAX
    ):
        raise _invalid()
    row = await RefreshToken.get_or_none(token_hash=hash_secret(presented)).select_related(
        "session__user"
    )
    if row is None:
        raise _invalid()
    session, user = row.session, row.session.user
    if session.revoked_at is not None:
        raise _ended()
    if not user.is_active:
        raise _invalid()
    now = datetime.now(UTC)
    policy = await policy_for(ctx, user.id)
    if row.used_at is None:
        _check_alive(session, policy, now)
        try:
            return await _rotate(ctx, presented, row, session, user, policy, now)
        except _LostRace:
            row = await RefreshToken.get(id=row.id)
    return await _reused(ctx, presented, row, user, policy)


def _check_alive(session: Session, policy: Policy, now: datetime) -> None:
    if now >= ends_at(session, policy):
        raise _expired("its maximum lifetime is over")
    if now >= idle_ends_at(session, policy):
        raise _expired("unused for longer than the idle timeout")


async def _rotate(
    ctx: Context, presented: str, row: RefreshToken, session: Session, user: User,
    policy: Policy, now: datetime,
) -> Issued:
    successor = _successor(ctx, presented)
    end = ends_at(session, policy)
    idle_end = now + timedelta(seconds=policy.idle_timeout)
    deadline = _token_deadline(ctx, now, policy, end)
    async with unit_of_work(ctx) as work:
        # The one that rotates: on PostgreSQL a concurrent exchange of the same token waits
        # on this row and then finds it used.
        if not await RefreshToken.filter(id=row.id, used_at__isnull=True).update(used_at=now):
            raise _LostRace()
        # Still alive: a revocation that committed since the read wins (the UPDATE waits for
        # it on PostgreSQL, and then matches nothing).
        alive = await Session.filter(id=session.id, revoked_at__isnull=True).update(
            last_used_at=now, idle_expires_at=idle_end, expires_at=end, tokens_expire_at=deadline,
            ip=ctx.ip,
        )
        if not alive:
            raise _ended()
        await RefreshToken.create(
            session_id=session.id, parent_id=row.id, token_hash=hash_secret(successor)
        )
        session.last_used_at, session.idle_expires_at = now, idle_end
        session.expires_at, session.tokens_expire_at, session.ip = end, deadline, ctx.ip
        await work.audit(
            AuditAction.SESSION_REFRESH, session.id, organization_id=None, actor_id=user.id,
        )
    token, expires = _access(ctx, user, session, deadline)
    return Issued(user, session, token, expires, successor)


async def _reused(
    ctx: Context, presented: str, row: RefreshToken, user: User, policy: Policy
) -> Issued:
    """A token already exchanged: a retry within the grace window gets its successor again;
    anything else is a copy in someone else's hands, and the session ends."""
    now = datetime.now(UTC)
    successor = _successor(ctx, presented)
    child = await RefreshToken.get_or_none(parent_id=row.id)
    if (
        child is not None
        and child.used_at is None
        and child.token_hash == hash_secret(successor)
        and row.used_at is not None
        and now - row.used_at <= REUSE_GRACE
    ):
        session = await Session.get(id=row.session_id)
        if session.revoked_at is not None:
            raise _ended()
        _check_alive(session, policy, now)
        # Not past what the session's revocation entry would cover (tokens_expire_at).
        token, expires = _access(ctx, user, session, min(session.tokens_expire_at, ends_at(session, policy)))
        return Issued(user, session, token, expires, successor)
    async with unit_of_work(ctx) as work:
        ended = await end_sessions(
            work, Session.filter(id=row.session_id), SessionEndReason.REFRESH_TOKEN_REUSE
        )
        if ended:  # a concurrent reuse may have ended it already: audited once
            await work.audit(
                AuditAction.SESSION_REFRESH_TOKEN_REUSE, row.session_id, organization_id=None,
                actor_id=user.id,
                after={"tokenIssuedAt": row.created_at.isoformat(),
                       "tokenUsedAt": row.used_at.isoformat() if row.used_at else None},
            )
    raise Unauthenticated(
        "This refresh token was already used, so a copy of it may be in other hands: the "
        "session has been ended. Log in again.",
        reason="REFRESH_TOKEN_REUSED",
    )


# -- ending -------------------------------------------------------------------------------------


async def end_sessions(
    work: UnitOfWork, sessions: QuerySet[Session], reason: SessionEndReason
) -> list[Session]:
    """End the sessions of `sessions` (a queryset) that have not ended: marked revoked in the
    caller's transaction; after its commit, refused and disconnected everywhere."""
    now = datetime.now(UTC)
    # Locked, so that a refresh committing meanwhile is seen with the access token it issued
    # (tokens_expire_at), which the revocation must outlast.
    rows = list(await sessions.filter(revoked_at__isnull=True).select_for_update())
    if not rows:
        return []
    await Session.filter(id__in=[s.id for s in rows]).update(revoked_at=now, revoke_reason=reason)
    for session in rows:
        session.revoked_at, session.revoke_reason = now, reason
    work.sessions_ended([(s.id, s.tokens_expire_at.timestamp()) for s in rows])
    for user_id in {s.user_id for s in rows}:
        # Their streams without a socket of their own (graphql-sse, multipart) check again.
        work.access_changed_for(user_id)
    return rows


# -- pruning ------------------------------------------------------------------------------------

# A session that ended keeps its row this long (viewer.sessions(includeEnded: true)), and the
# hashes of its refresh tokens one day (a copy presented later is then merely unknown).
KEEP_ENDED_SESSIONS = timedelta(days=90)
KEEP_ENDED_TOKENS = timedelta(days=1)
PRUNE_BATCH = 1000
PRUNE_EVERY_SECONDS = 3600
PRUNE_FIRST_AFTER_SECONDS = 60


def _ended_before(cutoff: datetime) -> Q:
    return Q(revoked_at__lt=cutoff) | Q(expires_at__lt=cutoff) | Q(idle_expires_at__lt=cutoff)


async def prune(now: datetime | None = None) -> tuple[int, int]:
    """Delete refresh tokens of sessions that ended a day ago and sessions that ended 90 days
    ago (their tokens with them), in batches; returns (sessions, tokens) deleted."""
    now = now or datetime.now(UTC)
    tokens = sessions = 0
    while True:
        ids = await Session.filter(_ended_before(now - KEEP_ENDED_TOKENS)).filter(
            refresh_tokens__id__isnull=False
        ).distinct().limit(PRUNE_BATCH).values_list("id", flat=True)
        if not ids:
            break
        tokens += await RefreshToken.filter(session_id__in=list(ids)).delete()
    while True:
        ids = await Session.filter(_ended_before(now - KEEP_ENDED_SESSIONS)).limit(
            PRUNE_BATCH
        ).values_list("id", flat=True)
        if not ids:
            break
        await RefreshToken.filter(session_id__in=list(ids)).delete()
        sessions += await Session.filter(id__in=list(ids)).delete()
    return sessions, tokens


async def prune_forever() -> None:
    await asyncio.sleep(PRUNE_FIRST_AFTER_SECONDS)
    while True:
        try:
            sessions, tokens = await prune()
            if sessions or tokens:
                log.info("pruned %d ended sessions and %d refresh tokens", sessions, tokens)
        except Exception:  # noqa: BLE001 - try again next round
            log.warning("pruning sessions failed", exc_info=True)
        await asyncio.sleep(PRUNE_EVERY_SECONDS)
