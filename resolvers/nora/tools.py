"""NORA's tools. Each acts through the same resolvers as the GraphQL mutations, with the
asking user's viewer: the same access checks, validation, audit entries and board events.
A viewer's NORA gets FORBIDDEN from create_task exactly as the viewer would.

Tools take human references (a task's title or ID, a person's name, email or "me") and
return plain JSON-able data; failures raise AppError and become `{"ok": false, "error"}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from tortoise.expressions import Subquery
from tortoise.functions import Count
from tortoise.queryset import QuerySet

from models import (
    NoraConversation,
    OrganizationMember,
    Project,
    Task,
    TaskLabel,
    TaskPriority,
    TaskStatus,
)
from resolvers.errors import AppError, BadInput, NotFound
from resolvers.ids import parse_global_id, to_global_id
from resolvers.task import comments as comment_resolvers
from resolvers.task import tasks as task_resolvers

if TYPE_CHECKING:
    from resolvers.context import Context

OPEN = (TaskStatus.TODO, TaskStatus.INPROGRESS, TaskStatus.INREVIEW)
BLOCKED_LABEL = "blocked"
SEARCH_DEFAULT, SEARCH_MAX = 10, 25

E = TypeVar("E", bound=Enum)


class Ambiguous(AppError):
    code = "AMBIGUOUS"


_TASK_REF = {"type": "string", "description": "The task's ID, or its title (or a unique part of it)."}
_STATUS = {"type": "string", "enum": [s.value for s in TaskStatus]}
_PRIORITY = {"type": "string", "enum": [p.value for p in TaskPriority]}


def _tool(name: str, description: str, properties: dict[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": list(required)},
        },
    }


SCHEMAS = [
    _tool(
        "search_tasks",
        "Find tasks on the board(s) of this conversation. All filters are optional and combine.",
        {
            "query": {"type": "string", "description": "Text in the title."},
            "status": _STATUS,
            "priority": _PRIORITY,
            "assignee": {"type": "string", "description": "A name, an email, or \"me\"."},
            "overdue": {"type": "boolean", "description": "Open tasks whose due date has passed."},
            "label": {"type": "string", "description": "A label name, e.g. \"blocked\"."},
            "limit": {"type": "integer", "minimum": 1, "maximum": SEARCH_MAX},
        },
    ),
    _tool("get_task", "One task with its details.", {"task": _TASK_REF}, ["task"]),
    _tool(
        "create_task",
        "Create a task at the bottom of its column.",
        {
            "title": {"type": "string"},
            "description": {"type": "string"},
            "status": _STATUS,
            "priority": _PRIORITY,
            "assignee": {"type": "string", "description": "A name, an email, or \"me\"."},
            "dueDate": {"type": "string", "description": "YYYY-MM-DD, today or tomorrow."},
            "project": {"type": "string", "description": "Project name or ID, when the conversation has none."},
        },
        ["title"],
    ),
    _tool(
        "update_task",
        "Change a task's status, assignee, priority or due date.",
        {
            "task": _TASK_REF,
            "status": _STATUS,
            "assignee": {"type": "string", "description": "A name, an email, \"me\", or \"nobody\"."},
            "priority": _PRIORITY,
            "dueDate": {"type": ["string", "null"], "description": "YYYY-MM-DD, or null to clear."},
        },
        ["task"],
    ),
    _tool(
        "add_comment",
        "Comment on a task.",
        {"task": _TASK_REF, "body": {"type": "string"}},
        ["task", "body"],
    ),
    _tool(
        "summarize_board",
        "Counts per column, overdue, unassigned and blocked tasks of the conversation's project "
        "(or of every project in the organization).",
        {"project": {"type": "string", "description": "Project name or ID (optional)."}},
    ),
    _tool("list_members", "The people of the organization, with their roles.", {}),
]
NAMES = frozenset(s["function"]["name"] for s in SCHEMAS)


async def run(ctx: Context, conversation: NoraConversation, name: str, args: object) -> dict[str, Any]:
    """`args`: the model's JSON arguments, whatever they decoded to."""
    if name not in NAMES:
        raise BadInput(f"There is no tool called {name!r}", field="name")
    if not isinstance(args, dict):
        raise BadInput("Tool arguments must be a JSON object", field="arguments")
    return await _TOOLS[name](ctx, conversation, args)


