"""Projects: creation, settings, and the reads that hang off a project."""

from __future__ import annotations

from datetime import UTC, datetime

from models import Organization, Project, ProjectMember, ProjectRole, Task, TaskStatus
from resolvers import plans, validation
from resolvers.access import OrgPermission, Permission
from resolvers.errors import BadInput
from resolvers.loaders import PageSpec, prime_task_counts, task_count_columns
from resolvers.pagination import Order, paginate
from resolvers.rows import TaskRow
from resolvers.writes import transaction

BOARD_ORDER = Order((("position", False),))
PROJECT_ORDER = Order((("name", False),))
MEMBER_ORDER = Order((("created_at", False),))


def snapshot(project: Project) -> dict:
    return {
        "id": project.id,
        "organizationId": project.organization_id,
        "name": project.name,
        "description": project.description,
        "archivedAt": project.archived_at.isoformat() if project.archived_at else None,
        "createdAt": project.created_at.isoformat(),
        "updatedAt": project.updated_at.isoformat(),
    }


async def _visible_projects(ctx, variant: tuple[bool, str | None]):
    include_archived, search = variant
    qs = await ctx.viewer.projects()
    if not include_archived:
        qs = qs.filter(archived_at__isnull=True)
    if search:
        qs = qs.filter(name__icontains=search[:200])
    return qs


async def _all_members(ctx, variant):
    return ProjectMember.all()


async def _open_tasks(ctx, variant):
    return Task.filter(archived_at__isnull=True)


# Lists hanging off each item of another list: their first pages share one statement.
ORG_PROJECTS = PageSpec(group=("organization_id",), source=_visible_projects, order=PROJECT_ORDER)
PROJECT_MEMBERS = PageSpec(group=("project_id",), source=_all_members, order=MEMBER_ORDER)
BOARD_COLUMN = PageSpec(
    group=("project_id", "status"),
    source=_open_tasks,
    order=BOARD_ORDER,
    extras=task_count_columns,
    on_rows=prime_task_counts,
    row=TaskRow,
)


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
    variant = (include_archived, search or None)
    if organization is not None:  # one of possibly many organizations in the response
        return await ctx.loaders.page(
            ctx, ORG_PROJECTS, (organization.id,), variant=variant,
            first=first, after=after, last=last, before=before,
        )
    qs = await _visible_projects(ctx, variant)
    return await paginate(qs, PROJECT_ORDER, first=first, after=after, last=last, before=before)


async def project_members(ctx, project: Project, first, after, last=None, before=None):
    return await ctx.loaders.page(
        ctx, PROJECT_MEMBERS, (project.id,), first=first, after=after, last=last, before=before
    )


async def column_tasks(
    ctx, project: Project, status: TaskStatus, first, after, last=None, before=None, *, load=()
):
    """A board column's open tasks. The first pages of every column of every board in the
    request come from one statement, with comment and subtask counts and column totals;
    the task relations named in `load` are loaded for all of them right after."""
    page = await ctx.loaders.page(
        ctx, BOARD_COLUMN, (project.id, status), first=first, after=after, last=last, before=before
    )
    await ctx.loaders.warm_tasks(page.items, load)
    return page


async def create_project(ctx, organization_id: int, name: str, description: str | None) -> Project:
    await ctx.viewer.require_org(OrgPermission.CREATE_PROJECT, organization_id)
    name = validation.text(name, "name", max_len=validation.NAME_MAX)
    description = validation.text(
        description or "", "description", max_len=validation.DESCRIPTION_MAX, required=False
    )
    async with transaction(ctx) as tx:
        await plans.check_project(organization_id)
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


async def update_project(
    ctx, project_id: int, *, name: str | None = None, description: str | None = None
) -> Project:
    """Rename or re-describe a project; an omitted (null) field stays as it is."""
    project = await require(ctx, project_id, Permission.MANAGE_PROJECT)
    if project.archived_at is not None:
        raise BadInput("The project is archived", field="projectId")
    changes = {}
    if name is not None:
        changes["name"] = validation.text(name, "name", max_len=validation.NAME_MAX)
    if description is not None:
        changes["description"] = validation.text(
            description, "description", max_len=validation.DESCRIPTION_MAX, required=False
        )
    changes = {k: v for k, v in changes.items() if getattr(project, k) != v}
    if not changes:
        return project  # nothing changes, nothing is written
    before = snapshot(project)
    async with transaction(ctx) as tx:
        project.update_from_dict(changes)
        await project.save(update_fields=[*changes, "updated_at"])
        after = snapshot(project)
        await tx.audit(
            "project.update", "Project", project.id, organization_id=project.organization_id,
            before=before, after=after,
        )
        await tx.event(project.id, "ProjectUpdated", {"project": after, "changed": list(changes)})
    return project


async def archive_project(ctx, project_id: int) -> Project:
    """Archive a project. Idempotent: archiving an archived project writes nothing."""
    project = await require(ctx, project_id, Permission.ARCHIVE_PROJECT)
    if project.archived_at is not None:
        return project
    before = snapshot(project)
    now = datetime.now(UTC)
    async with transaction(ctx) as tx:
        # Conditional, so that of two concurrent archives only one audits.
        if await Project.filter(id=project.id, archived_at__isnull=True).update(archived_at=now):
            project.archived_at = now
            after = snapshot(project)
            await tx.audit(
                "project.archive", "Project", project.id,
                organization_id=project.organization_id, before=before, after=after,
            )
            await tx.event(project.id, "ProjectArchived", {"project": after})
    return await Project.get(id=project.id)
