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
from resolvers import comments as comment_resolvers
from resolvers import custom_fields as field_resolvers
from resolvers import labels as label_resolvers
from resolvers import tasks as task_resolvers
from resolvers.ids import decode_id, decode_optional, to_global_id
from resolvers.tasks import TaskFilter as TaskFilterData
from schema.common import (
    Connection,
    CustomFieldType,
    Node,
    TaskPriority,
    TaskStatus,
    ctx,
    model_type_check,
    node_id,
)

if TYPE_CHECKING:
    from schema.projects import CustomFieldDefinition, Project
    from schema.users import User

ProjectRef = Annotated["Project", strawberry.lazy("schema.projects")]
CustomFieldDefinitionRef = Annotated["CustomFieldDefinition", strawberry.lazy("schema.projects")]
UserRef = Annotated["User", strawberry.lazy("schema.users")]


@strawberry.type(description="A label that can be put on tasks of one project.")
class Label(Node):
    is_type_of = model_type_check(LabelModel)
    name: str
    color: str
    created_at: datetime

    id: strawberry.ID = node_id("Label")

    @strawberry.field
    def project(self, info: Info) -> ProjectRef:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.project, self.project_id)


@strawberry.type(description="A comment on a task.")
class Comment(Node):
    is_type_of = model_type_check(CommentModel)
    body: str
    created_at: datetime
    updated_at: datetime

    id: strawberry.ID = node_id("Comment")

    @strawberry.field
    def author(self, info: Info) -> UserRef:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.user, self.author_id)

    @strawberry.field
    def task(self, info: Info) -> Task:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.task, self.task_id)


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
    custom_properties: JSON

    id: strawberry.ID = node_id("Task")

    @strawberry.field
    def project(self, info: Info) -> ProjectRef:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.project, self.project_id)

    # Relation fields below return the value when the request already holds it (a list
    # resolver warmed it) and an awaitable otherwise: no coroutine per item on big lists.
    @strawberry.field
    def assignee(self, info: Info) -> UserRef | None:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.user, self.assignee_id)

    @strawberry.field
    def created_by(self, info: Info) -> UserRef:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.user, self.created_by_id)

    @strawberry.field
    def parent(self, info: Info) -> Task | None:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.task, self.parent_id)

    @strawberry.field
    def labels(self, info: Info) -> list[Label]:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.labels_by_task, self.id)

    @strawberry.field
    def comment_count(self, info: Info) -> int:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.comment_count_by_task, self.id)

    @strawberry.field
    def subtask_count(self, info: Info) -> int:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.subtask_count_by_task, self.id)

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


@strawberry.enum(description="Ties are broken by creation order (id), in the same direction.")
class TaskOrderField(Enum):
    POSITION = strawberry.enum_value(
        "POSITION", description="Rank within a column; ranks of different columns interleave."
    )
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


@strawberry.input(
    description="Only the fields you send change. For assigneeId, dueDate and parentId an "
    "explicit null clears the value; title, status and priority cannot be null."
)
class UpdateTaskInput:
    id: strawberry.ID
    expected_version: int | None = strawberry.field(
        default=None,
        description="CONFLICT (with extensions.currentVersion) unless the task is at this version.",
    )
    title: str | None = strawberry.UNSET
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description='Null or "" clears it.'
    )
    priority: TaskPriority | None = strawberry.UNSET
    status: TaskStatus | None = strawberry.field(
        default=strawberry.UNSET,
        description="A new status puts the task at the bottom of that column.",
    )
    assignee_id: strawberry.ID | None = strawberry.UNSET
    due_date: date | None = strawberry.UNSET
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
    id: strawberry.ID
    status: TaskStatus
    after_id: strawberry.ID | None = None
    before_id: strawberry.ID | None = None
    expected_version: int | None = None


@strawberry.input
class ArchiveTaskInput:
    id: strawberry.ID
    expected_version: int | None = None


@strawberry.input
class UnarchiveTaskInput:
    id: strawberry.ID
    expected_version: int | None = None


@strawberry.input
class DeleteTaskInput:
    id: strawberry.ID


@strawberry.input
class AddCommentInput:
    task_id: strawberry.ID
    body: str = strawberry.field(description="1 to 10,000 characters.")