# -- argument helpers --------------------------------------------------------------------------


def _text(args: dict[str, Any], key: str, *, max_len: int = 500) -> str | None:
    value = args.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise BadInput(f"`{key}` must be a string", field=key)
    return value.strip()[:max_len]


def _required_text(args: dict[str, Any], key: str, *, max_len: int = 500) -> str:
    value = _text(args, key, max_len=max_len)
    if value is None:
        raise BadInput(f"`{key}` is required", field=key)
    return value


def _enum(enum: type[E], args: dict[str, Any], key: str) -> E | None:
    value = _text(args, key)
    if value is None:
        return None
    try:
        return enum(value.lower().replace(" ", "").replace("_", ""))
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise BadInput(f"`{key}` must be one of {allowed}", field=key) from None


def _due(value: object) -> date | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return None
    if not isinstance(value, str):
        raise BadInput("`dueDate` must be YYYY-MM-DD", field="dueDate")
    today = datetime.now(UTC).date()
    word = value.strip().lower()
    if word == "today":
        return today
    if word == "tomorrow":
        return today + timedelta(days=1)
    try:
        return date.fromisoformat(word)
    except ValueError:
        raise BadInput("`dueDate` must be YYYY-MM-DD", field="dueDate") from None


# -- lookups, all through the viewer ------------------------------------------------------------


async def _tasks_here(ctx: Context, conversation: NoraConversation) -> QuerySet[Task]:
    qs = (await ctx.access.tasks()).filter(
        project__organization_id=conversation.organization_id,
        project__archived_at__isnull=True,
        archived_at__isnull=True,
    )
    if conversation.project_id is not None:
        qs = qs.filter(project_id=conversation.project_id)
    return qs


async def _find_task(ctx: Context, conversation: NoraConversation, ref: str) -> Task:
    try:
        type_name, pk = parse_global_id(ref)
    except BadInput:
        type_name, pk = None, None
    qs = await _tasks_here(ctx, conversation)
    if type_name == "Task":
        task = await qs.get_or_none(id=pk)
        if task is None:
            raise NotFound("Task")
        return task
    exact = await qs.filter(title__iexact=ref).order_by("id").limit(6)
    matches = exact or await qs.filter(title__icontains=ref).order_by("id").limit(6)
    if not matches:
        raise NotFound("Task")
    if len(matches) > 1:
        raise Ambiguous(
            f"{len(matches) if len(matches) < 6 else 'Several'} tasks match \"{ref}\".",
            candidates=[t.title for t in matches],
        )
    return matches[0]


async def _find_user(ctx: Context, conversation: NoraConversation, who: str) -> int | None:
    word = who.strip().lower()
    if word in ("me", "myself", "i"):
        return ctx.access.user_id
    if word in ("nobody", "no one", "noone", "none", "unassigned"):
        return None
    scoped: QuerySet[OrganizationMember] = await ctx.access.org_scoped(OrganizationMember)
    members = scoped.filter(organization_id=conversation.organization_id)
    for lookup in ({"user__email__iexact": word}, {"user__name__iexact": word}, {"user__name__istartswith": word}):
        found = await members.filter(**lookup).select_related("user").limit(6)
        if len(found) == 1:
            return found[0].user_id
        if len(found) > 1:
            raise Ambiguous(
                f"Several people match \"{who}\".",
                candidates=[f"{m.user.name} <{m.user.email}>" for m in found],
            )
    raise BadInput(f"Nobody called \"{who}\" is a member of this organization", field="assignee")


