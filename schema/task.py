"""Tasks and their comments: types, inputs and mutations."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from models import Comment as CommentModel
from models import Task as TaskModel
from resolvers.ids import decode_id, decode_optional, to_global_id
from resolvers.task import comments as comment_resolvers
from resolvers.task import tasks as task_resolvers
from resolvers.task.tasks import TaskFilter as TaskFilterData
from schema.common import (
    After,
    Before,
    Connection,
    First,
    Info,
    Last,
    Node,
    TaskPriority,
    TaskStatus,
    ctx,
    model_type_check,
    node_id,
)
from schema.permissions import Permission, in_project, mutation

if TYPE_CHECKING:
    from schema.identity import User
    from schema.project import Label, Project

ProjectRef = Annotated["Project", strawberry.lazy("schema.project")]
LabelRef = Annotated["Label", strawberry.lazy("schema.project")]
UserRef = Annotated["User", strawberry.lazy("schema.identity")]




@strawberry.type(description="A comment on a task.")
class Comment(Node):
    is_type_of = model_type_check(CommentModel)
    body: str = strawberry.field(description="Plain text, 1 to 10,000 characters.")
    created_at: datetime = strawberry.field(description="When the comment was written.")
    updated_at: datetime = strawberry.field(description="When the comment last changed.")

    id: strawberry.ID = node_id("Comment")

    @strawberry.field(description="Who wrote it.")
    def author(self, info: Info) -> UserRef:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.user, self.author_id)

    @strawberry.field(description="The task commented on.")
    def task(self, info: Info) -> Task:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.task, self.task_id)


@strawberry.type(description="A page of comments, oldest first.")
class CommentConnection(Connection[Comment]):
    pass


@strawberry.type(description="A unit of work on a project's board.")
class Task(Node):
    is_type_of = model_type_check(TaskModel)
    title: str = strawberry.field(description="1 to 500 characters.")
    description: str = strawberry.field(
        description='Plain text, up to 50,000 characters; "" when there is none.'
    )
    status: TaskStatus = strawberry.field(description="The board column the task is in.")
    priority: TaskPriority = strawberry.field(description="How urgent the task is.")
    position: str = strawberry.field(
        description="Rank within the status column; sorts lexicographically."
    )
    due_date: date | None = strawberry.field(description="The day it is due, if any.")
    version: int = strawberry.field(
        description="Bumped by every change; pass it as `expectedVersion` to detect conflicts."
    )
    created_at: datetime = strawberry.field(description="When the task was created.")
    updated_at: datetime = strawberry.field(description="When the task last changed.")
    archived_at: datetime | None = strawberry.field(
        description="When the task was taken off the board; null while it is on it."
    )
    custom_properties: JSON = strawberry.field(
        description="Values of the project's custom fields, keyed by the field's `key` "
        "(see `Project.customFields`); an object, `{}` when none are set."
    )

    id: strawberry.ID = node_id("Task")

    @strawberry.field(description="The project whose board holds the task.")
    def project(self, info: Info) -> ProjectRef:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.project, self.project_id)

    # Relation fields below return the value when the request already holds it (a list
    # resolver warmed it) and an awaitable otherwise: no coroutine per item on big lists.
    @strawberry.field(description="Who works on it; null when unassigned.")
    def assignee(self, info: Info) -> UserRef | None:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.user, self.assignee_id)

    @strawberry.field(description="Who created it.")
    def created_by(self, info: Info) -> UserRef:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.user, self.created_by_id)

    @strawberry.field(description="The task this is a subtask of, if any.")
    def parent(self, info: Info) -> Task | None:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.task, self.parent_id)

    @strawberry.field(description="The labels on the task, by name.")
    def labels(self, info: Info) -> list[LabelRef]:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.labels_by_task, self.id)

    @strawberry.field(description="Number of comments on the task.")
    def comment_count(self, info: Info) -> int:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.comment_count_by_task, self.id)

    @strawberry.field(description="Number of subtasks that are not archived.")
    def subtask_count(self, info: Info) -> int:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.subtask_count_by_task, self.id)

    @strawberry.field(description="Subtasks that are not archived, oldest first.")
    async def subtasks(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> TaskConnection:
        page = await task_resolvers.subtasks(
            ctx(info), self, first=first, after=after, last=last, before=before
        )
        return TaskConnection.of(page)

    @strawberry.field(description="Comments on the task, oldest first.")
    async def comments(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> CommentConnection:
        page = await task_resolvers.comments(
            ctx(info), self, first=first, after=after, last=last, before=before
        )
        return CommentConnection.of(page)


@strawberry.type(description="A page of tasks.")
class TaskConnection(Connection[Task]):
    pass


@strawberry.enum(
    description="What to sort tasks by. Ties are broken by creation order (id), in the same "
    "direction."
)
class TaskOrderField(Enum):
    POSITION = strawberry.enum_value(
        "POSITION", description="Rank within a column; ranks of different columns interleave."
    )
    CREATED_AT = strawberry.enum_value("CREATED_AT", description="Creation time.")
    UPDATED_AT = strawberry.enum_value("UPDATED_AT", description="Time of the last change.")
    PRIORITY = strawberry.enum_value(
        "PRIORITY", description="Priority; ascending puts CRITICAL first, LOW last."
    )
    TITLE = strawberry.enum_value("TITLE", description="Title, by code point (case-sensitive).")


@strawberry.enum(description="Sort direction.")
class OrderDirection(Enum):
    ASC = strawberry.enum_value("ASC", description="Ascending: smallest, earliest or first rank first.")
    DESC = strawberry.enum_value("DESC", description="Descending: largest, latest or last rank first.")


@strawberry.input(description="How to order a task list.")
class TaskOrder:
    field: TaskOrderField = strawberry.field(
        default=TaskOrderField.POSITION, description="What to sort by; POSITION by default."
    )
    direction: OrderDirection = strawberry.field(
        default=OrderDirection.ASC, description="ASC by default."
    )


@strawberry.input(description="Which tasks to list. All given conditions must hold.")
class TaskFilter:
    status: list[TaskStatus] | None = strawberry.field(
        default=None, description="Tasks in any of these columns."
    )
    priority: list[TaskPriority] | None = strawberry.field(
        default=None, description="Tasks of any of these priorities."
    )
    assignee: list[strawberry.ID] | None = strawberry.field(
        default=None, description="User IDs; tasks assigned to any of them."
    )
    unassigned: bool = strawberry.field(
        default=False,
        description="No assignee; with `assignee`: tasks of any of them or of nobody.",
    )
    label: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Label IDs; tasks carrying any of them."
    )
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive substring of the title."
    )
    due_before: date | None = strawberry.field(
        default=None,
        description="Due strictly before this day; tasks without a due date never match.",
    )
    due_after: date | None = strawberry.field(
        default=None,
        description="Due strictly after this day; tasks without a due date never match.",
    )
    include_archived: bool = strawberry.field(
        default=False, description="Include archived tasks (left out by default)."
    )

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


@strawberry.input(description="A new task.")
class CreateTaskInput:
    project_id: strawberry.ID = strawberry.field(description="The project; editors and up.")
    title: str = strawberry.field(description="1 to 500 characters.")
    description: str | None = strawberry.field(
        default=None, description="Plain text, up to 50,000 characters."
    )
    status: TaskStatus = strawberry.field(
        default=TaskStatus.TODO, description="The column; TODO by default."
    )
    priority: TaskPriority = strawberry.field(
        default=TaskPriority.MEDIUM, description="MEDIUM by default."
    )
    assignee_id: strawberry.ID | None = strawberry.field(
        default=None, description="A User ID; a member of the project's organization."
    )
    parent_id: strawberry.ID | None = strawberry.field(
        default=None, description="Make it a subtask of this task of the same project."
    )
    due_date: date | None = strawberry.field(default=None, description="The day it is due.")
    label_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Labels of the same project to put on it."
    )
    custom_properties: JSON | None = strawberry.field(
        default=None,
        description="An object of custom field key to value, checked against the project's "
        "custom fields; required fields must be present.",
    )


@strawberry.input(
    description="Only the fields you send change. For assigneeId, dueDate and parentId an "
    "explicit null clears the value; title, status and priority cannot be null."
)
class UpdateTaskInput:
    id: strawberry.ID = strawberry.field(description="The task to change.")
    expected_version: int | None = strawberry.field(
        default=None,
        description="CONFLICT (with extensions.currentVersion) unless the task is at this version.",
    )
    title: str | None = strawberry.field(
        default=strawberry.UNSET, description="1 to 500 characters."
    )
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description='Null or "" clears it.'
    )
    priority: TaskPriority | None = strawberry.field(
        default=strawberry.UNSET, description="The new priority."
    )
    status: TaskStatus | None = strawberry.field(
        default=strawberry.UNSET,
        description="A new status puts the task at the bottom of that column.",
    )
    assignee_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description="A User ID (a member of the organization); null unassigns.",
    )
    due_date: date | None = strawberry.field(
        default=strawberry.UNSET, description="The new due day; null clears it."
    )
    parent_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description="A task of the same project that is not a subtask of this one.",
    )
    label_ids: list[strawberry.ID] | None = strawberry.field(
        default=strawberry.UNSET,
        description="Replaces the task's labels; null or [] removes them all.",
    )
    custom_properties: JSON | None = strawberry.field(
        default=strawberry.UNSET,
        description="Merged into the task's properties; a key set to null is removed.",
    )

    def changes(self) -> dict:
        """The fields the client sent, decoded, keyed by the resolver's argument names."""
        decoders = {
            "assignee_id": lambda v: decode_optional(v, "User", "assigneeId"),
            "parent_id": lambda v: decode_optional(v, "Task", "parentId"),
            "label_ids": lambda v: [decode_id(i, "Label", "labelIds") for i in v or []],
        }
        sent = {}
        for name in task_resolvers.UPDATABLE:
            value = getattr(self, name)
            if value is not strawberry.UNSET:
                sent[name] = decoders[name](value) if name in decoders else value
        return sent


