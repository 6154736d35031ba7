"""Tasks, comments and labels: types, inputs and task mutations."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from models import Label as LabelModel
from models import Task as TaskModel
from models import TaskComment as CommentModel
from resolvers import tasks as task_resolvers
from resolvers.ids import decode_id, decode_optional, to_global_id
from resolvers.tasks import TaskFilter as TaskFilterData
from schema.common import Connection, Node, TaskPriority, TaskStatus, ctx, model_type_check

if TYPE_CHECKING:
    from schema.projects import Project
    from schema.users import User

ProjectRef = Annotated["Project", strawberry.lazy("schema.projects")]
UserRef = Annotated["User", strawberry.lazy("schema.users")]


@strawberry.type(description="A label that can be put on tasks of one project.")
class Label(Node):
    is_type_of = model_type_check(LabelModel)
    name: str
    color: str
    created_at: datetime

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Label", self.id))

    @strawberry.field
    async def project(self, info: Info) -> ProjectRef:
        return await ctx(info).loaders.project.load(self.project_id)


@strawberry.type(description="A comment on a task.")
class Comment(Node):
    is_type_of = model_type_check(CommentModel)
    body: str
    created_at: datetime
    updated_at: datetime

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Comment", self.id))

    @strawberry.field
    async def author(self, info: Info) -> UserRef:
        return await ctx(info).loaders.user.load(self.author_id)

    @strawberry.field
    async def task(self, info: Info) -> Task:
        return await ctx(info).loaders.task.load(self.task_id)


@strawberry.type
class CommentConnection(Connection[Comment]):
    pass


@strawberry.type(description="A unit of work on a project's board.")
class Task(Node):
    is_type_of = model_type_check(TaskModel)
    title: str
    description: str
    status: TaskStatus
    priority: TaskPriority
    position: str = strawberry.field(
        description="Rank within the status column; sorts lexicographically."
    )
    due_date: date | None
    version: int = strawberry.field(
        description="Bumped by every change; pass it as `expectedVersion` to detect conflicts."
    )
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Task", self.id))

    @strawberry.field
    def custom_properties(self) -> JSON:
        return self.custom_properties

    @strawberry.field
    async def project(self, info: Info) -> ProjectRef:
        return await ctx(info).loaders.project.load(self.project_id)

    @strawberry.field
    async def assignee(self, info: Info) -> UserRef | None:
        loaders = ctx(info).loaders
        return await loaders.load_optional(loaders.user, self.assignee_id)

    @strawberry.field
    async def created_by(self, info: Info) -> UserRef:
        return await ctx(info).loaders.user.load(self.created_by_id)

    @strawberry.field
    async def parent(self, info: Info) -> Task | None:
        loaders = ctx(info).loaders
        return await loaders.load_optional(loaders.task, self.parent_id)

    @strawberry.field
    async def labels(self, info: Info) -> list[Label]:
        return await ctx(info).loaders.labels_by_task.load(self.id)

    @strawberry.field
    async def comment_count(self, info: Info) -> int:
        return await ctx(info).loaders.comment_count_by_task.load(self.id)

    @strawberry.field
    async def subtask_count(self, info: Info) -> int:
        return await ctx(info).loaders.subtask_count_by_task.load(self.id)

    @strawberry.field
    async def subtasks(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> TaskConnection:
        page = await task_resolvers.subtasks(
            ctx(info), self, first=first, after=after, last=last, before=before
        )
        return TaskConnection.of(page)

    @strawberry.field
    async def comments(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> CommentConnection:
        page = await task_resolvers.comments(
            ctx(info), self, first=first, after=after, last=last, before=before
        )
        return CommentConnection.of(page)


@strawberry.type
class TaskConnection(Connection[Task]):
    pass


@strawberry.enum
class TaskOrderField(Enum):
    POSITION = "POSITION"
    CREATED_AT = "CREATED_AT"
    UPDATED_AT = "UPDATED_AT"
    PRIORITY = "PRIORITY"
    TITLE = "TITLE"


@strawberry.enum
class OrderDirection(Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.input
class TaskOrder:
    field: TaskOrderField = TaskOrderField.POSITION
    direction: OrderDirection = OrderDirection.ASC


@strawberry.input(description="All given conditions must hold.")
class TaskFilter:
    status: list[TaskStatus] | None = None
    priority: list[TaskPriority] | None = None
    assignee: list[strawberry.ID] | None = strawberry.field(
        default=None, description="User IDs; tasks assigned to any of them."
    )
    unassigned: bool = False
    label: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Label IDs; tasks carrying any of them."
    )
    search: str | None = strawberry.field(default=None, description="Substring of the title.")
    due_before: date | None = None
    due_after: date | None = None
    include_archived: bool = False

    def to_data(self) -> TaskFilterData:
        return TaskFilterData(
            status=self.status,
            priority=self.priority,
            assignee_ids=[decode_id(i, "User", "filter.assignee") for i in self.assignee or []]
            or None,
            unassigned=self.unassigned,
            label_ids=[decode_id(i, "Label", "filter.label") for i in self.label or []] or None,
            search=self.search,
            due_before=self.due_before,
            due_after=self.due_after,
            include_archived=self.include_archived,
        )


@strawberry.input
class CreateTaskInput:
    project_id: strawberry.ID
    title: str
    description: str | None = None
    status: TaskStatus = TaskStatus.TODO
    priority: TaskPriority = TaskPriority.MEDIUM
    assignee_id: strawberry.ID | None = None
    parent_id: strawberry.ID | None = None
    due_date: date | None = None
    label_ids: list[strawberry.ID] | None = None
    custom_properties: JSON | None = None


@strawberry.type
class TaskPayload:
    task: Task


@strawberry.type
class TaskMutations:
    @strawberry.mutation(description="Create a task at the bottom of its status column.")
    async def create_task(self, info: Info, input: CreateTaskInput) -> TaskPayload:
        task = await task_resolvers.create_task(
            ctx(info),
            decode_id(input.project_id, "Project", "projectId"),
            title=input.title,
            description=input.description,
            status=input.status,
            priority=input.priority,
            assignee_id=decode_optional(input.assignee_id, "User", "assigneeId"),
            parent_id=decode_optional(input.parent_id, "Task", "parentId"),
            due_date=input.due_date,
            label_ids=[decode_id(i, "Label", "labelIds") for i in input.label_ids or []],
            custom_properties=input.custom_properties,
        )
        return TaskPayload(task=task)
