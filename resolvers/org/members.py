"""Organization memberships: roles and removal (project memberships: resolvers/project/members.py).

Ownership rules, for both levels: only an owner may make, change or remove an owner, and the
last owner may not be demoted or removed. The owner count is checked before the write for a
clear error and again inside the transaction, under a lock on the parent row, so that two
concurrent demotions cannot leave nobody in charge (the lock is a no-op on SQLite, where
writes are serial anyway).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tortoise.queryset import QuerySet

from models import (
    ApiKey,
    AuditAction,
    BoardEventType,
    Invite,
    Organization,
    OrganizationMember,
    OrgRole,
    ProjectMember,
    orm,
)
from models.snapshot import dump
from resolvers.access import OrgPermission, invitable_roles
from resolvers.errors import Forbidden, NotFound, last_owner
from resolvers.project.members import member_event
from resolvers.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from resolvers.context import Context


# -- organization members ---------------------------------------------------------------------


async def _org_member(ctx: Context, member_id: int) -> OrganizationMember:
    qs: QuerySet[OrganizationMember] = await ctx.access.org_scoped(OrganizationMember)
    member = await qs.get_or_none(id=member_id)
    if member is None:
        raise NotFound("OrganizationMember")
    return member


async def _org_owner_count(organization_id: int, *, lock: bool = False) -> int:
    if lock:
        await Organization.filter(id=organization_id).select_for_update().first()
    return await OrganizationMember.filter(
        organization_id=organization_id, role=OrgRole.OWNER
    ).count()


async def _revoke_unissuable_invites(
    organization_id: int, user_id: int, role: OrgRole | None, now: datetime
) -> list[int]:
    """Revoke the user's pending invites that `role` (None: no longer a member) could not
    issue, as their API keys are revoked on removal: an invite must not outlive its sender's
    right to send it. Run after the membership row is written (see invites._inviter_role)."""
    lost = [r for r in OrgRole if r not in invitable_roles(role)]
    if not lost:
        return []
    ids: list[int] = await orm.column_values(
        Invite.filter(
            organization_id=organization_id,
            invited_by_id=user_id,
            role__in=lost,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
            expires_at__gt=now,
        ),
        "id",
    )
    if ids:
        await Invite.filter(id__in=ids).update(revoked_at=now)
    return sorted(ids)


_LAST_OWNER_LEAVES = "The last owner cannot leave or be removed; make someone else owner first"


async def update_member_role(ctx: Context, member_id: int, role: OrgRole) -> OrganizationMember:
    member = await _org_member(ctx, member_id)
    actor_role = await ctx.access.require_org(OrgPermission.MANAGE_MEMBERS, member.organization_id)
    if OrgRole.OWNER in (member.role, role) and actor_role is not OrgRole.OWNER:
        raise Forbidden("Only owners can make or change an owner", requiredRole="owner")
    if member.role is role:
        return member  # nothing changes, nothing is written
    demotes_owner = member.role is OrgRole.OWNER
    if demotes_owner and await _org_owner_count(member.organization_id) <= 1:
        raise last_owner("The last owner cannot be demoted; make someone else owner first")
    before = dump(member)
    async with unit_of_work(ctx) as work:
        member.role = role
        await member.save(update_fields=["role"])
        # Under the organization's row lock, taken after the member's row, as invites take
        # them (resolvers/org/invites.py): the count sees the demotion, so no owner left
        # means this was the last one.
        if demotes_owner and await _org_owner_count(member.organization_id, lock=True) < 1:
            raise last_owner("The last owner cannot be demoted; make someone else owner first")
        revoked_invites = await _revoke_unissuable_invites(
            member.organization_id, member.user_id, role, datetime.now(UTC)
        )
        after = dump(member)
        if revoked_invites:
            after["revokedInviteIds"] = revoked_invites
        await work.audit(
            AuditAction.MEMBER_UPDATE_ROLE, member.id,
            organization_id=member.organization_id, before=before, after=after,
        )
        # An org role implies project roles: open board streams must re-check.
        work.access_changed_for(member.user_id)
    if member.user_id == ctx.access.user_id:
        await ctx.access.reload()
    return member


async def remove_member(ctx: Context, member_id: int) -> int:
    """Remove someone from an organization (or leave it), with their project memberships."""
    member = await _org_member(ctx, member_id)
    org_id = member.organization_id
    leaving = ctx.access.is_leaving(member.user_id)
    if not leaving:
        actor_role = await ctx.access.require_org(OrgPermission.MANAGE_MEMBERS, org_id)
        if member.role is OrgRole.OWNER and actor_role is not OrgRole.OWNER:
            raise Forbidden("Only owners can remove an owner", requiredRole="owner")
    is_owner = member.role is OrgRole.OWNER
    if is_owner and await _org_owner_count(org_id) <= 1:
        raise last_owner(_LAST_OWNER_LEAVES)
    now = datetime.now(UTC)
    async with unit_of_work(ctx) as work:
        # Read inside the write: a project membership added since the checks above goes too.
        project_rows = await ProjectMember.filter(
            user_id=member.user_id, project__organization_id=org_id
        ).order_by("project_id")
        before = dump(member) | {
            "projectMembers": [dump(pm) for pm in project_rows],
        }
        await ProjectMember.filter(id__in=[pm.id for pm in project_rows] or [0]).delete()
        # Keys act as their creator; one who left must not come back to live keys if re-added.
        revoked_keys: list[int] = await orm.column_values(
            ApiKey.filter(organization_id=org_id, created_by_id=member.user_id, revoked_at__isnull=True),
            "id",
        )
        if revoked_keys:
            await ApiKey.filter(id__in=revoked_keys).update(revoked_at=now)
        await member.delete()
        revoked_invites = await _revoke_unissuable_invites(org_id, member.user_id, None, now)
        after = {"revokedApiKeyIds": sorted(revoked_keys)}
        if revoked_invites:
            after["revokedInviteIds"] = revoked_invites
        await work.audit(
            AuditAction.MEMBER_REMOVE, member_id, organization_id=org_id,
            before=before, after=after,
        )
        for pm in project_rows:
            await work.event(pm.project_id, BoardEventType.MEMBER_REMOVED, member_event(pm))
        # Also for projects seen only through the org role, which emit no event.
        work.access_changed_for(member.user_id)
        # The last-owner rule, checked again under the organization's row lock, AFTER the
        # board events took their projects' rows: every write locks projects before its
        # organization (resolvers/audit/stream.py), or two writes could wait for each other.
        # The member is already deleted here: no owner left means it was the last.
        if is_owner and await _org_owner_count(org_id, lock=True) < 1:
            raise last_owner(_LAST_OWNER_LEAVES)
    if leaving:
        await ctx.access.reload()
    return member_id