@strawberry.input
class CreateLabelInput:
    project_id: strawberry.ID
    name: str = strawberry.field(description="1 to 50 characters, unique in the project.")
    color: str = strawberry.field(description="A hex color like #1f6feb.")


@strawberry.input
class DefineCustomFieldInput:
    project_id: strawberry.ID
    key: str = strawberry.field(
        description="Property key: a-z, 0-9 and _, starting with a letter; unique in the project."
    )
    name: str
    type: CustomFieldType
    options: list[str] | None = strawberry.field(
        default=None, description="Required for SELECT and MULTI_SELECT (1-100 unique values)."
    )
    required: bool = strawberry.field(
        default=False, description="Only allowed while the project has no tasks."
    )


@strawberry.type
class TaskPayload:
    task: Task | None


@strawberry.type
class DeleteTaskPayload:
    deleted_task_id: strawberry.ID


@strawberry.type
class AddCommentPayload:
    comment: Comment | None
    task: Task | None


@strawberry.type
class LabelPayload:
    label: Label | None


@strawberry.type
class CustomFieldDefinitionPayload:
    field: CustomFieldDefinitionRef | None


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

    @strawberry.mutation(description="Change some fields of a task. Editors and up.")
    async def update_task(self, info: Info, input: UpdateTaskInput) -> TaskPayload:
        task = await task_resolvers.update_task(
            ctx(info),
            decode_id(input.id, "Task", "id"),
            expected_version=input.expected_version,
            **input.changes(),
        )
        return TaskPayload(task=task)

    @strawberry.mutation(description="Move a task within or across columns. Editors and up.")
    async def move_task(self, info: Info, input: MoveTaskInput) -> TaskPayload:
        task = await task_resolvers.move_task(
            ctx(info),
            decode_id(input.id, "Task", "id"),
            status=input.status,
            after_id=decode_optional(input.after_id, "Task", "afterId"),
            before_id=decode_optional(input.before_id, "Task", "beforeId"),
            expected_version=input.expected_version,
        )
        return TaskPayload(task=task)

    @strawberry.mutation(description="Take a task off the board (idempotent). Editors and up.")
    async def archive_task(self, info: Info, input: ArchiveTaskInput) -> TaskPayload:
        task = await task_resolvers.archive_task(
            ctx(info), decode_id(input.id, "Task", "id"), input.expected_version
        )
        return TaskPayload(task=task)

    @strawberry.mutation(
        description="Put an archived task back on the board (idempotent). Editors and up."
    )
    async def unarchive_task(self, info: Info, input: UnarchiveTaskInput) -> TaskPayload:
        task = await task_resolvers.unarchive_task(
            ctx(info), decode_id(input.id, "Task", "id"), input.expected_version
        )
        return TaskPayload(task=task)

    @strawberry.mutation(
        description="Delete a task, its comments and label links; subtasks lose their parent. "
        "Project admins and owners."
    )
    async def delete_task(self, info: Info, input: DeleteTaskInput) -> DeleteTaskPayload:
        task_id = await task_resolvers.delete_task(ctx(info), decode_id(input.id, "Task", "id"))
        return DeleteTaskPayload(deleted_task_id=strawberry.ID(to_global_id("Task", task_id)))

    @strawberry.mutation(description="Comment on a task. Editors and up.")
    async def add_comment(self, info: Info, input: AddCommentInput) -> AddCommentPayload:
        comment, task = await comment_resolvers.add_comment(
            ctx(info), decode_id(input.task_id, "Task", "taskId"), input.body
        )
        return AddCommentPayload(comment=comment, task=task)

    @strawberry.mutation(description="Create a label in a project. Editors and up.")
    async def create_label(self, info: Info, input: CreateLabelInput) -> LabelPayload:
        label = await label_resolvers.create_label(
            ctx(info), decode_id(input.project_id, "Project", "projectId"), input.name, input.color
        )
        return LabelPayload(label=label)

    @strawberry.mutation(
        description="Define a custom task property for a project. Project admins and owners."
    )
    async def define_custom_field(
        self, info: Info, input: DefineCustomFieldInput
    ) -> CustomFieldDefinitionPayload:
        definition = await field_resolvers.define_field(
            ctx(info),
            decode_id(input.project_id, "Project", "projectId"),
            key=input.key,
            name=input.name,
            type=input.type,
            options=input.options,
            required=input.required,
        )
        return CustomFieldDefinitionPayload(field=definition)
