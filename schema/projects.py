"""Projects, their members, board, labels and custom fields."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info
from strawberry.types.nodes import SelectedField

from models import CustomFieldDefinition as FieldModel
from models import Project as ProjectModel
from models import ProjectMember as ProjectMemberModel
from models import TaskStatus as TaskStatusModel
from resolvers import members as member_resolvers
from resolvers import projects as project_resolvers
from resolvers import tasks as task_resolvers
from resolvers.ids import decode_id, to_global_id
from resolvers.streams import encode_cursor as encode_board_cursor
from resolvers.tasks import ORDERS
from schema.common import (
    Connection,
    CustomFieldType,
    Node,
    ProjectRole,
    TaskStatus,
    ctx,
    model_type_check,
    node_id,
)

if TYPE_CHECKING:
    from schema.orgs import Organization
    from schema.tasks import Label, TaskConnection, TaskFilter, TaskOrder
    from schema.users import User

OrganizationRef = Annotated["Organization", strawberry.lazy("schema.orgs")]
UserRef = Annotated["User", strawberry.lazy("schema.users")]
LabelRef = Annotated["Label", strawberry.lazy("schema.tasks")]
TaskConnectionRef = Annotated["TaskConnection", strawberry.lazy("schema.tasks")]
TaskFilterRef = Annotated["TaskFilter", strawberry.lazy("schema.tasks")]
TaskOrderRef = Annotated["TaskOrder", strawberry.lazy("schema.tasks")]


# GraphQL field of Task -> the relation a list resolver can load for a whole page at once.
_TASK_RELATIONS = {"labels": "labels", "assignee": "assignee", "createdBy": "created_by"}


def task_relations_asked(info: Info) -> set[str]:
    """The task relations the query asks of a task connection's items (`nodes { ... }` or
    `edges { node { ... } }`, fragments included)."""
    asked: set[str] = set()

    def walk(selections, depth: int) -> None:
        for selection in selections:
            name = getattr(selection, "name", None) if isinstance(selection, SelectedField) else None
            if name is None:  # a fragment: same level
                walk(selection.selections, depth)
            elif depth == 0 and name in ("nodes", "edges"):
                walk(selection.selections, 1 if name == "nodes" else 2)
            elif depth == 2 and name == "node":
                walk(selection.selections, 1)
            elif depth == 1 and name in _TASK_RELATIONS:
                asked.add(_TASK_RELATIONS[name])

    for field in info.selected_fields:
        walk(field.selections, 0)
    return asked


def _task_connection():
    from schema.tasks import TaskConnection

    return TaskConnection


@strawberry.type(description="A typed property that tasks of a project may carry.")
class CustomFieldDefinition(Node):
    is_type_of = model_type_check(FieldModel)
    key: str
    name: str
    type: CustomFieldType
    required: bool
    created_at: datetime

    id: strawberry.ID = node_id("CustomFieldDefinition")

    @strawberry.field(description="Allowed values for SELECT and MULTI_SELECT fields.")
    def options(self) -> list[str]:
        return self.options


@strawberry.type(description="A user's membership of a project.")
class ProjectMember(Node):
    is_type_of = model_type_check(ProjectMemberModel)
    role: ProjectRole
    created_at: datetime

    id: strawberry.ID = node_id("ProjectMember")

    @strawberry.field
    def user(self, info: Info) -> UserRef:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.user, self.user_id)

    @strawberry.field
    def project(self, info: Info) -> Project:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.project, self.project_id)


@strawberry.type
class ProjectMemberConnection(Connection[ProjectMember]):
    pass


@strawberry.type(description="One status column of a board.")
class BoardColumn:
    status: TaskStatus
    _project: strawberry.Private[ProjectModel]

    @strawberry.field(description="Open tasks of this column, ordered by position.")
    async def tasks(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> TaskConnectionRef:
        page = await project_resolvers.column_tasks(
            ctx(info), self._project, self.status, first, after, last, before,
            load=task_relations_asked(info),
        )
        return _task_connection().of(page)


@strawberry.type(description="A project's board: the five status columns in order.")
class Board:
    _project: strawberry.Private[ProjectModel]

    @strawberry.field
    def columns(self) -> list[BoardColumn]:
        return [BoardColumn(status=s, _project=self._project) for s in TaskStatusModel]


@strawberry.type(description="A project of an organization, with its board.")
class Project(Node):
    is_type_of = model_type_check(ProjectModel)
    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None

    id: strawberry.ID = node_id("Project")

    @strawberry.field
    def organization(self, info: Info) -> OrganizationRef:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.organization, self.organization_id)

    @strawberry.field(description="The viewer's effective role in this project.")
    def viewer_role(self, info: Info) -> ProjectRole:
        return ctx(info).viewer.project_role(self)

    @strawberry.field
    def board(self) -> Board:
        return Board(_project=self)

    @strawberry.field(
        description="The board's event-log position as of this read. Query it with the board, "
        "then subscribe to `boardEvents(after: eventCursor)`: nothing between the read and the "
        "subscription is missed."
    )
    def event_cursor(self) -> str:
        return encode_board_cursor(self.id, self.event_seq)

    @strawberry.field
    async def tasks(
        self,
        info: Info,
        filter: TaskFilterRef | None = None,
        order_by: TaskOrderRef | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> TaskConnectionRef:
        field = order_by.field.value if order_by else "POSITION"
        descending = bool(order_by and order_by.direction.value == "DESC")
        page = await task_resolvers.project_tasks(
            ctx(info),
            self,
            filter.to_data() if filter else None,
            field if field in ORDERS else "POSITION",
            descending,
            first=first,
            after=after,
            last=last,
            before=before,
            load=task_relations_asked(info),
        )
        return _task_connection().of(page)

    @strawberry.field(description="Number of tasks that are not archived.")
    def task_count(self, info: Info) -> int:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.open_task_count_by_project, self.id)

    @strawberry.field
    async def members(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> ProjectMemberConnection:
        page = await project_resolvers.project_members(ctx(info), self, first, after, last, before)
        return ProjectMemberConnection.of(page)

    @strawberry.field
    def member_count(self, info: Info) -> int:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.member_count_by_project, self.id)

    @strawberry.field
    def labels(self, info: Info) -> list[LabelRef]:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.labels_by_project, self.id)

    @strawberry.field
    def custom_fields(self, info: Info) -> list[CustomFieldDefinition]:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.custom_fields_by_project, self.id)


@strawberry.type
class ProjectConnection(Connection[Project]):
    pass


@strawberry.input
class CreateProjectInput:
    organization_id: strawberry.ID
    name: str
    description: str | None = None


@strawberry.type
class ProjectPayload:
    project: Project | None


@strawberry.input
class UpdateProjectInput:
    project_id: strawberry.ID
    name: str | None = strawberry.field(default=None, description="Null leaves it unchanged.")
    description: str | None = strawberry.field(
        default=None, description="Null leaves it unchanged; \"\" clears it."
    )


@strawberry.input
class ArchiveProjectInput:
    project_id: strawberry.ID


@strawberry.input
class AddProjectMemberInput:
    project_id: strawberry.ID
    user_id: strawberry.ID
    role: ProjectRole


@strawberry.input
class UpdateProjectMemberRoleInput:
    member_id: strawberry.ID = strawberry.field(description="A ProjectMember ID.")
    role: ProjectRole


@strawberry.input
class RemoveProjectMemberInput:
    member_id: strawberry.ID = strawberry.field(description="A ProjectMember ID.")


@strawberry.type
class ProjectMemberPayload:
    member: ProjectMember | None


@strawberry.type
class RemoveProjectMemberPayload:
    removed_member_id: strawberry.ID


@strawberry.type
class ProjectMutations:
    @strawberry.mutation(description="Create a project; the creator becomes its owner.")
    async def create_project(self, info: Info, input: CreateProjectInput) -> ProjectPayload:
        project = await project_resolvers.create_project(
            ctx(info),
            decode_id(input.organization_id, "Organization", "organizationId"),
            input.name,
            input.description,
        )
        return ProjectPayload(project=project)

    @strawberry.mutation(description="Rename or re-describe a project. Project admins and owners.")
    async def update_project(self, info: Info, input: UpdateProjectInput) -> ProjectPayload:
        project = await project_resolvers.update_project(
            ctx(info),
            decode_id(input.project_id, "Project", "projectId"),
            name=input.name,
            description=input.description,
        )
        return ProjectPayload(project=project)

    @strawberry.mutation(
        description="Archive a project (project owners). Idempotent: an archived project is "
        "returned unchanged."
    )
    async def archive_project(self, info: Info, input: ArchiveProjectInput) -> ProjectPayload:
        project = await project_resolvers.archive_project(
            ctx(info), decode_id(input.project_id, "Project", "projectId")
        )
        return ProjectPayload(project=project)

    @strawberry.mutation(description="Add a member of the organization to a project. Project admins.")
    async def add_project_member(
        self, info: Info, input: AddProjectMemberInput
    ) -> ProjectMemberPayload:
        member = await member_resolvers.add_project_member(
            ctx(info),
            decode_id(input.project_id, "Project", "projectId"),
            decode_id(input.user_id, "User", "userId"),
            input.role,
        )
        return ProjectMemberPayload(member=member)

    @strawberry.mutation(description="Change a project member's role. Only owners touch owners.")
    async def update_project_member_role(
        self, info: Info, input: UpdateProjectMemberRoleInput
    ) -> ProjectMemberPayload:
        member = await member_resolvers.update_project_member_role(
            ctx(info), decode_id(input.member_id, "ProjectMember", "memberId"), input.role
        )
        return ProjectMemberPayload(member=member)

    @strawberry.mutation(description="Remove a project member (or leave, with your own membership).")
    async def remove_project_member(
        self, info: Info, input: RemoveProjectMemberInput
    ) -> RemoveProjectMemberPayload:
        member_id = await member_resolvers.remove_project_member(
            ctx(info), decode_id(input.member_id, "ProjectMember", "memberId")
        )
        return RemoveProjectMemberPayload(
            removed_member_id=strawberry.ID(to_global_id("ProjectMember", member_id))
        )


__all__ = ["JSON"]