async def _projects_here(ctx: Context, conversation: NoraConversation) -> list[Project]:
    qs = (await ctx.access.projects()).filter(
        organization_id=conversation.organization_id, archived_at__isnull=True
    )
    return list(await qs.order_by("name", "id"))


async def _project(ctx: Context, conversation: NoraConversation, ref: str | None) -> Project:
    if ref is None and conversation.project_id is not None:
        return await ctx.access.project(conversation.project_id)
    projects = await _projects_here(ctx, conversation)
    if ref is not None:
        wanted = [p for p in projects if p.name.lower() == ref.lower() or to_global_id("Project", p.id) == ref]
        if not wanted:
            raise NotFound("Project")
        return wanted[0]
    if len(projects) == 1:
        return projects[0]
    if not projects:
        raise NotFound("Project")
    raise Ambiguous("Which project?", candidates=[p.name for p in projects])


def _task_data(task: Task, assignee: str | None, project: str) -> dict[str, Any]:
    return {
        "id": to_global_id("Task", task.id),
        "title": task.title,
        "status": task.status.value,
        "priority": task.priority.value,
        "assignee": assignee,
        "dueDate": task.due_date.isoformat() if task.due_date else None,
        "project": project,
        "version": task.version,
    }


async def _describe(task: Task) -> dict[str, Any]:
    row = await Task.get(id=task.id).select_related("project", "assignee")
    return _task_data(row, row.assignee.name if row.assignee is not None else None, row.project.name)


# -- the tools ----------------------------------------------------------------------------------


async def search_tasks(ctx: Context, conversation: NoraConversation, args: dict[str, Any]) -> dict[str, Any]:
    qs = await _tasks_here(ctx, conversation)
    if query := _text(args, "query", max_len=200):
        qs = qs.filter(title__icontains=query)
    if status := _enum(TaskStatus, args, "status"):
        qs = qs.filter(status=status)
    if priority := _enum(TaskPriority, args, "priority"):
        qs = qs.filter(priority=priority)
    if who := _text(args, "assignee"):
        user_id = await _find_user(ctx, conversation, who)
        qs = qs.filter(assignee_id=user_id) if user_id is not None else qs.filter(assignee_id__isnull=True)
        if status is None:
            qs = qs.filter(status__in=OPEN)
    order = ("priority_rank", "position", "id")
    if args.get("overdue"):
        qs = qs.filter(status__in=OPEN, due_date__lt=datetime.now(UTC).date())
        order = ("due_date", "priority_rank", "id")
    if label := _text(args, "label", max_len=50):
        tagged = TaskLabel.filter(label__name__iexact=label).values("task_id")
        qs = qs.filter(id__in=Subquery(tagged))
        if status is None:
            qs = qs.filter(status__in=OPEN)
    asked = args.get("limit")
    limit = max(1, min(asked if isinstance(asked, int) else SEARCH_DEFAULT, SEARCH_MAX))
    total = await qs.count()
    rows = await qs.order_by(*order).limit(limit).select_related("project", "assignee")
    tasks = [_task_data(t, t.assignee.name if t.assignee is not None else None, t.project.name) for t in rows]
    return {"tasks": tasks, "total": total}


async def get_task(ctx: Context, conversation: NoraConversation, args: dict[str, Any]) -> dict[str, Any]:
    task = await _find_task(ctx, conversation, _required_text(args, "task"))
    data = await _describe(task)
    labels = await TaskLabel.filter(task_id=task.id).select_related("label").order_by("label__name")
    data["labels"] = [link.label.name for link in labels]
    data["description"] = task.description[:1000]
    data["commentCount"] = await task.comments.all().count()
    return {"task": data}


async def create_task(ctx: Context, conversation: NoraConversation, args: dict[str, Any]) -> dict[str, Any]:
    title = _required_text(args, "title", max_len=10_000)
    project = await _project(ctx, conversation, _text(args, "project", max_len=200))
    assignee = _text(args, "assignee")
    task = await task_resolvers.create_task(
        ctx,
        project.id,
        title=title,
        description=_text(args, "description", max_len=50_000),
        status=_enum(TaskStatus, args, "status") or TaskStatus.TODO,
        priority=_enum(TaskPriority, args, "priority") or TaskPriority.MEDIUM,
        assignee_id=await _find_user(ctx, conversation, assignee) if assignee else None,
        due_date=_due(args.get("dueDate")),
    )
    return {"task": await _describe(task)}


