"""Arrangement and assertion helpers shared by the task, move, comment/label/field and
concurrency tests. Rows are arranged directly; everything under test goes over HTTP."""

from __future__ import annotations

from dataclasses import dataclass

from fractional_indexing import generate_key_between

from models import (
    AuditEntry,
    BoardEvent,
    Comment,
    CustomFieldDefinition,
    Label,
    Organization,
    OrgRole,
    Project,
    ProjectRole,
    Task,
    TaskLabel,
    TaskPriority,
    TaskStatus,
)
from models.task import PRIORITY_RANK
from tests.conftest import Actor, gid

TASK_FIELDS = """
    id title description status priority position version dueDate archivedAt customProperties
    assignee { id } parent { id } labels { id name }
"""


def _task_mutation(name: str, input_type: str) -> str:
    return f"mutation($i: {input_type}!) {{ {name}(input: $i) {{ task {{ {TASK_FIELDS} }} }} }}"


UPDATE = _task_mutation("updateTask", "UpdateTaskInput")
MOVE = _task_mutation("moveTask", "MoveTaskInput")
ARCHIVE = _task_mutation("archiveTask", "ArchiveTaskInput")
UNARCHIVE = _task_mutation("unarchiveTask", "UnarchiveTaskInput")
DELETE = """mutation($i: DeleteTaskInput!) { deleteTask(input: $i) { deletedTaskId } }"""
ADD_COMMENT = """mutation($i: AddCommentInput!) {
    addComment(input: $i) {
        comment { id body author { id } task { id } }
        task { id commentCount comments { totalCount nodes { id body } } }
    }
}"""
CREATE_LABEL = """mutation($i: CreateLabelInput!) {
    createLabel(input: $i) { label { id name color project { id } } }
}"""
DEFINE_FIELD = """mutation($i: DefineCustomFieldInput!) {
    defineCustomField(input: $i) { field { id key name type options required } }
}"""


@dataclass
class Team:
    """One organization with one project and a member of each project role."""

    org: Organization
    project: Project
    owner: Actor
    admin: Actor
    editor: Actor
    viewer: Actor

    @property
    def project_gid(self) -> str:
        return gid("Project", self.project.id)


async def team(factory) -> Team:
    owner = await factory.user("Owner")
    org = await factory.org(owner)
    project = await factory.project(org, owner)
    actors = {}
    for role in (ProjectRole.ADMIN, ProjectRole.EDITOR, ProjectRole.VIEWER):
        actor = await factory.user(role.value.title())
        await factory.org_member(org, actor, OrgRole.MEMBER)
        await factory.project_member(project, actor, role)
        actors[role.value] = actor
    return Team(org=org, project=project, owner=owner, **actors)


async def make_task(
    project: Project,
    creator: Actor,
    title: str = "Task",
    *,
    status: TaskStatus = TaskStatus.TODO,
    priority: TaskPriority = TaskPriority.MEDIUM,
    labels: list[Label] = (),
    **fields,
) -> Task:
    """A task at the bottom of its column, as createTask would place it."""
    last = await (
        Task.filter(project_id=project.id, status=status)
        .order_by("-position")
        .first()
        .values_list("position", flat=True)
    )
    task = await Task.create(
        project=project,
        title=title,
        status=status,
        priority=priority,
        priority_rank=PRIORITY_RANK[priority],
        position=generate_key_between(last, None),
        created_by=creator.user,
        **fields,
    )
    for label in labels:
        await TaskLabel.create(task=task, label=label)
    return task


def tid(task: Task) -> str:
    return gid("Task", task.id)


_COUNTED = (Task, AuditEntry, BoardEvent, TaskLabel, Comment, Label, CustomFieldDefinition)


async def state() -> dict:
    """Row counts of everything a task mutation may write, plus every task row's values."""
    counts = {m.__name__: await m.all().count() for m in _COUNTED}
    tasks = (
        await Task.all()
        .order_by("id")
        .values(
            "id",
            "title",
            "description",
            "status",
            "priority",
            "position",
            "version",
            "assignee_id",
            "parent_id",
            "due_date",
            "custom_properties",
            "archived_at",
        )
    )
    return {"counts": counts, "tasks": tasks}


async def rejected(
    gql, query: str, variables: dict, token: str, code: str, field: str | None = None
):
    """The call fails with `code` (and `field`, if given) and writes nothing at all."""
    before = await state()
    error = await gql.error(query, variables, token=token)
    assert error["extensions"]["code"] == code, error
    if field is not None:
        assert error["extensions"].get("field") == field, error
    assert await state() == before
    return error


async def events(project: Project) -> list[BoardEvent]:
    return list(await BoardEvent.filter(project_id=project.id).order_by("seq"))


async def audits(action: str | None = None) -> list[AuditEntry]:
    qs = AuditEntry.all().order_by("id")
    return list(await (qs.filter(action=action) if action else qs))


def assert_dense(evts: list[BoardEvent]) -> None:
    assert [e.seq for e in evts] == list(range(1, len(evts) + 1))
