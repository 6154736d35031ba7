"""Projects, their members, board, labels and custom fields."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON
from strawberry.types.nodes import SelectedField

from models import CustomFieldDefinition as FieldModel
from models import Label as LabelModel
from models import Project as ProjectModel
from models import ProjectMember as ProjectMemberModel
from models import TaskStatus as TaskStatusModel
from resolvers.event.streams import encode_cursor as encode_board_cursor
from resolvers.ids import decode_id, to_global_id
from resolvers.project import custom_fields as field_resolvers
from resolvers.project import labels as label_resolvers
from resolvers.project import members as member_resolvers
from resolvers.project import projects as project_resolvers
from resolvers.task import tasks as task_resolvers
from resolvers.task.tasks import ORDERS
from schema.common import (
    After,
    Before,
    Connection,
    CustomFieldType,
    First,
    Info,
    Last,
    Node,
    ProjectRole,
    TaskStatus,
    ctx,
    model_type_check,
    node_id,
)
from schema.permissions import OrgPermission, Permission, in_org, in_project, mutation

if TYPE_CHECKING:
    from schema.identity import User
    from schema.org import Organization
    from schema.task import TaskConnection, TaskFilter, TaskOrder

OrganizationRef = Annotated["Organization", strawberry.lazy("schema.org")]
UserRef = Annotated["User", strawberry.lazy("schema.identity")]
TaskConnectionRef = Annotated["TaskConnection", strawberry.lazy("schema.task")]
TaskFilterRef = Annotated["TaskFilter", strawberry.lazy("schema.task")]
TaskOrderRef = Annotated["TaskOrder", strawberry.lazy("schema.task")]


# GraphQL field of Task -> the relation a list resolver can load for a whole page at once.
_TASK_RELATIONS = {"labels": "labels", "assignee": "assignee", "createdBy": "created_by"}


def task_relations_asked(info: Info) -> set[str]:
    """The task relations the query asks of a task connection's items (`nodes { ... }` or
    `edges { node { ... } }`, fragments included). Kept per field nodes: it reads names only,
    and a board asks it once per column."""
    nodes = info._raw_info.field_nodes
    key = tuple(map(id, nodes))
    cached = _ASKED.get(key)
    if cached is not None and all(a is b for a, b in zip(cached[0], nodes)):
        return cached[1]
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
    if len(_ASKED) >= 1024:
        _ASKED.pop(next(iter(_ASKED)))
    # The nodes stay referenced with the answer: their ids cannot be reused meanwhile.
    _ASKED[key] = (tuple(nodes), frozenset(asked))
    return frozenset(asked)


_ASKED: dict[tuple, tuple[tuple, frozenset]] = {}


def _task_connection():
    from schema.task import TaskConnection

    return TaskConnection


@strawberry.type(description="A typed property that tasks of a project may carry.")
class CustomFieldDefinition(Node):
    is_type_of = model_type_check(FieldModel)
    key: str = strawberry.field(
        description="The key of its value in `Task.customProperties`; unique in the project."
    )
    name: str = strawberry.field(description="Display name.")
    type: CustomFieldType = strawberry.field(description="The type every value must have.")
    required: bool = strawberry.field(description="Every task of the project carries a value.")
    created_at: datetime = strawberry.field(description="When the field was defined.")

    id: strawberry.ID = node_id("CustomFieldDefinition")

    @strawberry.field(description="Allowed values for SELECT and MULTI_SELECT fields.")
    def options(self) -> list[str]:
        return self.options


@strawberry.type(description="A user's membership of a project.")
class ProjectMember(Node):
    is_type_of = model_type_check(ProjectMemberModel)
    role: ProjectRole = strawberry.field(
        description="The role given in this project (an organization owner or admin may act "
        "with a higher one: see `Project.viewerRole`)."
    )
    created_at: datetime = strawberry.field(description="When the user was added.")

    id: strawberry.ID = node_id("ProjectMember")

    @strawberry.field(description="The member.")
    def user(self, info: Info) -> UserRef:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.user, self.user_id)

    @strawberry.field(description="The project.")
    def project(self, info: Info) -> Project:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.project, self.project_id)


@strawberry.type(description="A page of project members, in the order they were added.")
class ProjectMemberConnection(Connection[ProjectMember]):
    pass


@strawberry.type(description="One status column of a board.")
class BoardColumn:
    status: TaskStatus = strawberry.field(description="The column's status.")
    _project: strawberry.Private[ProjectModel]

    @strawberry.field(
        description="Tasks of this column that are not archived, ordered by position."
    )
    async def tasks(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> TaskConnectionRef:
        page = await project_resolvers.column_tasks(
            ctx(info), self._project, self.status, first, after, last, before,
            load=task_relations_asked(info),
        )
        return _task_connection().of(page)


@strawberry.type(description="A project's board: the five status columns in order.")
class Board:
    _project: strawberry.Private[ProjectModel]

    @strawberry.field(description="TODO, INPROGRESS, INREVIEW, DONE, CANCELLED, in this order.")
    def columns(self) -> list[BoardColumn]:
        return [BoardColumn(status=s, _project=self._project) for s in TaskStatusModel]


@strawberry.type(description="A project of an organization, with its board.")
class Project(Node):
    is_type_of = model_type_check(ProjectModel)
    name: str = strawberry.field(description="1 to 200 characters.")
    description: str = strawberry.field(
        description='Plain text, up to 50,000 characters; "" when there is none.'
    )
    created_at: datetime = strawberry.field(description="When the project was created.")
    updated_at: datetime = strawberry.field(description="When the project last changed.")
    archived_at: datetime | None = strawberry.field(
        description="When the project was archived; null while it is active."
    )

    id: strawberry.ID = node_id("Project")

    @strawberry.field(description="The organization the project belongs to.")
    def organization(self, info: Info) -> OrganizationRef:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.organization, self.organization_id)

    @strawberry.field(description="The viewer's effective role in this project.")
    def viewer_role(self, info: Info) -> ProjectRole:
        return ctx(info).access.project_role(self)

    @strawberry.field(description="The board: the status columns with their tasks.")
    def board(self) -> Board:
        return Board(_project=self)

    @strawberry.field(
        description="The board's event-log position as of this read. Query it with the board, "
        "then subscribe to `boardEvents(after: eventCursor)`: nothing between the read and the "
        "subscription is missed."
    )
    def event_cursor(self) -> str:
        return encode_board_cursor(self.id, self.event_seq)

    @strawberry.field(
        description="The project's tasks, filtered and ordered; by default every task that is "
        "not archived, by position."
    )
    async def tasks(
        self,
        info: Info,
        filter: Annotated[
            TaskFilterRef | None, strawberry.argument(description="Which tasks; all open ones if omitted.")
        ] = None,
        order_by: Annotated[
            TaskOrderRef | None, strawberry.argument(description="The order; POSITION ASC if omitted.")
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
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

    @strawberry.field(
        description="The project's members, in the order they were added (organization owners "
        "and admins who were not added are not listed)."
    )
    async def members(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> ProjectMemberConnection:
        page = await project_resolvers.project_members(ctx(info), self, first, after, last, before)
        return ProjectMemberConnection.of(page)

    @strawberry.field(description="Number of project members.")
    def member_count(self, info: Info) -> int:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.member_count_by_project, self.id)

    @strawberry.field(description="The project's labels, by name.")
    def labels(self, info: Info) -> list[Label]:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.labels_by_project, self.id)

    @strawberry.field(description="The custom task properties defined for the project, oldest first.")
    def custom_fields(self, info: Info) -> list[CustomFieldDefinition]:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.custom_fields_by_project, self.id)


@strawberry.type(description="A page of projects, by name.")
class ProjectConnection(Connection[Project]):
    pass


@strawberry.input(description="A new project.")
class CreateProjectInput:
    organization_id: strawberry.ID = strawberry.field(
        description="The organization; any of its members may create projects."
    )
    name: str = strawberry.field(description="1 to 200 characters.")
    description: str | None = strawberry.field(
        default=None, description="Plain text, up to 50,000 characters."
    )


@strawberry.type(description="The result of a project mutation.")
class ProjectPayload:
    project: Project | None = strawberry.field(description="The project as it is now.")


@strawberry.input(description="New name or description of a project; omitted fields stay.")
class UpdateProjectInput:
    project_id: strawberry.ID = strawberry.field(description="The project; not archived.")
    name: str | None = strawberry.field(
        default=None, description="1 to 200 characters; null leaves it unchanged."
    )
    description: str | None = strawberry.field(
        default=None, description="Null leaves it unchanged; \"\" clears it."
    )


@strawberry.input(description="The project to archive.")
class ArchiveProjectInput:
    project_id: strawberry.ID = strawberry.field(description="The project.")


@strawberry.input(description="A user to add to a project.")
class AddProjectMemberInput:
    project_id: strawberry.ID = strawberry.field(description="The project.")
    user_id: strawberry.ID = strawberry.field(
        description="A User ID; a member of the project's organization."
    )
    role: ProjectRole = strawberry.field(description="Their role; only project owners add owners.")


@strawberry.input(description="A new role for a project member.")
class UpdateProjectMemberRoleInput:
    member_id: strawberry.ID = strawberry.field(description="A ProjectMember ID.")
    role: ProjectRole = strawberry.field(
        description="The new role; only project owners grant or revoke OWNER."
    )


@strawberry.input(description="The project membership to end.")
class RemoveProjectMemberInput:
    member_id: strawberry.ID = strawberry.field(description="A ProjectMember ID.")


@strawberry.type(description="The result of a project membership mutation.")
class ProjectMemberPayload:
    member: ProjectMember | None = strawberry.field(description="The membership as it is now.")


@strawberry.type(description="The result of removeProjectMember.")
class RemoveProjectMemberPayload:
    removed_member_id: strawberry.ID = strawberry.field(
        description="The ID the membership had; drop it from client caches."
    )


@strawberry.type(description="Project and project membership mutations.")
class ProjectMutations:
    @mutation(
        requires=in_org(OrgPermission.CREATE_PROJECT),
        description='Create a project; the creator becomes its owner.',
    )
    async def create_project(
        self,
        info: Info,
        input: Annotated[
            CreateProjectInput, strawberry.argument(description="The project to create.")
        ],
    ) -> ProjectPayload:
        project = await project_resolvers.create_project(
            ctx(info),
            decode_id(input.organization_id, "Organization", "organizationId"),
            input.name,
            input.description,
        )
        return ProjectPayload(project=project)

    @mutation(
        requires=in_project(Permission.MANAGE_PROJECT),
        description='Rename or re-describe a project.',
    )
    async def update_project(
        self,
        info: Info,
        input: Annotated[
            UpdateProjectInput, strawberry.argument(description="The project and what changes.")
        ],
    ) -> ProjectPayload:
        project = await project_resolvers.update_project(
            ctx(info),
            decode_id(input.project_id, "Project", "projectId"),
            name=input.name,
            description=input.description,
        )
        return ProjectPayload(project=project)

    @mutation(
        requires=in_project(Permission.ARCHIVE_PROJECT),
        description='Archive a project. Idempotent: an archived project is returned unchanged.',
    )
    async def archive_project(
        self,
        info: Info,
        input: Annotated[
            ArchiveProjectInput, strawberry.argument(description="The project to archive.")
        ],
    ) -> ProjectPayload:
        project = await project_resolvers.archive_project(
            ctx(info), decode_id(input.project_id, "Project", "projectId")
        )
        return ProjectPayload(project=project)

    @mutation(
        requires=in_project(Permission.MANAGE_MEMBERS, also="only project owners add owners"),
        description='Add a member of the organization to a project.',
    )
    async def add_project_member(
        self,
        info: Info,
        input: Annotated[
            AddProjectMemberInput, strawberry.argument(description="The project, the user and the role.")
        ],
    ) -> ProjectMemberPayload:
        member = await member_resolvers.add_project_member(
            ctx(info),
            decode_id(input.project_id, "Project", "projectId"),
            decode_id(input.user_id, "User", "userId"),
            input.role,
        )
        return ProjectMemberPayload(member=member)

    @mutation(
        requires=in_project(Permission.MANAGE_MEMBERS, also="only project owners make, change or demote owners, and the last owner stays"),
        description="Change a project member's role.",
    )
    async def update_project_member_role(
        self,
        info: Info,
        input: Annotated[
            UpdateProjectMemberRoleInput, strawberry.argument(description="The membership and its new role.")
        ],
    ) -> ProjectMemberPayload:
        member = await member_resolvers.update_project_member_role(
            ctx(info), decode_id(input.member_id, "ProjectMember", "memberId"), input.role
        )
        return ProjectMemberPayload(member=member)

    @mutation(
        requires=in_project(Permission.MANAGE_MEMBERS, also="anyone may leave; only project owners remove owners, and the last owner stays"),
        description='Remove a project member (or leave, with your own membership).',
    )
    async def remove_project_member(
        self,
        info: Info,
        input: Annotated[
            RemoveProjectMemberInput, strawberry.argument(description="The membership to end.")
        ],
    ) -> RemoveProjectMemberPayload:
        member_id = await member_resolvers.remove_project_member(
            ctx(info), decode_id(input.member_id, "ProjectMember", "memberId")
        )
        return RemoveProjectMemberPayload(
            removed_member_id=strawberry.ID(to_global_id("ProjectMember", member_id))
        )


__all__ = ["JSON"]


@strawberry.type(description="A label that can be put on tasks of one project.")
class Label(Node):
    is_type_of = model_type_check(LabelModel)
    name: str = strawberry.field(description="1 to 50 characters, unique in the project.")
    color: str = strawberry.field(description="Hex color, lowercase, like #1f6feb.")
    created_at: datetime = strawberry.field(description="When the label was created.")

    id: strawberry.ID = node_id("Label")

    @strawberry.field(description="The project the label belongs to.")
    def project(self, info: Info) -> Project:
        loaders = ctx(info).loaders
        return loaders.ready(loaders.project, self.project_id)


@strawberry.input(description="A new label.")
class CreateLabelInput:
    project_id: strawberry.ID = strawberry.field(description="The project; not archived.")
    name: str = strawberry.field(description="1 to 50 characters, unique in the project.")
    color: str = strawberry.field(description="A hex color like #1f6feb.")


@strawberry.input(description="A new custom field of a project.")
class DefineCustomFieldInput:
    project_id: strawberry.ID = strawberry.field(description="The project; not archived.")
    key: str = strawberry.field(
        description="Property key: a-z, 0-9 and _, starting with a letter; unique in the project."
    )
    name: str = strawberry.field(description="Display name, 1 to 200 characters.")
    type: CustomFieldType = strawberry.field(description="The type every value must have.")
    options: list[str] | None = strawberry.field(
        default=None, description="Required for SELECT and MULTI_SELECT (1-100 unique values)."
    )
    required: bool = strawberry.field(
        default=False, description="Only allowed while the project has no tasks."
    )


@strawberry.type(description="The result of createLabel.")
class LabelPayload:
    label: Label | None = strawberry.field(description="The new label.")


@strawberry.type(description="The result of defineCustomField.")
class CustomFieldDefinitionPayload:
    field: CustomFieldDefinition | None = strawberry.field(description="The new field.")


@strawberry.type(description="Label and custom-field mutations.")
class LabelMutations:
    @mutation(
        requires=in_project(Permission.MANAGE_LABELS),
        description='Create a label in a project.',
    )
    async def create_label(
        self,
        info: Info,
        input: Annotated[CreateLabelInput, strawberry.argument(description="The label to create.")],
    ) -> LabelPayload:
        label = await label_resolvers.create_label(
            ctx(info), decode_id(input.project_id, "Project", "projectId"), input.name, input.color
        )
        return LabelPayload(label=label)

    @mutation(
        requires=in_project(Permission.MANAGE_PROJECT),
        description='Define a custom task property for a project.',
    )
    async def define_custom_field(
        self,
        info: Info,
        input: Annotated[
            DefineCustomFieldInput, strawberry.argument(description="The field to define.")
        ],
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
