"""Comments on tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from models import AuditAction, BoardEventType, Comment, Task
from models.snapshot import dump
from resolvers import validation
from resolvers.access import Permission
from resolvers.errors import BadInput
from resolvers.task.tasks import writable_task
from resolvers.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from resolvers.context import Context


async def add_comment(ctx: Context, task_id: int, body: str) -> tuple[Comment, Task]:
    task = await writable_task(ctx, task_id, Permission.COMMENT)
    if task.archived_at is not None:
        raise BadInput("The task is archived; unarchive it to comment", field="taskId")
    body = validation.text(body, "body", max_len=validation.COMMENT_MAX)
    async with unit_of_work(ctx) as work:
        await work.lock_project(task.project_id)
        comment = await Comment.create(task_id=task.id, author_id=ctx.access.user_id, body=body)
        after = dump(comment)
        await work.audit(
            AuditAction.COMMENT_CREATE, comment.id,
            organization_id=task.project.organization_id,
            after=after,
        )
        await work.event(
            task.project_id,
            BoardEventType.COMMENT_ADDED,
            {"taskId": task.id, "commentId": comment.id, "comment": after},
        )
    return comment, task