async def update_task(ctx: Context, conversation: NoraConversation, args: dict[str, Any]) -> dict[str, Any]:
    task = await _find_task(ctx, conversation, _required_text(args, "task"))
    changes: task_resolvers.TaskChanges = {}
    if status := _enum(TaskStatus, args, "status"):
        changes["status"] = status
    if priority := _enum(TaskPriority, args, "priority"):
        changes["priority"] = priority
    if (who := _text(args, "assignee")) is not None:
        changes["assignee_id"] = await _find_user(ctx, conversation, who)
    if "dueDate" in args:
        changes["due_date"] = _due(args["dueDate"])
    if not changes:
        raise BadInput("Say what to change: status, assignee, priority or dueDate", field="task")
    updated = await task_resolvers.update_task(ctx, task.id, **changes)
    changed = [
        task_resolvers.UPDATABLE[name] for name in changes if getattr(task, name) != getattr(updated, name)
    ]
    return {"task": await _describe(updated), "changed": changed}


async def add_comment(ctx: Context, conversation: NoraConversation, args: dict[str, Any]) -> dict[str, Any]:
    task = await _find_task(ctx, conversation, _required_text(args, "task"))
    comment, task = await comment_resolvers.add_comment(
        ctx, task.id, _required_text(args, "body", max_len=10_000)
    )
    return {"commentId": to_global_id("Comment", comment.id), "task": await _describe(task)}


async def summarize_board(ctx: Context, conversation: NoraConversation, args: dict[str, Any]) -> dict[str, Any]:
    ref = _text(args, "project", max_len=200)
    if ref is not None or conversation.project_id is not None:
        projects = [await _project(ctx, conversation, ref)]
    else:
        projects = await _projects_here(ctx, conversation)
    today = datetime.now(UTC).date()
    summaries = []
    for project in projects[:10]:
        live = Task.filter(project_id=project.id, archived_at__isnull=True)
        # Keyed by the status as the dialect returns it (enum or its value).
        counts: dict[TaskStatus | str, int] = dict(
            await live.annotate(n=Count("id")).group_by("status").values_list("status", "n")
        )
        columns = {s.value: counts.get(s, counts.get(s.value, 0)) for s in TaskStatus}
        open_ = live.filter(status__in=OPEN)
        blocked = TaskLabel.filter(label__name__iexact=BLOCKED_LABEL).values("task_id")
        summaries.append(
            {
                "id": to_global_id("Project", project.id),
                "name": project.name,
                "columns": columns,
                "open": sum(columns[s.value] for s in OPEN),
                "overdue": await open_.filter(due_date__lt=today).count(),
                "unassigned": await open_.filter(assignee_id__isnull=True).count(),
                "blocked": await open_.filter(id__in=Subquery(blocked)).count(),
            }
        )
    return {"projects": summaries}


async def list_members(ctx: Context, conversation: NoraConversation, args: dict[str, Any]) -> dict[str, Any]:
    scoped: QuerySet[OrganizationMember] = await ctx.access.org_scoped(OrganizationMember)
    members = scoped.filter(organization_id=conversation.organization_id)
    rows = await members.select_related("user").order_by("user__name", "id").limit(100)
    return {
        "members": [
            {"id": to_global_id("User", m.user_id), "name": m.user.name, "email": m.user.email, "role": m.role.value}
            for m in rows
        ]
    }


_TOOLS = {
    "search_tasks": search_tasks,
    "get_task": get_task,
    "create_task": create_task,
    "update_task": update_task,
    "add_comment": add_comment,
    "summarize_board": summarize_board,
    "list_members": list_members,
}
