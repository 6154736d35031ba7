"""The signed-in person's own account: their sessions (list, end one, log out, log out
everywhere) and their security log (the account-level audit entries: logins, failed
logins, refreshes, logouts). A person's, never an API key's: a key gets FORBIDDEN."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tortoise.queryset import QuerySet

from models import AuditAction, AuditEntry, Session, SessionEndReason, User
from models.snapshot import dump
from resolvers.errors import Forbidden, NotFound
from resolvers.identity.sessions import end_sessions
from resolvers.pagination import Order, Page, paginate
from resolvers.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from resolvers.context import Context

NEWEST_FIRST = Order((("created_at", True),))


def person(ctx: Context) -> User:
    """The signed-in person (UNAUTHENTICATED without a credential, FORBIDDEN for a key)."""
    user = ctx.access.user
    if ctx.access.api_key is not None:
        raise Forbidden("Sessions and the security log are a person's: not with an API key")
    return user


def current_session_id(ctx: Context) -> int | None:
    principal = ctx.access.principal
    return principal.session_id if principal is not None else None


def _active(user_id: int, now: datetime) -> QuerySet[Session]:
    return Session.filter(
        user_id=user_id, revoked_at__isnull=True, expires_at__gt=now, idle_expires_at__gt=now
    )


async def sessions(
    ctx: Context,
    include_ended: bool,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Page[Session]:
    """The viewer's sessions, newest first: those still alive, or all of them."""
    user = person(ctx)
    qs = Session.filter(user_id=user.id) if include_ended else _active(user.id, datetime.now(UTC))
    return await paginate(qs, NEWEST_FIRST, first=first, after=after, last=last, before=before)


async def security_log(
    ctx: Context,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Page[AuditEntry]:
    """The account's own audit entries (no organization's), newest first."""
    user = person(ctx)
    qs = AuditEntry.filter(actor_id=user.id, organization_id__isnull=True)
    return await paginate(qs, NEWEST_FIRST, first=first, after=after, last=last, before=before)


async def revoke_session(ctx: Context, session_id: int) -> Session:
    """End one of the viewer's sessions (the current one included). Another person's session
    is NOT_FOUND, as a missing one; an ended one is returned as it is, writing nothing."""
    user = person(ctx)
    session = await Session.get_or_none(id=session_id, user_id=user.id)
    if session is None:
        raise NotFound("Session")
    if session.revoked_at is not None:
        return session
    reason = SessionEndReason.LOG_OUT if session.id == current_session_id(ctx) else SessionEndReason.REVOKED
    return await _end_one(ctx, session, reason, AuditAction.SESSION_REVOKE)


async def log_out(ctx: Context) -> Session:
    """End the session the caller's access token belongs to."""
    person(ctx)
    session = await Session.get(id=current_session_id(ctx))
    if session.revoked_at is not None:  # a concurrent logOut already ended it
        return session
    return await _end_one(ctx, session, SessionEndReason.LOG_OUT, AuditAction.USER_LOG_OUT)


async def _end_one(ctx: Context, session: Session, reason: SessionEndReason, action: AuditAction) -> Session:
    before = dump(session)
    async with unit_of_work(ctx) as work:
        ended = await end_sessions(work, Session.filter(id=session.id), reason)
        if ended:
            session = ended[0]
            await work.audit(
                action, session.id, organization_id=None, before=before, after=dump(session)
            )
    if not ended:  # ended concurrently meanwhile
        session = await Session.get(id=session.id)
    return session


async def log_out_everywhere(ctx: Context, keep_current: bool) -> int:
    """End every session of the viewer (all but the current one with `keep_current`); how
    many ended. One audit entry, whatever the number."""
    user = person(ctx)
    qs = Session.filter(user_id=user.id)
    current = current_session_id(ctx)
    if keep_current and current is not None:
        qs = qs.exclude(id=current)
    async with unit_of_work(ctx) as work:
        ended = await end_sessions(work, qs, SessionEndReason.LOG_OUT_EVERYWHERE)
        await work.audit(
            AuditAction.USER_LOG_OUT_EVERYWHERE, user.id, organization_id=None,
            after={"sessionsEnded": len(ended), "keptCurrent": bool(keep_current and current)},
        )
    return len(ended)