@strawberry.input(
    description="Put a task between two neighbours of a column. afterId sits directly above, "
    "beforeId directly below; give one, both, or neither (bottom of the column)."
)
class MoveTaskInput:
    id: strawberry.ID = strawberry.field(description="The task to move.")
    status: TaskStatus = strawberry.field(
        description="The target column (the task's own column to reorder within it)."
    )
    after_id: strawberry.ID | None = strawberry.field(
        default=None, description="The task that ends up directly above; in the target column."
    )
    before_id: strawberry.ID | None = strawberry.field(
        default=None, description="The task that ends up directly below; in the target column."
    )
    expected_version: int | None = strawberry.field(
        default=None,
        description="CONFLICT (with extensions.currentVersion) unless the task is at this version.",
    )


@strawberry.input(description="The task to archive.")
class ArchiveTaskInput:
    id: strawberry.ID = strawberry.field(description="The task.")
    expected_version: int | None = strawberry.field(
        default=None,
        description="CONFLICT (with extensions.currentVersion) unless the task is at this version.",
    )


@strawberry.input(description="The task to put back on the board.")
class UnarchiveTaskInput:
    id: strawberry.ID = strawberry.field(description="The task.")
    expected_version: int | None = strawberry.field(
        default=None,
        description="CONFLICT (with extensions.currentVersion) unless the task is at this version.",
    )


