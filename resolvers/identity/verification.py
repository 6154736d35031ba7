"""Email verification: a link with a single-use token, sent at sign-up and on request.

Unverified accounts can log in and work in the organizations they belong to, but cannot
accept invites (an invite is addressed to an email: only its proven owner may take it) or
create organizations beyond their first (EMAIL_NOT_VERIFIED).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from models import AuditAction, EmailTokenPurpose, OrganizationMember, OrgRole, User
from resolvers import ratelimit
from resolvers.email import templates
from resolvers.errors import EmailNotVerified, Forbidden
from resolvers.identity import email_tokens
from resolvers.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from resolvers.context import Context
    from resolvers.unit_of_work import UnitOfWork

VERIFY_TTL = timedelta(hours=48)
RESEND_WINDOW = 60 * 60


async def send_link(work: UnitOfWork, user: User) -> None:
    """Issue a verification token and queue its email, inside the caller's write."""
    token, expires_in = await email_tokens.issue(user, EmailTokenPurpose.VERIFY_EMAIL, VERIFY_TTL)
    public_url = work.ctx.settings.public_url
    await work.email(user.email, "verify_email", {
        "name": user.name, "expires_in": expires_in,
        "link": templates.link(public_url, "verify_email", token),
    }, user_id=user.id)


async def verify_email(ctx: Context, token: str) -> User:
    """Anyone holding the link may use it (it is opened wherever the mail is read)."""
    row, user = await email_tokens.find(token, EmailTokenPurpose.VERIFY_EMAIL)
    async with unit_of_work(ctx) as work:
        await email_tokens.redeem(row)
        # Still unverified, still this address: a write in between wins, and this one is a no-op.
        now = datetime.now(UTC)
        await User.filter(id=user.id, email=row.email, email_verified_at__isnull=True).update(
            email_verified_at=now
        )
        await work.audit(
            AuditAction.USER_VERIFY_EMAIL, user.id, organization_id=None,
            after={"email": row.email, "emailVerifiedAt": now.isoformat()}, actor_id=user.id,
        )
    return user


async def resend(ctx: Context) -> bool:
    """Send a new link to the viewer (earlier links stop working). False, and nothing sent,
    when the address is verified already."""
    access = ctx.access
    user = access.user
    if access.api_key is not None:
        raise Forbidden("Ask for a verification email with a user session, not an API key")
    if user.email_verified_at is not None:
        return False
    await ratelimit.attempt(
        ctx, f"verify-resend:{user.id}", ctx.settings.rate_limit_verify_resend, RESEND_WINDOW,
        "verification emails for this account",
    )
    async with unit_of_work(ctx) as work:
        await send_link(work, user)
        await work.audit(
            AuditAction.USER_RESEND_VERIFICATION, user.id, organization_id=None,
            after={"email": user.email},
        )
    return True


def require_verified(user: User, what: str) -> None:
    if user.email_verified_at is None:
        raise EmailNotVerified(
            f"Verify your email address to {what}; resendVerificationEmail sends a new link"
        )


async def check_new_organization(user_id: int) -> None:
    """An unverified user may create one organization. Inside the write: locks the user's row
    (as the plan check does) so two concurrent creations go one at a time."""
    user = await User.filter(id=user_id).select_for_update().first()
    if user is None or user.email_verified_at is not None:
        return
    if await OrganizationMember.exists(user_id=user_id, role=OrgRole.OWNER):
        require_verified(user, "create another organization")
