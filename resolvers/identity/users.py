"""Sign-up, log-in and the viewer's own data."""

from __future__ import annotations

from typing import TYPE_CHECKING

from models import AuditAction, User
from models.snapshot import dump
from resolvers import ratelimit, validation
from resolvers.errors import BadInput, RateLimited, Unauthenticated
from resolvers.identity import password_reset, sessions, verification
from resolvers.identity.auth import hash_password_async, verify_password_async
from resolvers.ratelimit import LOGIN_WINDOW, SIGNUP_WINDOW, Limiter
from resolvers.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from resolvers.context import Context

EMAIL_MAX = 254
# Sign-up attempts per address per hour that may send the account a notice. The attempt that
# created the account counts too (both branches charge alike), so an account gets at least
# one notice in the hour after its creation.
SIGNUP_NOTICES_PER_HOUR = 2


async def sign_up(ctx: Context, email: str, name: str, password: str) -> None:
    """Create an account and send its verification link; or, when the email already has an
    account, send that account a notice (with a password-reset link) and change nothing.

    The caller cannot tell which happened: the answer is the same, and so is the work done
    before it (one password hash, the same limiter calls, the same six SQL statements in one
    transaction: insert-if-absent, read back, replace the user's unused link tokens, store the
    new one, queue the email, audit). The email itself leaves later, from the outbox. Nothing
    here returns a token: the new account logs in with logIn like any other.
    """
    email = validation.email(email)
    name = validation.text(name, "name", max_len=validation.NAME_MAX)
    password = validation.password(password)
    # Every well-formed attempt counts, taken or not: sign-up is also a way to probe emails.
    await ratelimit.attempt(
        ctx, f"signup-ip:{ctx.ip or 'unknown'}", ctx.settings.rate_limit_signup_ip, SIGNUP_WINDOW,
        "sign-ups from this address",
    )
    notice_allowed = await _notice_allowed(ctx, email)
    password_hash = await hash_password_async(password)  # slow on purpose: outside the transaction
    async with unit_of_work(ctx) as work:
        # Insert-if-absent (ON CONFLICT DO NOTHING / INSERT OR IGNORE): a concurrent sign-up
        # with the same email waits for ours on PostgreSQL, then finds the account taken.
        await User.bulk_create(
            [User(email=email, name=name, password_hash=password_hash)], ignore_conflicts=True
        )
        user = await User.get(email=email)
        if user.password_hash == password_hash:  # a fresh argon2 salt: only our insert has it
            await verification.send_link(work, user)
            await work.audit(
                AuditAction.USER_SIGN_UP, user.id, organization_id=None, after=dump(user),
                actor_id=user.id,
            )
            return
        notify = notice_allowed and user.is_active
        if notify:
            await password_reset.send_link(work, user, "signup_existing")
        await work.audit(
            AuditAction.USER_SIGN_UP_EXISTING, user.id, organization_id=None,
            after={"noticeSent": notify},
        )


async def _notice_allowed(ctx: Context, email: str) -> bool:
    """At most SIGNUP_NOTICES_PER_HOUR sign-up attempts per address an hour may email it,
    so sign-up cannot be used to flood an inbox. Charged on every attempt, so that new and
    existing addresses cost the same limiter calls; over the limit the notice is skipped
    silently (the answer must not change)."""
    limiter = ratelimit.limiter_of(ctx)
    if limiter is None:
        return True
    window = await limiter.charge(
        "signup-notice:" + ratelimit.email_key(email), 1, SIGNUP_NOTICES_PER_HOUR, SIGNUP_WINDOW
    )
    return window.allowed


async def log_in(ctx: Context, email: str, password: str) -> sessions.Issued:
    if not isinstance(email, str) or not isinstance(password, str) or len(password) > 1024:
        raise BadInput("Email and password are required")
    if len(email) > EMAIL_MAX:
        raise BadInput(f"`email` is longer than {EMAIL_MAX} characters", field="email", max=EMAIL_MAX)
    email = email.strip().lower()
    # Refused here (RATE_LIMITED) before the password is checked: not audited, so that
    # hammering one account cannot fill its log beyond the failures the limit lets through.
    attempts = await _count_attempt(ctx, email)
    user = await User.get_or_none(email=email, is_active=True)
    # The password is checked (against a dummy hash) even without a user, so that the time
    # taken does not tell whether the email has an account; it never matches then.
    verified = await verify_password_async(user.password_hash if user else None, password)
    if not verified or user is None:
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
        self.ip_limiter: Limiter | None = None
        self.email_limiter: Limiter | None = None

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
