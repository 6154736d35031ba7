"""Project memberships: add, change role, remove. The ownership rules are the organization's
(resolvers/org/members.py): only an owner makes, changes or removes an owner, and the last
owner stays; checked before the write and again under the project row's lock."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise.exceptions import IntegrityError

from models import AuditAction, BoardEventType, OrganizationMember, Project, ProjectMember, ProjectRole
from models.snapshot import dump
from resolvers.access import Permission
from resolvers.errors import BadInput, Conflict, Forbidden, NotFound, last_owner
from resolvers.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from resolvers.context import Context


def member_event(member: ProjectMember, **extra: Any) -> dict[str, Any]:
    return {
        "memberId": member.id,
        "userId": member.user_id,
        "role": member.role.value,
        **extra,
    }


async def _project_member(ctx: Context, member_id: int) -> tuple[ProjectMember, Project]:
    qs = await ctx.access.scoped(ProjectMember, "project__")
    member = await qs.get_or_none(id=member_id).select_related("project")
    if member is None:
        raise NotFound("ProjectMember")
    return member, member.project


async def _project_owner_count(project_id: int, *, lock: bool = False) -> int:
    if lock:
        await Project.filter(id=project_id).select_for_update().first()
    return await ProjectMember.filter(project_id=project_id, role=ProjectRole.OWNER).count()


async def add_project_member(
    ctx: Context, project_id: int, user_id: int, role: ProjectRole
) -> ProjectMember:
    project = await ctx.access.project(project_id)
    actor_role = await ctx.access.require(Permission.MANAGE_MEMBERS, project)
    if role is ProjectRole.OWNER and actor_role is not ProjectRole.OWNER:
        raise Forbidden("Only project owners can add an owner", requiredRole="owner")
    # Asked of the org, not of the User table, so that whether an outsider exists stays hidden.
    org_id = project.organization_id
    if not await OrganizationMember.exists(organization_id=org_id, user_id=user_id):
        raise BadInput("The user must be a member of the project's organization", field="userId")
    if await ProjectMember.exists(project_id=project.id, user_id=user_id):
        raise Conflict("This user is already a member of the project", field="userId")
    try:
        async with unit_of_work(ctx) as work:
            member = await ProjectMember.create(project_id=project.id, user_id=user_id, role=role)
            await work.audit(
                AuditAction.PROJECT_MEMBER_ADD, member.id,
                organization_id=project.organization_id, after=dump(member),
            )
            await work.event(project.id, BoardEventType.MEMBER_ADDED, member_event(member))
    except IntegrityError:
        raise Conflict("This user is already a member of the project", field="userId") from None
    if user_id == ctx.access.user_id:
        await ctx.access.reload()
    return member


async def update_project_member_role(ctx: Context, member_id: int, role: ProjectRole) -> ProjectMember:
    member, project = await _project_member(ctx, member_id)
    actor_role = await ctx.access.require(Permission.MANAGE_MEMBERS, project)
    if ProjectRole.OWNER in (member.role, role) and actor_role is not ProjectRole.OWNER:
        raise Forbidden("Only project owners can grant or revoke ownership", requiredRole="owner")
    if member.role is role:
        return member  # nothing changes, nothing is written
    demotes_owner = member.role is ProjectRole.OWNER
    message = "The last project owner cannot be demoted; make someone else owner first"
    if demotes_owner and await _project_owner_count(project.id) <= 1:
        raise last_owner(message)
    before = dump(member)
    async with unit_of_work(ctx) as work:
        if demotes_owner and await _project_owner_count(project.id, lock=True) <= 1:
            raise last_owner(message)
        member.role = role
        await member.save(update_fields=["role"])
        await work.audit(
            AuditAction.PROJECT_MEMBER_UPDATE_ROLE, member.id,
            organization_id=project.organization_id, before=before,
            after=dump(member),
        )
        await work.event(
            project.id, BoardEventType.MEMBER_ROLE_CHANGED, member_event(member, previousRole=before["role"])
        )
        work.access_changed_for(member.user_id)
    if member.user_id == ctx.access.user_id:
        await ctx.access.reload()
    return member


async def remove_project_member(ctx: Context, member_id: int) -> int:
    member, project = await _project_member(ctx, member_id)
    leaving = ctx.access.is_leaving(member.user_id)
    if not leaving:
        actor_role = await ctx.access.require(Permission.MANAGE_MEMBERS, project)
        if member.role is ProjectRole.OWNER and actor_role is not ProjectRole.OWNER:
            raise Forbidden("Only project owners can remove an owner", requiredRole="owner")
    is_owner = member.role is ProjectRole.OWNER
    message = "The last project owner cannot leave or be removed; make someone else owner first"
    if is_owner and await _project_owner_count(project.id) <= 1:
        raise last_owner(message)
    before = dump(member)
    async with unit_of_work(ctx) as work:
        if is_owner and await _project_owner_count(project.id, lock=True) <= 1:
            raise last_owner(message)
        await member.delete()
        await work.audit(
            AuditAction.PROJECT_MEMBER_REMOVE, member_id,
            organization_id=project.organization_id, before=before,
        )
        await work.event(project.id, BoardEventType.MEMBER_REMOVED, member_event(member))
        work.access_changed_for(member.user_id)
    if leaving:
        await ctx.access.reload()
    return member_id
