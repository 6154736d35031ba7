"""Live updates: typed board events and the subscriptions that stream them."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from models import BoardEvent as EventModel
from models import CustomFieldDefinition as FieldModel
from models import Label as LabelModel
from models import Project as ProjectModel
from models import Task as TaskModel
from models import TaskComment as CommentModel
from models import enums
from resolvers import streams
from resolvers.ids import decode_id, to_global_id
from resolvers.loaders import Loaders
from schema import sharing
from schema.common import ProjectRole, TaskStatus, ctx

if TYPE_CHECKING:
    from schema.projects import CustomFieldDefinition, Project
    from schema.tasks import Comment, Label, Task
    from schema.users import User

UserRef = Annotated["User", strawberry.lazy("schema.users")]
TaskRef = Annotated["Task", strawberry.lazy("schema.tasks")]
CommentRef = Annotated["Comment", strawberry.lazy("schema.tasks")]
LabelRef = Annotated["Label", strawberry.lazy("schema.tasks")]
ProjectRef = Annotated["Project", strawberry.lazy("schema.projects")]
FieldRef = Annotated["CustomFieldDefinition", strawberry.lazy("schema.projects")]


@strawberry.interface(description="Something that changed on a board. Resume with `after: cursor`.")
class BoardEvent:
    _e: strawberry.Private[EventModel]

    @strawberry.field(description="Pass as `after` to resume right after this event.")
    def cursor(self) -> str:
        return streams.encode_cursor(self._e.project_id, self._e.seq)

    @strawberry.field(description="Position in the project's event log; increases by one.")
    def seq(self) -> int:
        return self._e.seq

    @strawberry.field
    def occurred_at(self) -> datetime:
        return self._e.created_at

    @strawberry.field
    def project_id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Project", self._e.project_id))

    @strawberry.field
    async def actor(self, info: Info) -> UserRef | None:
        loaders = ctx(info).loaders
        return await loaders.load_optional(loaders.user, self._e.actor_id)

    @property
    def payload(self) -> dict:
        return self._e.payload


def _task(event: BoardEvent) -> TaskModel:
    return streams.materialize(TaskModel, event.payload.get("task"))


@strawberry.type
class TaskCreated(BoardEvent):
    @strawberry.field
    def task(self) -> TaskRef:
        return _task(self)


@strawberry.type
class TaskUpdated(BoardEvent):
    @strawberry.field
    def task(self) -> TaskRef:
        return _task(self)

    @strawberry.field(description="Names of the fields that changed (API names, e.g. dueDate).")
    def changed_fields(self) -> list[str]:
        return list(self.payload.get("changed", []))


@strawberry.type
class TaskMoved(BoardEvent):
    @strawberry.field
    def task(self) -> TaskRef:
        return _task(self)

    @strawberry.field
    def from_status(self) -> TaskStatus:
        return enums.TaskStatus(self.payload["fromStatus"])

    @strawberry.field
    def to_status(self) -> TaskStatus:
        return enums.TaskStatus(self.payload["toStatus"])

    @strawberry.field
    def position(self) -> str:
        return self.payload["position"]


@strawberry.type
class TaskArchived(BoardEvent):
    @strawberry.field
    def task(self) -> TaskRef:
        return _task(self)


@strawberry.type
class TaskUnarchived(BoardEvent):
    @strawberry.field
    def task(self) -> TaskRef:
        return _task(self)


@strawberry.type
class TaskDeleted(BoardEvent):
    @strawberry.field
    def task_id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Task", self.payload["taskId"]))

    @strawberry.field
    def status(self) -> TaskStatus:
        return enums.TaskStatus(self.payload["status"])


@strawberry.type
class CommentAdded(BoardEvent):
    @strawberry.field
    def task_id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Task", self.payload["taskId"]))

    @strawberry.field
    def comment(self) -> CommentRef:
        return streams.materialize(CommentModel, self.payload["comment"])


@strawberry.type
class LabelCreated(BoardEvent):
    @strawberry.field
    def label(self) -> LabelRef:
        return streams.materialize(LabelModel, self.payload["label"])


@strawberry.type
class CustomFieldDefined(BoardEvent):
    @strawberry.field
    def field(self) -> FieldRef:
        return streams.materialize(FieldModel, self.payload["field"])


@strawberry.type
class ProjectUpdated(BoardEvent):
    @strawberry.field
    def project(self) -> ProjectRef:
        return streams.materialize(ProjectModel, self.payload["project"])

    @strawberry.field
    def changed_fields(self) -> list[str]:
        return list(self.payload.get("changed", []))


@strawberry.type
class ProjectArchived(BoardEvent):
    @strawberry.field
    def project(self) -> ProjectRef:
        return streams.materialize(ProjectModel, self.payload["project"])


@strawberry.interface(description="A change of project membership.")
class MemberEvent(BoardEvent):
    @strawberry.field
    def member_id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("ProjectMember", self.payload["memberId"]))

    @strawberry.field
    async def user(self, info: Info) -> UserRef | None:
        return await ctx(info).loaders.user.load(self.payload["userId"])

    @strawberry.field
    def role(self) -> ProjectRole:
        return enums.ProjectRole(self.payload["role"])


@strawberry.type
class MemberAdded(MemberEvent):
    pass


@strawberry.type
class MemberRemoved(MemberEvent):
    pass


@strawberry.type
class MemberRoleChanged(MemberEvent):
    @strawberry.field
    def previous_role(self) -> ProjectRole | None:
        previous = self.payload.get("previousRole")
        return enums.ProjectRole(previous) if previous else None


@strawberry.type(
    description="The cursor is older than the events kept: refetch the board, then "
    "subscribe again with this event's cursor."
)
class ResyncRequired(BoardEvent):
    @strawberry.field
    def reason(self) -> str:
        return "The requested cursor is older than the retained event log"


EVENT_TYPES: dict[str, type[BoardEvent]] = {
    cls.__name__: cls
    for cls in (
        TaskCreated, TaskUpdated, TaskMoved, TaskArchived, TaskUnarchived, TaskDeleted,
        CommentAdded, LabelCreated, CustomFieldDefined, ProjectUpdated, ProjectArchived,
        MemberAdded, MemberRemoved, MemberRoleChanged,
    )
}
TASK_EVENTS = frozenset(
    {"TaskCreated", "TaskUpdated", "TaskMoved", "TaskArchived", "TaskUnarchived", "TaskDeleted", "CommentAdded"}
)


def _typed(item) -> BoardEvent | None:
    if isinstance(item, streams.ResyncRequired):
        marker = EventModel(
            project_id=item.project_id, seq=item.seq, type="ResyncRequired", payload={},
            actor_id=None, created_at=item.occurred_at,
        )
        return ResyncRequired(_e=marker)
    cls = EVENT_TYPES.get(item.type)
    return cls(_e=item) if cls else None


def _shared(typed: BoardEvent, viewer, project: ProjectModel) -> BoardEvent:
    # What ROLES fields read of the viewer: its roles on the event's project and org. A
    # selection with VIEWER fields is keyed on the viewer itself (schema/sharing.py).
    signature = (viewer.project_role(project), viewer.org_role(project.organization_id))
    return sharing.mark(typed, typed._e, signature, viewer)


async def _fresh_loaders(info: Info) -> None:
    # A websocket shares one context across its operations: give each event its own
    # loaders so nothing is served from a cache filled before the change.
    ctx(info).loaders = Loaders()


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Changes on a project's board, in seq order. With `after`, the events "
        "since that cursor are replayed first: a client that resubscribes with its last "
        "cursor misses nothing."
    )
    async def board_events(
        self, info: Info, project_id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[BoardEvent, None]:
        pid = decode_id(project_id, "Project", "projectId")
        viewer = ctx(info).viewer
        project = await viewer.project(pid)
        async for item in streams.board_events(ctx(info), pid, after):
            typed = _typed(item)
            if typed is not None:
                await _fresh_loaders(info)
                yield _shared(typed, viewer, project)

    @strawberry.subscription(
        description="Changes to one task (and comments on it), for a detail view."
    )
    async def task_changed(
        self, info: Info, id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[BoardEvent, None]:
        task = await ctx(info).viewer.task(decode_id(id, "Task"))
        project = task.project
        async for item in streams.board_events(ctx(info), task.project_id, after):
            resync = isinstance(item, streams.ResyncRequired)
            if not resync and not (item.type in TASK_EVENTS and item.payload.get("taskId") == task.id):
                continue
            await _fresh_loaders(info)
            yield _shared(_typed(item), ctx(info).viewer, project)
            if not resync and item.type == "TaskDeleted":
                return
