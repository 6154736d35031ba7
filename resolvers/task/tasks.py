"""Tasks: reads with filters and ordering, and the task writes (create, update, move,
archive, delete).

Every change to an existing task is one conditional `UPDATE ... WHERE id = ? AND version = ?`
that also bumps the version, so of two writers that read the same version exactly one wins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack

from fractional_indexing import FIError, generate_key_between
from tortoise import timezone
from tortoise.expressions import F, Q, Subquery
from tortoise.queryset import QuerySet

from models import (
    AuditAction,
    BoardEventType,
    Comment,
    Label,
    OrganizationMember,
    Project,
    Task,
    TaskLabel,
    TaskPriority,
    TaskStatus,
    orm,
)
from models.snapshot import dump
from models.task import PRIORITY_RANK
from resolvers import validation
from resolvers.access import Permission
from resolvers.errors import BadInput, Conflict, NotFound
from resolvers.loaders import CountedPage, PageSpec, prime_task_counts, task_count_columns
from resolvers.org import plans
from resolvers.pagination import Order
from resolvers.project import custom_fields
from resolvers.project.projects import require as require_project
from resolvers.rows import TaskRow
from resolvers.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from resolvers.context import Context

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


def apply_filter(qs: QuerySet[Task], f: TaskFilter | None) -> QuerySet[Task]:
    f = f or TaskFilter()
    if not f.include_archived:
        qs = qs.filter(archived_at__isnull=True)
    if f.status:
        qs = qs.filter(status__in=f.status)
    if f.priority:
        qs = qs.filter(priority__in=f.priority)
    # Both together mean "any of these people, or nobody" (e.g. "mine or up for grabs").
    if f.unassigned and f.assignee_ids:
        qs = qs.filter(Q(assignee_id__isnull=True) | Q(assignee_id__in=f.assignee_ids))
    elif f.unassigned:
        qs = qs.filter(assignee_id__isnull=True)
    elif f.assignee_ids:
        qs = qs.filter(assignee_id__in=f.assignee_ids)
    if f.label_ids:
        tagged = TaskLabel.filter(label_id__in=f.label_ids).values("task_id")
        qs = qs.filter(id__in=Subquery(tagged))
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


CREATED_ORDER = Order((("created_at", False),))

# A TaskFilter as (field, value) pairs, lists made tuples: hashable.
FrozenFilter = tuple[tuple[str, Hashable], ...]


@dataclass(frozen=True)
class TaskListVariant:
    """What a project's task list is asked with, as its loader groups lists by: lists asked
    with equal variants share a statement."""

    flt: FrozenFilter
    order_by: str
    descending: bool


def _freeze(flt: TaskFilter | None) -> FrozenFilter:
    """A hashable form of a filter, so lists asked with equal filters share a statement."""
    f = flt or TaskFilter()
    return tuple(
        (k, tuple(v) if isinstance(v, list) else v) for k, v in dataclasses.asdict(f).items()
    )


async def _filtered_tasks(ctx: Context, variant: Hashable) -> QuerySet[Task]:
    assert isinstance(variant, TaskListVariant)  # the variant project_tasks() passed to the loader
    # The filter's fields by name, each of its own type.
    fields: dict[str, Any] = {k: list(v) if isinstance(v, tuple) else v for k, v in variant.flt}
    return apply_filter(Task.all(), TaskFilter(**fields))


def _task_order(variant: Hashable) -> Order:
    assert isinstance(variant, TaskListVariant)
    return Order(((ORDERS[variant.order_by], variant.descending),))


async def _open_subtasks(ctx: Context, variant: Hashable) -> QuerySet[Task]:
    return Task.filter(archived_at__isnull=True)


async def _all_comments(ctx: Context, variant: Hashable) -> QuerySet[Comment]:
    return Comment.all()


PROJECT_TASKS = PageSpec(
    group=("project_id",),
    source=_filtered_tasks,
    order=_task_order,
    extras=task_count_columns,
    on_rows=prime_task_counts,
    row=TaskRow,
)
SUBTASKS = PageSpec(group=("parent_id",), source=_open_subtasks, order=CREATED_ORDER, row=TaskRow)
TASK_COMMENTS = PageSpec(group=("task_id",), source=_all_comments, order=CREATED_ORDER)


async def project_tasks(
    ctx: Context,
    project: Project,
    flt: TaskFilter | None,
    order_by: str,
    descending: bool,
    *,
    load: Iterable[str] = (),
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> CountedPage[Task]:
    """A project's tasks; the relations named in `load` are loaded for the page at once."""
    variant = TaskListVariant(_freeze(flt), order_by, descending)
    result = await ctx.loaders.page(
        ctx, PROJECT_TASKS, (project.id,), variant=variant,
        first=first, after=after, last=last, before=before,
    )
    await ctx.loaders.warm_tasks(result.items, load)
    return result


