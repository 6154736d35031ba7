"""Tasks: reads with filters and ordering, and task creation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from fractional_indexing import generate_key_between

from models import (
    Label,
    OrganizationMember,
    Project,
    Task,
    TaskLabel,
    TaskPriority,
    TaskStatus,
)
from models.enums import PRIORITY_RANK
from resolvers import custom_fields, validation
from resolvers.access import Permission
from resolvers.errors import BadInput, NotFound
from resolvers.pagination import Order, paginate
from resolvers.projects import require as require_project
from resolvers.writes import transaction

ORDERS = {
    "POSITION": "position",
    "CREATED_AT": "created_at",
    "UPDATED_AT": "updated_at",
    "PRIORITY": "priority_rank",
    "TITLE": "title",
}


@dataclass
class TaskFilter:
    status: list[TaskStatus] | None = None
    priority: list[TaskPriority] | None = None
    assignee_ids: list[int] | None = None
    unassigned: bool = False
    label_ids: list[int] | None = None
    search: str | None = None
    due_before: date | None = None
    due_after: date | None = None
    parent_id: int | None = None
    include_archived: bool = False


def snapshot(task: Task) -> dict:
    return {
        "id": task.id,
        "projectId": task.project_id,
        "title": task.title,
        "description": task.description,
        "status": task.status.value,
        "priority": task.priority.value,
        "position": task.position,
        "assigneeId": task.assignee_id,
        "parentId": task.parent_id,
        "dueDate": task.due_date.isoformat() if task.due_date else None,
        "customProperties": task.custom_properties,
        "version": task.version,
        "archivedAt": task.archived_at.isoformat() if task.archived_at else None,
    }


def apply_filter(qs, f: TaskFilter | None):
    f = f or TaskFilter()
    if not f.include_archived:
        qs = qs.filter(archived_at__isnull=True)
    if f.status:
        qs = qs.filter(status__in=f.status)
    if f.priority:
        qs = qs.filter(priority__in=f.priority)
    if f.unassigned:
        qs = qs.filter(assignee_id__isnull=True)
    elif f.assignee_ids:
        qs = qs.filter(assignee_id__in=f.assignee_ids)
    if f.label_ids:
        tagged = TaskLabel.filter(label_id__in=f.label_ids).values_list("task_id", flat=True)
        qs = qs.filter(id__in=tagged)
    if f.search:
        needle = f.search.strip()[:200]
        if needle:
            qs = qs.filter(title__icontains=needle)
    if f.due_before:
        qs = qs.filter(due_date__lt=f.due_before)
    if f.due_after:
        qs = qs.filter(due_date__gt=f.due_after)
    if f.parent_id is not None:
        qs = qs.filter(parent_id=f.parent_id)
    return qs


async def project_tasks(ctx, project: Project, flt, order_by: str, descending: bool, **page):
    qs = apply_filter(Task.filter(project_id=project.id), flt)
    order = Order(((ORDERS[order_by], descending),))
    return await paginate(qs, order, **page)


async def subtasks(ctx, task: Task, **page):
    qs = Task.filter(parent_id=task.id, archived_at__isnull=True)
    return await paginate(qs, Order((("created_at", False),)), **page)


async def comments(ctx, task: Task, **page):
    from models import TaskComment

    qs = TaskComment.filter(task_id=task.id)
    return await paginate(qs, Order((("created_at", False),)), **page)


async def visible_task(ctx, task_id: int) -> Task:
    return await ctx.viewer.task(task_id)


async def check_assignee(project: Project, user_id: int | None, field: str = "assigneeId") -> None:
    if user_id is None:
        return
    if not await OrganizationMember.exists(organization_id=project.organization_id, user_id=user_id):
        raise BadInput("The assignee must be a member of the project's organization", field=field)


async def check_parent(project: Project, parent_id: int | None, field: str = "parentId") -> None:
    if parent_id is None:
        return
    if not await Task.exists(id=parent_id, project_id=project.id):
        raise BadInput("The parent task must be in the same project", field=field)


async def check_labels(project: Project, label_ids: list[int], field: str = "labelIds") -> list[int]:
    label_ids = list(dict.fromkeys(label_ids))
    if len(label_ids) > 50:
        raise BadInput("A task holds at most 50 labels", field=field)
    found = await Label.filter(id__in=label_ids, project_id=project.id).count() if label_ids else 0
    if found != len(label_ids):
        raise BadInput("Labels must belong to the task's project", field=field)
    return label_ids


async def last_position(project_id: int, status: TaskStatus) -> str | None:
    return await (
        Task.filter(project_id=project_id, status=status)
        .order_by("-position", "-id")
        .first()
        .values_list("position", flat=True)
    )


async def create_task(
    ctx,
    project_id: int,
    *,
    title: str,
    description: str | None = None,
    status: TaskStatus = TaskStatus.TODO,
    priority: TaskPriority = TaskPriority.MEDIUM,
    assignee_id: int | None = None,
    parent_id: int | None = None,
    due_date: date | None = None,
    label_ids: list[int] | None = None,
    custom_properties: dict | None = None,
) -> Task:
    project = await require_project(ctx, project_id, Permission.WRITE_TASKS)
    if project.archived_at is not None:
        raise BadInput("The project is archived", field="projectId")
    title = validation.text(title, "title", max_len=validation.TITLE_MAX)
    description = validation.text(
        description or "", "description", max_len=validation.DESCRIPTION_MAX, required=False
    )
    await check_assignee(project, assignee_id)
    await check_parent(project, parent_id)
    label_ids = await check_labels(project, label_ids or [])
    props = await custom_fields.validate(project, custom_properties or {})
    position = generate_key_between(await last_position(project.id, status), None)
    async with transaction(ctx) as tx:
        task = await Task.create(
            project_id=project.id,
            title=title,
            description=description,
            status=status,
            priority=priority,
            priority_rank=PRIORITY_RANK[priority],
            position=position,
            assignee_id=assignee_id,
            created_by_id=ctx.viewer.user_id,
            parent_id=parent_id,
            due_date=due_date,
            custom_properties=props,
        )
        if label_ids:
            await TaskLabel.bulk_create([TaskLabel(task_id=task.id, label_id=l) for l in label_ids])
        after = snapshot(task) | {"labelIds": label_ids}
        await tx.audit("task.create", "Task", task.id, organization_id=project.organization_id, after=after)
        await tx.event(project.id, "TaskCreated", {"taskId": task.id, "task": after})
    return task


async def get_task_or_none(ctx, task_id: int) -> Task | None:
    try:
        return await ctx.viewer.task(task_id)
    except NotFound:
        return None
