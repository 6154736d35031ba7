"""What an organization's owners decide about its members' sessions: end all of a member's
sessions (an offboarding, a lost laptop), and, on the enterprise plan, a stricter session
policy (idle timeout, absolute lifetime) for every member."""

from __future__ import annotations

from typing import TYPE_CHECKING

from models import AuditAction, Organization, OrganizationMember, Plan, Session, SessionEndReason
from resolvers.access import OrgPermission
from resolvers.errors import BadInput, Forbidden, NotFound
from resolvers.identity.sessions import end_sessions
from resolvers.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from resolvers.context import Context

# An override between five minutes and a year, in seconds.
POLICY_MIN = 300
POLICY_MAX = 366 * 24 * 3600


async def end_member_sessions(ctx: Context, organization_id: int, user_id: int) -> int:
    """End every session of a member of the organization (everywhere: a session is the
    person's, not the organization's); how many ended. Audited in the organization's log."""
    await ctx.access.require_org(OrgPermission.MANAGE_SESSIONS, organization_id)
    member = await OrganizationMember.get_or_none(organization_id=organization_id, user_id=user_id)
    if member is None:  # another organization's member answers as a user that never existed
        raise NotFound("User")
    async with unit_of_work(ctx) as work:
        ended = await end_sessions(
            work, Session.filter(user_id=user_id), SessionEndReason.ENDED_BY_ORGANIZATION
        )
        await work.audit(
            AuditAction.MEMBER_END_SESSIONS, member.id, organization_id=organization_id,
            after={"userId": user_id, "sessionsEnded": len(ended)},
        )
    return len(ended)


def _seconds(value: int | None, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not POLICY_MIN <= value <= POLICY_MAX:
        raise BadInput(
            f"`{field}` must be between {POLICY_MIN} and {POLICY_MAX} seconds, or null",
            field=field, min=POLICY_MIN, max=POLICY_MAX,
        )
    return value


def _policy(org: Organization) -> dict[str, int | None]:
    return {"sessionIdleTimeout": org.session_idle_timeout, "sessionMaxAge": org.session_max_age}


async def update_session_policy(
    ctx: Context, organization_id: int, idle_timeout: int | None, max_age: int | None
) -> Organization:
    """Set (or, with null, clear) the organization's session policy. Enterprise plan only;
    an unchanged policy writes nothing."""
    await ctx.access.require_org(OrgPermission.MANAGE_SESSIONS, organization_id)
    idle_timeout = _seconds(idle_timeout, "idleTimeout")
    max_age = _seconds(max_age, "maxAge")
    org = await Organization.get(id=organization_id)
    if org.plan is not Plan.ENTERPRISE:
        raise Forbidden(
            "A session policy of its own is part of the enterprise plan", requiredPlan=Plan.ENTERPRISE.value
        )
    before = _policy(org)
    if (org.session_idle_timeout, org.session_max_age) == (idle_timeout, max_age):
        return org
    async with unit_of_work(ctx) as work:
        org.session_idle_timeout, org.session_max_age = idle_timeout, max_age
        await org.save(update_fields=["session_idle_timeout", "session_max_age", "updated_at"])
        await work.audit(
            AuditAction.ORGANIZATION_UPDATE_SESSION_POLICY, org.id, organization_id=org.id,
            before=before, after=_policy(org),
        )
    return org


async def session_policy(ctx: Context, org: Organization) -> Organization:
    await ctx.access.require_org(OrgPermission.READ, org.id)
    return org
