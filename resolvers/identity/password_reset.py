"""Password reset by email: a single-use link valid for 30 minutes.

`requestPasswordReset` answers the same whether or not the address has an account (and is
limited per address and per IP, counted either way). `resetPassword` sets the new password,
marks the address verified (the link proved it), ends every session of the account, and
tells the account by email that its password changed; audited as `user.password_reset`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from models import AuditAction, EmailTokenPurpose, User
from resolvers import ratelimit, validation
from resolvers.email import templates
from resolvers.identity import email_tokens
from resolvers.identity.auth import hash_password_async
from resolvers.identity.end_sessions import end_all_sessions
from resolvers.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from resolvers.context import Context
    from resolvers.unit_of_work import UnitOfWork

RESET_TTL = timedelta(minutes=30)
REQUEST_WINDOW = 60 * 60


async def send_link(work: UnitOfWork, user: User, template: str = "password_reset") -> None:
    """Issue a reset token and queue its email (`password_reset`, or the sign-up notice that
    carries the same link), inside the caller's write."""
    token, expires_in = await email_tokens.issue(user, EmailTokenPurpose.RESET_PASSWORD, RESET_TTL)
    public_url = work.ctx.settings.public_url
    await work.email(user.email, template, {
        "name": user.name, "expires_in": expires_in,
        "link": templates.link(public_url, "reset_password", token),
        "login_link": templates.login_link(public_url),
    }, user_id=user.id)


async def request_reset(ctx: Context, email: str) -> None:
    email = validation.email(email)
    settings = ctx.settings
    await ratelimit.attempt(
        ctx, f"reset-ip:{ctx.ip or 'unknown'}", settings.rate_limit_reset_ip, REQUEST_WINDOW,
        "password reset requests from this address",
    )
    # Per address, account or not: the limit itself must not tell which addresses exist.
    await ratelimit.attempt(
        ctx, "reset-" + ratelimit.email_key(email), settings.rate_limit_reset_email, REQUEST_WINDOW,
        "password reset requests for this email",
    )
    user = await User.get_or_none(email=email, is_active=True)
    if user is None:
        return
    async with unit_of_work(ctx) as work:
        await send_link(work, user)
        await work.audit(
            AuditAction.USER_PASSWORD_RESET_REQUEST, user.id, organization_id=None,
            after={"email": user.email}, actor_id=user.id,
        )


async def reset_password(ctx: Context, token: str, new_password: str) -> User:
    new_password = validation.password(new_password, "newPassword")
    row, user = await email_tokens.find(token, EmailTokenPurpose.RESET_PASSWORD)
    password_hash = await hash_password_async(new_password)  # slow: outside the transaction
    async with unit_of_work(ctx) as work:
        await email_tokens.redeem(row)
        user = await User.get(id=user.id)
        verified_now = user.email_verified_at is None
        user.password_hash = password_hash
        fields = ["password_hash", "updated_at"]
        if verified_now:
            user.email_verified_at = datetime.now(UTC)
            fields.append("email_verified_at")
        await user.save(update_fields=fields)
        # Any other unused reset link dies with this one.
        await email_tokens.discard(user.id, EmailTokenPurpose.RESET_PASSWORD)
        ended = await end_all_sessions(work, user.id, "password_reset")
        await work.email(user.email, "password_changed", {
            "name": user.name, "login_link": templates.login_link(ctx.settings.public_url),
        }, user_id=user.id)
        await work.audit(
            AuditAction.USER_PASSWORD_RESET, user.id, organization_id=None,
            after={"email": user.email, "emailVerified": True, "sessionsEnded": ended,
                   "verifiedByReset": verified_now},
            actor_id=user.id,
        )
    return user
