"""Sign-up, log-in and the viewer's own data."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise.exceptions import IntegrityError

from models import AuditAction, User
from models.snapshot import dump
from resolvers import ratelimit, validation
from resolvers.errors import BadInput, Conflict, RateLimited, Unauthenticated
from resolvers.identity import sessions
from resolvers.identity.auth import hash_password_async, verify_password_async
from resolvers.ratelimit import LOGIN_WINDOW, SIGNUP_WINDOW
from resolvers.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from resolvers.context import Context

EMAIL_MAX = 254


async def sign_up(ctx: Context, email: str, name: str, password: str):
    email = validation.email(email)
    name = validation.text(name, "name", max_len=validation.NAME_MAX)
    password = validation.password(password)
    # Every well-formed attempt counts, taken or not: sign-up is also a way to probe emails.
    await ratelimit.attempt(
        ctx, f"signup-ip:{ctx.ip or 'unknown'}", ctx.settings.rate_limit_signup_ip, SIGNUP_WINDOW,
        "sign-ups from this address",
    )
    password_hash = await hash_password_async(password)  # slow on purpose: outside the transaction
    if await User.exists(email=email):
        raise Conflict("An account with this email already exists", field="email")
    try:
        async with unit_of_work(ctx) as work:
            user = await User.create(email=email, name=name, password_hash=password_hash)
            await work.audit(
                AuditAction.USER_SIGN_UP, user.id, organization_id=None, after=dump(user),
                actor_id=user.id,
            )
            # A new account belongs to no organization: the server's policy is the policy.
            issued = await sessions.open_session(work, ctx, user, sessions.server_policy(ctx))
    except IntegrityError:
        raise Conflict("An account with this email already exists", field="email") from None
    return issued


async def log_in(ctx: Context, email: str, password: str):
    if not isinstance(email, str) or not isinstance(password, str) or len(password) > 1024:
        raise BadInput("Email and password are required")
    if len(email) > EMAIL_MAX:
        raise BadInput(f"`email` is longer than {EMAIL_MAX} characters", field="email", max=EMAIL_MAX)
    email = email.strip().lower()
    # Refused here (RATE_LIMITED) before the password is checked: not audited, so that
    # hammering one account cannot fill its log beyond the failures the limit lets through.
    attempts = await _count_attempt(ctx, email)
    user = await User.get_or_none(email=email, is_active=True)
    if not await verify_password_async(user.password_hash if user else None, password):
        await sessions.audit_failed_log_in(ctx, user)
        raise Unauthenticated("Wrong email or password", reason="BAD_CREDENTIALS")
    await attempts.succeeded()
    return await sessions.log_in(ctx, user)


class _LoginAttempt:
    """An attempt is counted as a failure before the password is checked, so a burst of
    concurrent guesses cannot all pass the check; a success takes it back."""

    def __init__(self, ctx: Context, email: str) -> None:
        self.ctx = ctx
        self.ip_key = f"login-ip:{ctx.ip or 'unknown'}"
        self.email_key = ratelimit.email_key(email)
        self.ip_limiter = None
        self.email_limiter = None

    async def succeeded(self) -> None:
        if self.ip_limiter is not None:
            await self.ip_limiter.give_back(self.ip_key, 1, LOGIN_WINDOW)
        if self.email_limiter is not None:
            await self.email_limiter.clear(self.email_key, LOGIN_WINDOW)


async def _count_attempt(ctx: Context, email: str) -> _LoginAttempt:
    attempt = _LoginAttempt(ctx, email)
    settings = ctx.settings
    attempt.ip_limiter = await ratelimit.attempt(
        ctx, attempt.ip_key, settings.rate_limit_login_ip, LOGIN_WINDOW,
        "failed logins from this address",
    )
    try:
        attempt.email_limiter = await ratelimit.attempt(
            ctx, attempt.email_key, settings.rate_limit_login_email, LOGIN_WINDOW,
            "failed logins for this email",
        )
    except RateLimited:
        if attempt.ip_limiter is not None:  # refused for the email: not an attempt from the IP
            await attempt.ip_limiter.give_back(attempt.ip_key, 1, LOGIN_WINDOW)
        raise
    return attempt
