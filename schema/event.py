"""Event: typed board events and the subscriptions that stream them."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

import models as enums
from models import BoardEvent as EventModel
from models import BoardEventType, snapshot
from models import Comment as CommentModel
from models import CustomFieldDefinition as FieldModel
from models import Label as LabelModel
from models import Project as ProjectModel
from models import Task as TaskModel
from resolvers.event import streams
from resolvers.ids import decode_id, to_global_id
from resolvers.loaders import Loaders
from schema import sharing
from schema.common import Info, ProjectRole, TaskStatus, ctx

if TYPE_CHECKING:
    from schema.identity import User
    from schema.project import CustomFieldDefinition, Label, Project
    from schema.task import Comment, Task

UserRef = Annotated["User", strawberry.lazy("schema.identity")]
TaskRef = Annotated["Task", strawberry.lazy("schema.task")]
CommentRef = Annotated["Comment", strawberry.lazy("schema.task")]
LabelRef = Annotated["Label", strawberry.lazy("schema.project")]
ProjectRef = Annotated["Project", strawberry.lazy("schema.project")]
FieldRef = Annotated["CustomFieldDefinition", strawberry.lazy("schema.project")]


@strawberry.interface(description="Something that changed on a board. Resume with `after: cursor`.")
class BoardEvent:
    _e: strawberry.Private[EventModel]

    @strawberry.field(description="Pass as `after` to resume right after this event.")
    def cursor(self) -> str:
        return streams.encode_cursor(self._e.project_id, self._e.seq)

    @strawberry.field(description="Position in the project's event log; increases by one.")
    def seq(self) -> int:
        return self._e.seq

    @strawberry.field(description="When the change was committed.")
    def occurred_at(self) -> datetime:
        return self._e.created_at

    @strawberry.field(description="The project whose board changed.")
    def project_id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Project", self._e.project_id))

    @strawberry.field(
        description="Who made the change (the user behind an API key or a NORA tool call); "
        "null when unknown."
    )
    async def actor(self, info: Info) -> UserRef | None:
        loaders = ctx(info).loaders
        return await loaders.load_optional(loaders.user, self._e.actor_id)

    @property
    def payload(self) -> dict:
        return self._e.payload


def _task(event: BoardEvent) -> TaskModel:
    return snapshot.load(TaskModel, event.payload.get("task"))


@strawberry.type(description="A task was created.")
class TaskCreated(BoardEvent):
    @strawberry.field(description="The task as created.")
    def task(self) -> TaskRef:
        return _task(self)


@strawberry.type(
    description="Fields of a task changed by updateTask (a status change there included); "
    "moveTask sends TaskMoved instead."
)
class TaskUpdated(BoardEvent):
    @strawberry.field(description="The task as of this event.")
    def task(self) -> TaskRef:
        return _task(self)

    @strawberry.field(description="Names of the fields that changed (API names, e.g. dueDate).")
    def changed_fields(self) -> list[str]:
        return list(self.payload.get("changed", []))


@strawberry.type(description="A task changed column or rank.")
class TaskMoved(BoardEvent):
    @strawberry.field(description="The task as of this event.")
    def task(self) -> TaskRef:
        return _task(self)

    @strawberry.field(description="The column it left (the same as toStatus for a reorder).")
    def from_status(self) -> TaskStatus:
        return enums.TaskStatus(self.payload["fromStatus"])

    @strawberry.field(description="The column it is in now.")
    def to_status(self) -> TaskStatus:
        return enums.TaskStatus(self.payload["toStatus"])

    @strawberry.field(description="Its new rank in toStatus (see `Task.position`).")
    def position(self) -> str:
        return self.payload["position"]


@strawberry.type(description="A task was taken off the board.")
class TaskArchived(BoardEvent):
    @strawberry.field(description="The task as of this event.")
    def task(self) -> TaskRef:
        return _task(self)


@strawberry.type(description="An archived task was put back on the board.")
class TaskUnarchived(BoardEvent):
    @strawberry.field(description="The task as of this event.")
    def task(self) -> TaskRef:
        return _task(self)


@strawberry.type(description="A task was deleted.")
class TaskDeleted(BoardEvent):
    @strawberry.field(description="The ID the task had.")
    def task_id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Task", self.payload["taskId"]))

    @strawberry.field(description="The column it was in.")
    def status(self) -> TaskStatus:
        return enums.TaskStatus(self.payload["status"])


@strawberry.type(description="A comment was added to a task.")
class CommentAdded(BoardEvent):
    @strawberry.field(description="The task commented on.")
    def task_id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Task", self.payload["taskId"]))

    @strawberry.field(description="The new comment.")
    def comment(self) -> CommentRef:
        return snapshot.load(CommentModel, self.payload["comment"])


@strawberry.type(description="A label was created in the project.")
class LabelCreated(BoardEvent):
    @strawberry.field(description="The new label.")
    def label(self) -> LabelRef:
        return snapshot.load(LabelModel, self.payload["label"])


@strawberry.type(description="A custom field was defined for the project.")
class CustomFieldDefined(BoardEvent):
    @strawberry.field(description="The new field.")
    def field(self) -> FieldRef:
        return snapshot.load(FieldModel, self.payload["field"])


@strawberry.type(description="The project's name or description changed.")
class ProjectUpdated(BoardEvent):
    @strawberry.field(description="The project as of this event.")
    def project(self) -> ProjectRef:
        return snapshot.load(ProjectModel, self.payload["project"])

    @strawberry.field(description="Names of the fields that changed (API names, e.g. name).")
    def changed_fields(self) -> list[str]:
        return list(self.payload.get("changed", []))


@strawberry.type(description="The project was archived.")
class ProjectArchived(BoardEvent):
    @strawberry.field(description="The project as of this event.")
    def project(self) -> ProjectRef:
        return snapshot.load(ProjectModel, self.payload["project"])


@strawberry.interface(description="A change of project membership.")
class MemberEvent(BoardEvent):
    @strawberry.field(description="The ProjectMember ID of the membership.")
    def member_id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("ProjectMember", self.payload["memberId"]))

    @strawberry.field(description="The user whose membership changed.")
    async def user(self, info: Info) -> UserRef | None:
        return await ctx(info).loaders.user.load(self.payload["userId"])

    @strawberry.field(description="The role as of this event (for MemberRemoved: the role held).")
    def role(self) -> ProjectRole:
        return enums.ProjectRole(self.payload["role"])


@strawberry.type(description="A user was added to the project.")
class MemberAdded(MemberEvent):
    pass


@strawberry.type(description="A user left or was removed from the project.")
class MemberRemoved(MemberEvent):
    pass


@strawberry.type(description="A project member's role changed.")
class MemberRoleChanged(MemberEvent):
    @strawberry.field(description="The role before the change.")
    def previous_role(self) -> ProjectRole | None:
        previous = self.payload.get("previousRole")
        return enums.ProjectRole(previous) if previous else None


@strawberry.type(
    description="The cursor is older than the events kept: refetch the board, then "
    "subscribe again with this event's cursor."
)
class ResyncRequired(BoardEvent):
    @strawberry.field(description="Why a resync is needed, for people.")
    def reason(self) -> str:
        return "The requested cursor is older than the retained event log"


# Each stored event type and the GraphQL type that shows it, spelled out: a renamed class
# cannot drop events silently (tests/test_event_types.py checks both directions).
EVENT_TYPES: dict[BoardEventType, type[BoardEvent]] = {
    BoardEventType.TASK_CREATED: TaskCreated,
    BoardEventType.TASK_UPDATED: TaskUpdated,
    BoardEventType.TASK_MOVED: TaskMoved,
    BoardEventType.TASK_ARCHIVED: TaskArchived,
    BoardEventType.TASK_UNARCHIVED: TaskUnarchived,
    BoardEventType.TASK_DELETED: TaskDeleted,
    BoardEventType.COMMENT_ADDED: CommentAdded,
    BoardEventType.LABEL_CREATED: LabelCreated,
    BoardEventType.CUSTOM_FIELD_DEFINED: CustomFieldDefined,
    BoardEventType.PROJECT_UPDATED: ProjectUpdated,
    BoardEventType.PROJECT_ARCHIVED: ProjectArchived,
    BoardEventType.MEMBER_ADDED: MemberAdded,
    BoardEventType.MEMBER_REMOVED: MemberRemoved,
    BoardEventType.MEMBER_ROLE_CHANGED: MemberRoleChanged,
}
_BY_STORED = {member.value: cls for member, cls in EVENT_TYPES.items()}
# The events taskChanged(id) delivers: those about one task.
TASK_EVENTS = frozenset(
    member.value
    for member in (
        BoardEventType.TASK_CREATED, BoardEventType.TASK_UPDATED, BoardEventType.TASK_MOVED,
        BoardEventType.TASK_ARCHIVED, BoardEventType.TASK_UNARCHIVED, BoardEventType.TASK_DELETED,
        BoardEventType.COMMENT_ADDED,
    )
)


def _typed(item) -> BoardEvent | None:
    if isinstance(item, streams.LogGap):
        marker = EventModel(
            project_id=item.project_id, seq=item.seq, type="ResyncRequired", payload={},
            actor_id=None, created_at=item.occurred_at,
        )
        return ResyncRequired(_e=marker)
    cls = _BY_STORED.get(item.type)
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


@strawberry.type(description="Live updates, over a websocket (graphql-transport-ws or graphql-ws).")
class Subscription:
    @strawberry.subscription(
        description="Changes on a project's board, in seq order. With `after`, the events "
        "since that cursor are replayed first: a client that resubscribes with its last "
        "cursor misses nothing."
    )
    async def board_events(
        self,
        info: Info,
        project_id: Annotated[
            strawberry.ID,
            strawberry.argument(description="The project; any project role may watch."),
        ],
        after: Annotated[
            str | None,
            strawberry.argument(
                description="A `cursor` of an event or `Project.eventCursor`: replay what came "
                "after it. Live events only if omitted."
            ),
        ] = None,
    ) -> AsyncGenerator[BoardEvent, None]:
        pid = decode_id(project_id, "Project", "projectId")
        viewer = ctx(info).access
        project = await viewer.project(pid)
        async for item in streams.board_events(ctx(info), pid, after):
            typed = _typed(item)
            if typed is not None:
                await _fresh_loaders(info)
                yield _shared(typed, viewer, project)

    @strawberry.subscription(
        description="Changes to one task (and comments on it), for a detail view; ends after "
        "TaskDeleted. Any project role may watch."
    )
    async def task_changed(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The task.")],
        after: Annotated[
            str | None,
            strawberry.argument(
                description="A `cursor` of an event or `Project.eventCursor`: replay what came "
                "after it. Live events only if omitted."
            ),
        ] = None,
    ) -> AsyncGenerator[BoardEvent, None]:
        task = await ctx(info).access.task(decode_id(id, "Task"))
        project = task.project
        async for item in streams.board_events(ctx(info), task.project_id, after):
            resync = isinstance(item, streams.LogGap)
            if not resync and not (item.type in TASK_EVENTS and item.payload.get("taskId") == task.id):
                continue
            await _fresh_loaders(info)
            yield _shared(_typed(item), ctx(info).access, project)
            if not resync and item.type == "TaskDeleted":
                return