async def subtasks(
    ctx: Context,
    task: Task,
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> CountedPage[Task]:
    return await ctx.loaders.page(
        ctx, SUBTASKS, (task.id,), first=first, after=after, last=last, before=before
    )


async def comments(
    ctx: Context,
    task: Task,
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> CountedPage[Comment]:
    return await ctx.loaders.page(
        ctx, TASK_COMMENTS, (task.id,), first=first, after=after, last=last, before=before
    )


async def check_assignee(project: Project, user_id: int | None, field: str = "assigneeId") -> None:
    if user_id is None:
        return
    if not await OrganizationMember.exists(
        organization_id=project.organization_id, user_id=user_id
    ):
        raise BadInput("The assignee must be a member of the project's organization", field=field)


async def check_parent(project: Project, parent_id: int | None, field: str = "parentId") -> None:
    if parent_id is None:
        return
    if not await Task.exists(id=parent_id, project_id=project.id):
        raise BadInput("The parent task must be in the same project", field=field)


async def check_labels(
    project: Project, label_ids: list[int], field: str = "labelIds"
) -> list[int]:
    label_ids = list(dict.fromkeys(label_ids))
    if len(label_ids) > 50:
        raise BadInput("A task holds at most 50 labels", field=field)
    found = await Label.filter(id__in=label_ids, project_id=project.id).count() if label_ids else 0
    if found != len(label_ids):
        raise BadInput("Labels must belong to the task's project", field=field)
    return label_ids


def _key_between(a: str | None, b: str | None) -> str:
    """fractional_indexing's rank strictly between `a` and `b` (None: an open end); FIError
    when there is none. The library has no type information: its keys are str."""
    key: str = generate_key_between(a, b)
    return key


def _column(project_id: int, status: TaskStatus, exclude_id: int | None) -> QuerySet[Task]:
    # Archived tasks keep their rank, so they count as neighbours: a new key never collides
    # with the rank a task gets back when it is unarchived.
    qs = Task.filter(project_id=project_id, status=status)
    return qs.exclude(id=exclude_id) if exclude_id is not None else qs


async def last_position(
    project_id: int, status: TaskStatus, exclude_id: int | None = None
) -> str | None:
    position: str | None = await orm.first_value(
        _column(project_id, status, exclude_id).order_by("-position", "-id"), "position"
    )
    return position


async def create_task(
    ctx: Context,
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
    custom_properties: object = None,
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
    async with unit_of_work(ctx) as work:
        # The bottom of the column is read under the project's row lock (PostgreSQL; SQLite
        # writes are serial), so two tasks created at once never get the same rank.
        await work.lock_project(project.id)
        await plans.check_task(project.id, project.organization_id, settings=ctx.settings)
        position = _key_between(await last_position(project.id, status), None)
        task = await Task.create(
            project_id=project.id,
            title=title,
            description=description,
            status=status,
            priority=priority,
            priority_rank=PRIORITY_RANK[priority],
            position=position,
            assignee_id=assignee_id,
            created_by_id=ctx.access.user_id,
            parent_id=parent_id,
            due_date=due_date,
            custom_properties=props,
        )
        if label_ids:
            await TaskLabel.bulk_create([TaskLabel(task_id=task.id, label_id=lid) for lid in label_ids])
        after = dump(task) | {"labelIds": label_ids}
        await work.audit(
            AuditAction.TASK_CREATE, task.id, organization_id=project.organization_id, after=after
        )
        await work.event(project.id, BoardEventType.TASK_CREATED, {"taskId": task.id, "task": after})
    return task


async def get_task_or_none(ctx: Context, task_id: int) -> Task | None:
    try:
        return await ctx.access.task(task_id)
    except NotFound:
        return None


# -- changing existing tasks ---------------------------------------------------------------

_ATTEMPTS = 5
MAX_DEPTH = 100

class TaskChanges(TypedDict, total=False):
    """The fields an update changes: the ones the client sent (None means null). Values are
    checked again (a client's JSON reaches here as it was sent)."""

    title: str | None
    description: str | None
    priority: TaskPriority | None
    status: TaskStatus | None
    assignee_id: int | None
    due_date: date | None
    parent_id: int | None
    label_ids: list[int] | None
    custom_properties: object


# Python argument → GraphQL input field: the names in `changed` lists and error fields.
UPDATABLE = {
    "title": "title",
    "description": "description",
    "priority": "priority",
    "status": "status",
    "assignee_id": "assigneeId",
    "due_date": "dueDate",
    "parent_id": "parentId",
    "label_ids": "labelIds",
    "custom_properties": "customProperties",
}


@dataclass
class _Write:
    """What one versioned write changes, decided before its transaction opens."""

    columns: dict[str, Any]  # column values by name, as Tortoise's update() takes them
    action: AuditAction
    event: BoardEventType
    payload: dict[str, Any] = dataclasses.field(default_factory=dict)
    label_ids: list[int] | None = None  # the task's new label set, when it changes
    # Recomputes the rank under the project's row lock, inside the transaction: a rank
    # planned outside it could equal the one a concurrent writer takes for the same slot.
    place: Callable[[], Awaitable[str]] | None = None


class _Stale(Exception):
    """The conditional UPDATE matched no row: the task changed or went since it was read."""


def _conflict(current_version: int) -> Conflict:
    return Conflict(
        "The task was changed by someone else; reload it and try again",
        currentVersion=current_version,
    )


async def label_ids_of(task_id: int) -> list[int]:
    ids: list[int] = await orm.column_values(TaskLabel.filter(task_id=task_id), "label_id")
    return sorted(ids)


async def writable_task(ctx: Context, task_id: int, permission: Permission) -> Task:
    """A task the viewer may see (else NOT_FOUND) and holds `permission` on, in an open project."""
    task = await ctx.access.task(task_id)
    await ctx.access.require(permission, task.project)
    if task.project.archived_at is not None:
        raise BadInput("The project is archived; its tasks are read-only")
    return task


Plan = Callable[[Task, list[int]], Awaitable[_Write | None]]


async def _versioned_write(
    ctx: Context, task_id: int, expected_version: int | None, permission: Permission, plan: Plan
) -> Task:
    """Read, plan, then write only if nobody wrote in between.

    With `expected_version` a lost race is the caller's CONFLICT. Without it the caller asked
    for no check, so the write is planned again from the fresh row (a few times at most) rather
    than applied on top of values it never saw.
    """
    for _ in range(_ATTEMPTS):
        task = await writable_task(ctx, task_id, permission)
        if expected_version is not None and task.version != expected_version:
            raise _conflict(task.version)
        labels = await label_ids_of(task.id)
        write = await plan(task, labels)
        if write is None:
            return task
        try:
            return await _commit(ctx, task, labels, write)
        except _Stale:
            if expected_version is not None:
                current: int | None = await orm.first_value(Task.filter(id=task_id), "version")
                if current is None:
                    raise NotFound("Task") from None
                raise _conflict(current) from None
    raise Conflict("The task kept changing while saving; try again")


async def _commit(ctx: Context, task: Task, labels_before: list[int], write: _Write) -> Task:
    project = task.project
    async with unit_of_work(ctx) as work:
        await work.lock_project(project.id)
        if write.place is not None:
            write.columns["position"] = await write.place()
            if "position" in write.payload:
                write.payload["position"] = write.columns["position"]
        matched = await Task.filter(id=task.id, version=task.version).update(
            **write.columns, version=F("version") + 1, updated_at=timezone.now()
        )
        if matched != 1:
            raise _Stale()
        labels_after = labels_before
        if write.label_ids is not None:
            labels_after = await _replace_labels(task.id, labels_before, write.label_ids)
        fresh = await Task.get(id=task.id)
        before = dump(task) | {"labelIds": labels_before}
        after = dump(fresh) | {"labelIds": labels_after}
        await work.audit(
            write.action, task.id, organization_id=project.organization_id, before=before, after=after
        )
        await work.event(project.id, write.event, {"taskId": task.id, **write.payload, "task": after})
    return fresh


async def _replace_labels(task_id: int, current: list[int], wanted: list[int]) -> list[int]:
    keep = set(current)
    if drop := keep - set(wanted):
        await TaskLabel.filter(task_id=task_id, label_id__in=drop).delete()
    if add := [lid for lid in wanted if lid not in keep]:
        await TaskLabel.bulk_create([TaskLabel(task_id=task_id, label_id=lid) for lid in add])
    return sorted(wanted)


async def check_no_cycle(task_id: int, parent_id: int | None, field: str = "parentId") -> None:
    """Walk up from the new parent: meeting the task itself would close a loop."""
    current, depth = parent_id, 0
    while current is not None:
        if current == task_id:
            raise BadInput("A task cannot become its own ancestor", field=field)
        depth += 1
        if depth > MAX_DEPTH:
            raise BadInput(f"Subtasks nest at most {MAX_DEPTH} levels deep", field=field)
        current = await orm.first_value(Task.filter(id=current), "parent_id")


async def update_task(
    ctx: Context, task_id: int, *, expected_version: int | None = None, **changes: Unpack[TaskChanges]
) -> Task:
    """Change exactly the fields in `changes` (the ones the client sent; None means null)."""
    if unknown := set(changes) - UPDATABLE.keys():
        raise TypeError(f"not updatable: {sorted(unknown)}")

    async def plan(task: Task, labels: list[int]) -> _Write | None:
        return await _plan_update(task, labels, changes)

    return await _versioned_write(ctx, task_id, expected_version, Permission.WRITE_TASKS, plan)


async def _plan_update(task: Task, labels: list[int], changes: TaskChanges) -> _Write | None:
    if task.archived_at is not None:
        raise BadInput("The task is archived; unarchive it to change it", field="id")
    project = task.project
    columns: dict[str, Any] = {}
    changed: list[str] = []

    def put(name: str, value: object, **also: object) -> None:
        if getattr(task, name) != value:
            columns[name] = value
            columns.update(also)
            changed.append(UPDATABLE[name])

    required: tuple[Literal["title", "priority", "status"], ...] = ("title", "priority", "status")
    for name in required:
        if name in changes and changes[name] is None:
            raise BadInput(f"`{name}` cannot be null", field=name)
    # Sent, these three are not None (refused just above).
    if (title := changes.get("title")) is not None:
        put("title", validation.text(title, "title", max_len=validation.TITLE_MAX))
    if "description" in changes:
        description = changes["description"] or ""
        put(
            "description",
            validation.text(
                description, "description", max_len=validation.DESCRIPTION_MAX, required=False
            ),
        )
    if (priority := changes.get("priority")) is not None:
        put("priority", priority, priority_rank=PRIORITY_RANK[priority])
    if (status := changes.get("status")) is not None and status != task.status:
        # A column change through updateTask lands at the bottom, like a new task.
        bottom = _key_between(await last_position(project.id, status), None)
        put("status", status, position=bottom)
    if "due_date" in changes:
        put("due_date", changes["due_date"])
    if "assignee_id" in changes:
        await check_assignee(project, changes["assignee_id"])
        put("assignee_id", changes["assignee_id"])
    if "parent_id" in changes:
        await check_parent(project, changes["parent_id"])
        await check_no_cycle(task.id, changes["parent_id"])
        put("parent_id", changes["parent_id"])
    if "custom_properties" in changes:
        values = changes["custom_properties"]
        if values is None:
            raise BadInput(
                "`customProperties` must be an object; set a key to null to remove it",
                field="customProperties",
            )
        put(
            "custom_properties",
            await custom_fields.validate(project, values, existing=task.custom_properties),
        )
    label_ids = None
    if "label_ids" in changes:
        wanted = await check_labels(project, changes["label_ids"] or [])
        if set(wanted) != set(labels):
            label_ids = wanted
            changed.append("labelIds")
    if not changed:
        return None
    place = None
    if "position" in columns:  # a column change: the bottom is read again under the lock
        column: TaskStatus = columns["status"]

        async def place() -> str:
            return _key_between(await last_position(project.id, column, task.id), None)

    return _Write(columns, AuditAction.TASK_UPDATE, BoardEventType.TASK_UPDATED, {"changed": changed}, label_ids, place)


async def move_task(
    ctx: Context,
    task_id: int,
    *,
    status: TaskStatus,
    after_id: int | None = None,
    before_id: int | None = None,
    expected_version: int | None = None,
) -> Task:
    """Put a task between two neighbours of a column; only the moved row is written."""
    for name, neighbour in (("afterId", after_id), ("beforeId", before_id)):
        if neighbour == task_id:
            raise BadInput("A task cannot be placed next to itself", field=name)

    async def plan(task: Task, labels: list[int]) -> _Write:
        if task.archived_at is not None:
            raise BadInput("The task is archived; unarchive it to move it", field="id")
        position = await _slot(task, status, after_id, before_id)  # validates early
        return _Write(
            {"status": status, "position": position},
            AuditAction.TASK_MOVE,
            BoardEventType.TASK_MOVED,
            {"fromStatus": task.status.value, "toStatus": status.value, "position": position},
            place=lambda: _slot(task, status, after_id, before_id),
        )

    return await _versioned_write(ctx, task_id, expected_version, Permission.WRITE_TASKS, plan)


async def _neighbour(task: Task, neighbour_id: int | None, status: TaskStatus, field: str) -> str | None:
    if neighbour_id is None:
        return None
    # Scoped to the task's project: a task elsewhere, visible or not, is simply not a neighbour.
    row = await Task.get_or_none(id=neighbour_id, project_id=task.project_id)
    if row is None:
        raise BadInput(f"`{field}` must be a task of the same project", field=field)
    if row.status != status or row.archived_at is not None:
        raise BadInput(
            f"`{field}` must be an open task in the target column ({status.name})", field=field
        )
    return row.position


async def _slot(task: Task, status: TaskStatus, after_id: int | None, before_id: int | None) -> str:
    """The rank between the requested neighbours; a neighbour not given is the next task over."""
    after = await _neighbour(task, after_id, status, "afterId")
    before = await _neighbour(task, before_id, status, "beforeId")
    column = _column(task.project_id, status, task.id)
    if after is not None and before is not None:
        if after >= before:
            raise BadInput("`afterId` must sit above `beforeId` in the column", field="beforeId")
        # Someone may have put a task between them since the client looked (or is doing so
        # right now): the moved task goes directly below `afterId`, as asked.
        closer: str | None = await orm.first_value(
            column.filter(position__gt=after, position__lt=before).order_by("position", "id"),
            "position",
        )
        before = closer or before
    elif after is not None:
        before = await orm.first_value(
            column.filter(position__gt=after).order_by("position", "id"), "position"
        )
    elif before is not None:
        after = await orm.first_value(
            column.filter(position__lt=before).order_by("-position", "-id"), "position"
        )
    else:
        after = await last_position(task.project_id, status, task.id)
    try:
        return _key_between(after, before)
    except FIError:
        raise BadInput("These neighbours leave no room for the task", field="afterId") from None


async def archive_task(ctx: Context, task_id: int, expected_version: int | None = None) -> Task:
    """Take a task off the board; archiving an archived task changes nothing."""

    async def plan(task: Task, labels: list[int]) -> _Write | None:
        if task.archived_at is not None:
            return None
        return _Write({"archived_at": timezone.now()}, AuditAction.TASK_ARCHIVE, BoardEventType.TASK_ARCHIVED)

    return await _versioned_write(ctx, task_id, expected_version, Permission.WRITE_TASKS, plan)


async def unarchive_task(ctx: Context, task_id: int, expected_version: int | None = None) -> Task:
    """Put an archived task back on the board at the rank it had."""

    async def plan(task: Task, labels: list[int]) -> _Write | None:
        if task.archived_at is None:
            return None
        return _Write({"archived_at": None}, AuditAction.TASK_UNARCHIVE, BoardEventType.TASK_UNARCHIVED)

    return await _versioned_write(ctx, task_id, expected_version, Permission.WRITE_TASKS, plan)


async def delete_task(ctx: Context, task_id: int) -> int:
    """Delete a task with its comments and label links; its subtasks become top-level tasks."""
    task = await writable_task(ctx, task_id, Permission.DELETE_TASKS)
    before = dump(task) | {"labelIds": await label_ids_of(task.id)}
    async with unit_of_work(ctx) as work:
        await work.lock_project(task.project_id)
        subtask_ids: list[int] = sorted(await orm.column_values(Task.filter(parent_id=task.id), "id"))
        if subtask_ids:
            # The foreign key would null the parent too; doing it here bumps their versions,
            # so a client holding a subtask's old version learns that it changed.
            await Task.filter(id__in=subtask_ids).update(
                parent_id=None, version=F("version") + 1, updated_at=timezone.now()
            )
        if not await Task.filter(id=task.id).delete():
            raise NotFound("Task")
        await work.audit(
            AuditAction.TASK_DELETE, task.id,
            organization_id=task.project.organization_id,
            before=before,
        )
        await work.event(
            task.project_id,
            BoardEventType.TASK_DELETED,
            {"taskId": task.id, "status": task.status.value, "detachedSubtaskIds": subtask_ids},
        )
    return task.id
