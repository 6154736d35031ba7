"""Projects: creation, settings, and the reads that hang off a project."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tortoise.queryset import QuerySet

from models import AuditAction, BoardEventType, Organization, Project, ProjectMember, ProjectRole, Task, TaskStatus
from models.snapshot import dump
from resolvers import validation
from resolvers.access import OrgPermission, Permission
from resolvers.errors import BadInput
from resolvers.loaders import CountedPage, PageSpec, prime_task_counts, task_count_columns
from resolvers.org import plans
from resolvers.pagination import Order, Page, paginate
from resolvers.rows import TaskRow
from resolvers.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from resolvers.context import Context

BOARD_ORDER = Order((("position", False),))
PROJECT_ORDER = Order((("name", False),))
MEMBER_ORDER = Order((("created_at", False),))


@dataclass(frozen=True)
class ProjectFilter:
    """What a project list holds: the variant of ORG_PROJECTS (hashable, compared by value)."""

    include_archived: bool
    search: str | None


async def _filtered_projects(ctx: Context, flt: ProjectFilter) -> QuerySet[Project]:
    qs = await ctx.access.projects()
    if not flt.include_archived:
        qs = qs.filter(archived_at__isnull=True)
    if flt.search:
        qs = qs.filter(name__icontains=flt.search[:200])
    return qs


async def _visible_projects(ctx: Context, variant: Hashable) -> QuerySet[Project]:
    assert isinstance(variant, ProjectFilter)  # the variant projects() passed to the loader
    return await _filtered_projects(ctx, variant)


async def _all_members(ctx: Context, variant: Hashable) -> QuerySet[ProjectMember]:
    return ProjectMember.all()


async def _open_tasks(ctx: Context, variant: Hashable) -> QuerySet[Task]:
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
    ctx: Context,
    *,
    organization: Organization | None = None,
    include_archived: bool = False,
    search: str | None = None,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Page[Project]:
    flt = ProjectFilter(include_archived, search or None)
    if organization is not None:  # one of possibly many organizations in the response
        return await ctx.loaders.page(
            ctx, ORG_PROJECTS, (organization.id,), variant=flt,
            first=first, after=after, last=last, before=before,
        )
    qs = await _filtered_projects(ctx, flt)
    return await paginate(qs, PROJECT_ORDER, first=first, after=after, last=last, before=before)


async def project_members(
    ctx: Context,
    project: Project,
    first: int | None,
    after: str | None,
    last: int | None = None,
    before: str | None = None,
) -> CountedPage[ProjectMember]:
    return await ctx.loaders.page(
        ctx, PROJECT_MEMBERS, (project.id,), first=first, after=after, last=last, before=before
    )


async def column_tasks(
    ctx: Context,
    project: Project,
    status: TaskStatus,
    first: int | None,
    after: str | None,
    last: int | None = None,
    before: str | None = None,
    *,
    load: Iterable[str] = (),
) -> CountedPage[Task]:
    """A board column's open tasks. The first pages of every column of every board in the
    request come from one statement, with comment and subtask counts and column totals;
    the task relations named in `load` are loaded for all of them right after."""
    page = await ctx.loaders.page(
        ctx, BOARD_COLUMN, (project.id, status), first=first, after=after, last=last, before=before
    )
    await ctx.loaders.warm_tasks(page.items, load)
    return page


async def create_project(ctx: Context, organization_id: int, name: str, description: str | None) -> Project:
    await ctx.access.require_org(OrgPermission.CREATE_PROJECT, organization_id)
    name = validation.text(name, "name", max_len=validation.NAME_MAX)
    description = validation.text(
        description or "", "description", max_len=validation.DESCRIPTION_MAX, required=False
    )
    async with unit_of_work(ctx) as work:
        await plans.check_project(organization_id, settings=ctx.settings)
        project = await Project.create(
            organization_id=organization_id,
            name=name,
            description=description,
            created_by_id=ctx.access.user_id,
        )
        await ProjectMember.create(project=project, user_id=ctx.access.user_id, role=ProjectRole.OWNER)
        await work.audit(
            AuditAction.PROJECT_CREATE, project.id, organization_id=organization_id,
            after=dump(project),
        )
    await ctx.access.reload()
    return project


async def require(ctx: Context, project_id: int, permission: Permission) -> Project:
    """Load a project the viewer can see (else NOT_FOUND) and check `permission`."""
    project = await ctx.access.project(project_id)
    await ctx.access.require(permission, project)
    return project


async def update_project(
    ctx: Context, project_id: int, *, name: str | None = None, description: str | None = None
) -> Project:
    """Rename or re-describe a project; an omitted (null) field stays as it is."""
    project = await require(ctx, project_id, Permission.MANAGE_PROJECT)
    if project.archived_at is not None:
        raise BadInput("The project is archived", field="projectId")
    changes: dict[str, str] = {}
    if name is not None:
        changes["name"] = validation.text(name, "name", max_len=validation.NAME_MAX)
    if description is not None:
        changes["description"] = validation.text(
            description, "description", max_len=validation.DESCRIPTION_MAX, required=False
        )
    changes = {k: v for k, v in changes.items() if getattr(project, k) != v}
    if not changes:
        return project  # nothing changes, nothing is written
    before = dump(project)
    async with unit_of_work(ctx) as work:
        project.update_from_dict(changes)
        await project.save(update_fields=[*changes, "updated_at"])
        after = dump(project)
        await work.audit(
            AuditAction.PROJECT_UPDATE, project.id, organization_id=project.organization_id,
            before=before, after=after,
        )
        await work.event(project.id, BoardEventType.PROJECT_UPDATED, {"project": after, "changed": list(changes)})
    return project


async def archive_project(ctx: Context, project_id: int) -> Project:
    """Archive a project. Idempotent: archiving an archived project writes nothing."""
    project = await require(ctx, project_id, Permission.ARCHIVE_PROJECT)
    if project.archived_at is not None:
        return project
    before = dump(project)
    now = datetime.now(UTC)
    async with unit_of_work(ctx) as work:
        # Conditional, so that of two concurrent archives only one audits.
        if await Project.filter(id=project.id, archived_at__isnull=True).update(archived_at=now):
            project.archived_at = now
            after = dump(project)
            await work.audit(
                AuditAction.PROJECT_ARCHIVE, project.id,
                organization_id=project.organization_id, before=before, after=after,
            )
            await work.event(project.id, BoardEventType.PROJECT_ARCHIVED, {"project": after})
    return await Project.get(id=project.id)
