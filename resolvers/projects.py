"""Projects: creation, settings, and the reads that hang off a project."""

from __future__ import annotations

from models import Organization, Project, ProjectMember, ProjectRole, Task, TaskStatus
from resolvers import validation
from resolvers.access import OrgPermission, Permission
from resolvers.pagination import Order, paginate
from resolvers.writes import transaction

BOARD_ORDER = Order((("position", False),))


def snapshot(project: Project) -> dict:
    return {
        "id": project.id,
        "organizationId": project.organization_id,
        "name": project.name,
        "description": project.description,
        "archivedAt": project.archived_at.isoformat() if project.archived_at else None,
    }


async def projects(
    ctx,
    *,
    organization: Organization | None = None,
    include_archived: bool = False,
    search: str | None = None,
    first=None,
    after=None,
    last=None,
    before=None,
):
    qs = await ctx.viewer.projects()
    if organization is not None:
        qs = qs.filter(organization_id=organization.id)
    if not include_archived:
        qs = qs.filter(archived_at__isnull=True)
    if search:
        qs = qs.filter(name__icontains=search[:200])
    return await paginate(
        qs, Order((("name", False),)), first=first, after=after, last=last, before=before
    )


async def project_members(ctx, project: Project, first, after, last=None, before=None):
    qs = ProjectMember.filter(project_id=project.id)
    return await paginate(
        qs, Order((("created_at", False),)), first=first, after=after, last=last, before=before
    )


async def column_tasks(ctx, project: Project, status: TaskStatus, first, after, last=None, before=None):
    qs = Task.filter(project_id=project.id, status=status, archived_at__isnull=True)
    return await paginate(qs, BOARD_ORDER, first=first, after=after, last=last, before=before)


async def create_project(ctx, organization_id: int, name: str, description: str | None) -> Project:
    await ctx.viewer.require_org(OrgPermission.CREATE_PROJECT, organization_id)
    name = validation.text(name, "name", max_len=validation.NAME_MAX)
    description = validation.text(
        description or "", "description", max_len=validation.DESCRIPTION_MAX, required=False
    )
    async with transaction(ctx) as tx:
        project = await Project.create(
            organization_id=organization_id,
            name=name,
            description=description,
            created_by_id=ctx.viewer.user_id,
        )
        await ProjectMember.create(project=project, user_id=ctx.viewer.user_id, role=ProjectRole.OWNER)
        await tx.audit(
            "project.create", "Project", project.id, organization_id=organization_id,
            after=snapshot(project),
        )
    await ctx.viewer.reload()
    return project


async def require(ctx, project_id: int, permission: Permission) -> Project:
    """Load a project the viewer can see (else NOT_FOUND) and check `permission`."""
    project = await ctx.viewer.project(project_id)
    await ctx.viewer.require(permission, project)
    return project