@strawberry.input(description="The task to delete.")
class DeleteTaskInput:
    id: strawberry.ID = strawberry.field(description="The task.")


@strawberry.input(description="A new comment.")
class AddCommentInput:
    task_id: strawberry.ID = strawberry.field(description="The task; not archived.")
    body: str = strawberry.field(description="1 to 10,000 characters.")






@strawberry.type(description="The result of a task mutation.")
class TaskPayload:
    task: Task | None = strawberry.field(description="The task as it is now.")


@strawberry.type(description="The result of deleteTask.")
class DeleteTaskPayload:
    deleted_task_id: strawberry.ID = strawberry.field(
        description="The ID the task had; drop it from client caches."
    )


@strawberry.type(description="The result of addComment.")
class AddCommentPayload:
    comment: Comment | None = strawberry.field(description="The new comment.")
    task: Task | None = strawberry.field(description="The task, with its new commentCount.")






@strawberry.type(description="Task and comment mutations.")
class TaskMutations:
    @mutation(
        requires=in_project(Permission.WRITE_TASKS),
        description='Create a task at the bottom of its status column.',
    )
    async def create_task(
        self,
        info: Info,
        input: Annotated[CreateTaskInput, strawberry.argument(description="The task to create.")],
    ) -> TaskPayload:
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

    @mutation(
        requires=in_project(Permission.WRITE_TASKS),
        description='Change some fields of a task.',
    )
    async def update_task(
        self,
        info: Info,
        input: Annotated[
            UpdateTaskInput, strawberry.argument(description="The task and the fields that change.")
        ],
    ) -> TaskPayload:
        task = await task_resolvers.update_task(
            ctx(info),
            decode_id(input.id, "Task", "id"),
            expected_version=input.expected_version,
            **input.changes(),
        )
        return TaskPayload(task=task)

    @mutation(
        requires=in_project(Permission.WRITE_TASKS),
        description='Move a task within or across columns.',
    )
    async def move_task(
        self,
        info: Info,
        input: Annotated[
            MoveTaskInput, strawberry.argument(description="The task, its target column and neighbours.")
        ],
    ) -> TaskPayload:
        task = await task_resolvers.move_task(
            ctx(info),
            decode_id(input.id, "Task", "id"),
            status=input.status,
            after_id=decode_optional(input.after_id, "Task", "afterId"),
            before_id=decode_optional(input.before_id, "Task", "beforeId"),
            expected_version=input.expected_version,
        )
        return TaskPayload(task=task)

    @mutation(
        requires=in_project(Permission.WRITE_TASKS),
        description='Take a task off the board (idempotent).',
    )
    async def archive_task(
        self,
        info: Info,
        input: Annotated[ArchiveTaskInput, strawberry.argument(description="The task to archive.")],
    ) -> TaskPayload:
        task = await task_resolvers.archive_task(
            ctx(info), decode_id(input.id, "Task", "id"), input.expected_version
        )
        return TaskPayload(task=task)

    @mutation(
        requires=in_project(Permission.WRITE_TASKS),
        description='Put an archived task back on the board (idempotent).',
    )
    async def unarchive_task(
        self,
        info: Info,
        input: Annotated[
            UnarchiveTaskInput, strawberry.argument(description="The task to unarchive.")
        ],
    ) -> TaskPayload:
        task = await task_resolvers.unarchive_task(
            ctx(info), decode_id(input.id, "Task", "id"), input.expected_version
        )
        return TaskPayload(task=task)

    @mutation(
        requires=in_project(Permission.DELETE_TASKS),
        description='Delete a task, its comments and label links; subtasks lose their parent.',
    )
    async def delete_task(
        self,
        info: Info,
        input: Annotated[DeleteTaskInput, strawberry.argument(description="The task to delete.")],
    ) -> DeleteTaskPayload:
        task_id = await task_resolvers.delete_task(ctx(info), decode_id(input.id, "Task", "id"))
        return DeleteTaskPayload(deleted_task_id=strawberry.ID(to_global_id("Task", task_id)))

    @mutation(
        requires=in_project(Permission.COMMENT),
        description='Comment on a task.',
    )
    async def add_comment(
        self,
        info: Info,
        input: Annotated[
            AddCommentInput, strawberry.argument(description="The task and the comment.")
        ],
    ) -> AddCommentPayload:
        comment, task = await comment_resolvers.add_comment(
            ctx(info), decode_id(input.task_id, "Task", "taskId"), input.body
        )
        return AddCommentPayload(comment=comment, task=task)


