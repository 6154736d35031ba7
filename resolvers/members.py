"""Memberships: roles and removal, of organizations and of projects.

Ownership rules, for both levels: only an owner may make, change or remove an owner, and the
last owner may not be demoted or removed. The owner count is checked before the write for a
clear error and again inside the transaction, under a lock on the parent row, so that two
concurrent demotions cannot leave nobody in charge (the lock is a no-op on SQLite, where
writes are serial anyway).
"""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise.exceptions import IntegrityError

from models import (
    ApiKey,
    Invite,
    Organization,
    OrganizationMember,
    OrgRole,
    Project,
    ProjectMember,
    ProjectRole,
)
from resolvers.access import OrgPermission, Permission, invitable_roles
from resolvers.errors import BadInput, Conflict, Forbidden, NotFound
from resolvers.writes import transaction


def member_snapshot(member: OrganizationMember) -> dict:
    return {
        "id": member.id,
        "organizationId": member.organization_id,
        "userId": member.user_id,
        "role": member.role.value,
    }


def project_member_snapshot(member: ProjectMember) -> dict:
    return {
        "id": member.id,
        "projectId": member.project_id,
        "userId": member.user_id,
        "role": member.role.value,
    }


# -- organization members ---------------------------------------------------------------------


async def _org_member(ctx, member_id: int) -> OrganizationMember:
    member = await (await ctx.viewer.org_scoped(OrganizationMember)).get_or_none(id=member_id)
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
    ids = await Invite.filter(
        organization_id=organization_id,
        invited_by_id=user_id,
        role__in=lost,
        accepted_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=now,
    ).values_list("id", flat=True)
    if ids:
        await Invite.filter(id__in=ids).update(revoked_at=now)
    return sorted(ids)


_LAST_OWNER_LEAVES = "The last owner cannot leave or be removed; make someone else owner first"


def _last_owner(message: str) -> Conflict:
    return Conflict(message, reason="LAST_OWNER")


async def update_member_role(ctx, member_id: int, role: OrgRole) -> OrganizationMember:
    member = await _org_member(ctx, member_id)
    actor_role = await ctx.viewer.require_org(OrgPermission.MANAGE_MEMBERS, member.organization_id)
    if OrgRole.OWNER in (member.role, role) and actor_role is not OrgRole.OWNER:
        raise Forbidden("Only owners can make or change an owner", requiredRole="owner")
    if member.role is role:
        return member  # nothing changes, nothing is written
    demotes_owner = member.role is OrgRole.OWNER
    if demotes_owner and await _org_owner_count(member.organization_id) <= 1:
        raise _last_owner("The last owner cannot be demoted; make someone else owner first")
    before = member_snapshot(member)
    async with transaction(ctx) as tx:
        if demotes_owner and await _org_owner_count(member.organization_id, lock=True) <= 1:
            raise _last_owner("The last owner cannot be demoted; make someone else owner first")
        member.role = role
        await member.save(update_fields=["role"])
        revoked_invites = await _revoke_unissuable_invites(
            member.organization_id, member.user_id, role, datetime.now(UTC)
        )
        after = member_snapshot(member)
        if revoked_invites:
            after["revokedInviteIds"] = revoked_invites
        await tx.audit(
            "member.update_role", "OrganizationMember", member.id,
            organization_id=member.organization_id, before=before, after=after,
        )
        # An org role implies project roles: open board streams must re-check.
        tx.access_changed_for(member.user_id)
    if member.user_id == ctx.viewer.user_id:
        await ctx.viewer.reload()
    return member


def _leaving(ctx, user_id: int) -> bool:
    """Leaving needs no role, but only a person leaves: an API key acting as its creator is
    held to the role checks, or a member-capped key could remove its owner-creator."""
    return user_id == ctx.viewer.user_id and ctx.viewer.api_key is None


async def remove_member(ctx, member_id: int) -> int:
    """Remove someone from an organization (or leave it), with their project memberships."""
    member = await _org_member(ctx, member_id)
    org_id = member.organization_id
    leaving = _leaving(ctx, member.user_id)
    if not leaving:
        actor_role = await ctx.viewer.require_org(OrgPermission.MANAGE_MEMBERS, org_id)
        if member.role is OrgRole.OWNER and actor_role is not OrgRole.OWNER:
            raise Forbidden("Only owners can remove an owner", requiredRole="owner")
    is_owner = member.role is OrgRole.OWNER
    if is_owner and await _org_owner_count(org_id) <= 1:
        raise _last_owner(_LAST_OWNER_LEAVES)
    now = datetime.now(UTC)
    async with transaction(ctx) as tx:
        if is_owner and await _org_owner_count(org_id, lock=True) <= 1:
            raise _last_owner(_LAST_OWNER_LEAVES)
        # Read under the lock so that a project membership added meanwhile goes too.
        project_rows = await ProjectMember.filter(
            user_id=member.user_id, project__organization_id=org_id
        ).order_by("project_id")
        before = member_snapshot(member) | {
            "projectMembers": [project_member_snapshot(pm) for pm in project_rows],
        }
        await ProjectMember.filter(id__in=[pm.id for pm in project_rows] or [0]).delete()
        # Keys act as their creator; one who left must not come back to live keys if re-added.
        revoked_keys = await ApiKey.filter(
            organization_id=org_id, created_by_id=member.user_id, revoked_at__isnull=True
        ).values_list("id", flat=True)
        if revoked_keys:
            await ApiKey.filter(id__in=revoked_keys).update(revoked_at=now)
        await member.delete()
        revoked_invites = await _revoke_unissuable_invites(org_id, member.user_id, None, now)
        after = {"revokedApiKeyIds": sorted(revoked_keys)}
        if revoked_invites:
            after["revokedInviteIds"] = revoked_invites
        await tx.audit(
            "member.remove", "OrganizationMember", member_id, organization_id=org_id,
            before=before, after=after,
        )
        for pm in project_rows:
            await tx.event(pm.project_id, "MemberRemoved", _member_event(pm))
        # Also for projects seen only through the org role, which emit no event.
        tx.access_changed_for(member.user_id)
    if leaving:
        await ctx.viewer.reload()
    return member_id


