"""Comments on tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from models import Comment, Task
from resolvers import validation
from resolvers.access import Permission
from resolvers.errors import BadInput
from resolvers.task.tasks import writable_task
from resolvers.writes import transaction

if TYPE_CHECKING:
    from resolvers.context import Context


def snapshot(comment: Comment) -> dict:
    return {
        "id": comment.id,
        "taskId": comment.task_id,
        "authorId": comment.author_id,
        "body": comment.body,
        "createdAt": comment.created_at.isoformat(),
        "updatedAt": comment.updated_at.isoformat(),
    }


async def add_comment(ctx: Context, task_id: int, body: str) -> tuple[Comment, Task]:
    task = await writable_task(ctx, task_id, Permission.COMMENT)
    if task.archived_at is not None:
        raise BadInput("The task is archived; unarchive it to comment", field="taskId")
    body = validation.text(body, "body", max_len=validation.COMMENT_MAX)
    async with transaction(ctx) as tx:
        await tx.lock_project(task.project_id)
        comment = await Comment.create(task_id=task.id, author_id=ctx.access.user_id, body=body)
        after = snapshot(comment)
        await tx.audit(
            "comment.create",
            "Comment",
            comment.id,
            organization_id=task.project.organization_id,
            after=after,
        )
        await tx.event(
            task.project_id,
            "CommentAdded",
            {"taskId": task.id, "commentId": comment.id, "comment": after},
        )
    return comment, task