# -- project members --------------------------------------------------------------------------


def _member_event(member: ProjectMember, **extra) -> dict:
    return {
        "memberId": member.id,
        "userId": member.user_id,
        "role": member.role.value,
        **extra,
    }


async def _project_member(ctx, member_id: int) -> tuple[ProjectMember, Project]:
    qs = await ctx.viewer.scoped(ProjectMember, "project__")
    member = await qs.get_or_none(id=member_id).select_related("project")
    if member is None:
        raise NotFound("ProjectMember")
    return member, member.project


async def _project_owner_count(project_id: int, *, lock: bool = False) -> int:
    if lock:
        await Project.filter(id=project_id).select_for_update().first()
    return await ProjectMember.filter(project_id=project_id, role=ProjectRole.OWNER).count()


async def add_project_member(
    ctx, project_id: int, user_id: int, role: ProjectRole
) -> ProjectMember:
    project = await ctx.viewer.project(project_id)
    actor_role = await ctx.viewer.require(Permission.MANAGE_MEMBERS, project)
    if role is ProjectRole.OWNER and actor_role is not ProjectRole.OWNER:
        raise Forbidden("Only project owners can add an owner", requiredRole="owner")
    # Asked of the org, not of the User table, so that whether an outsider exists stays hidden.
    org_id = project.organization_id
    if not await OrganizationMember.exists(organization_id=org_id, user_id=user_id):
        raise BadInput("The user must be a member of the project's organization", field="userId")
    if await ProjectMember.exists(project_id=project.id, user_id=user_id):
        raise Conflict("This user is already a member of the project", field="userId")
    try:
        async with transaction(ctx) as tx:
            member = await ProjectMember.create(project_id=project.id, user_id=user_id, role=role)
            await tx.audit(
                "project_member.add", "ProjectMember", member.id,
                organization_id=project.organization_id, after=project_member_snapshot(member),
            )
            await tx.event(project.id, "MemberAdded", _member_event(member))
    except IntegrityError:
        raise Conflict("This user is already a member of the project", field="userId") from None
    if user_id == ctx.viewer.user_id:
        await ctx.viewer.reload()
    return member


async def update_project_member_role(ctx, member_id: int, role: ProjectRole) -> ProjectMember:
    member, project = await _project_member(ctx, member_id)
    actor_role = await ctx.viewer.require(Permission.MANAGE_MEMBERS, project)
    if ProjectRole.OWNER in (member.role, role) and actor_role is not ProjectRole.OWNER:
        raise Forbidden("Only project owners can grant or revoke ownership", requiredRole="owner")
    if member.role is role:
        return member  # nothing changes, nothing is written
    demotes_owner = member.role is ProjectRole.OWNER
    message = "The last project owner cannot be demoted; make someone else owner first"
    if demotes_owner and await _project_owner_count(project.id) <= 1:
        raise _last_owner(message)
    before = project_member_snapshot(member)
    async with transaction(ctx) as tx:
        if demotes_owner and await _project_owner_count(project.id, lock=True) <= 1:
            raise _last_owner(message)
        member.role = role
        await member.save(update_fields=["role"])
        await tx.audit(
            "project_member.update_role", "ProjectMember", member.id,
            organization_id=project.organization_id, before=before,
            after=project_member_snapshot(member),
        )
        await tx.event(
            project.id, "MemberRoleChanged", _member_event(member, previousRole=before["role"])
        )
        tx.access_changed_for(member.user_id)
    if member.user_id == ctx.viewer.user_id:
        await ctx.viewer.reload()
    return member


async def remove_project_member(ctx, member_id: int) -> int:
    member, project = await _project_member(ctx, member_id)
    leaving = _leaving(ctx, member.user_id)
    if not leaving:
        actor_role = await ctx.viewer.require(Permission.MANAGE_MEMBERS, project)
        if member.role is ProjectRole.OWNER and actor_role is not ProjectRole.OWNER:
            raise Forbidden("Only project owners can remove an owner", requiredRole="owner")
    is_owner = member.role is ProjectRole.OWNER
    message = "The last project owner cannot leave or be removed; make someone else owner first"
    if is_owner and await _project_owner_count(project.id) <= 1:
        raise _last_owner(message)
    before = project_member_snapshot(member)
    async with transaction(ctx) as tx:
        if is_owner and await _project_owner_count(project.id, lock=True) <= 1:
            raise _last_owner(message)
        await member.delete()
        await tx.audit(
            "project_member.remove", "ProjectMember", member_id,
            organization_id=project.organization_id, before=before,
        )
        await tx.event(project.id, "MemberRemoved", _member_event(member))
        tx.access_changed_for(member.user_id)
    if leaving:
        await ctx.viewer.reload()
    return member_id
