"""addComment."""

from __future__ import annotations

from datetime import UTC, datetime

from models import (
    Comment,
    Task,
)
from tests.conftest import gid
from tests.tasks_support import (
    ADD_COMMENT,
    assert_dense,
    audits,
    events,
    make_task,
    rejected,
    team,
    tid,
)

# -- addComment --------------------------------------------------------------------------------


async def test_add_comment(gql, factory):
    t = await team(factory)
    task = await make_task(t.project, t.owner)
    data = await gql.ok(
        ADD_COMMENT, {"i": {"taskId": tid(task), "body": "  Looks good\n"}}, token=t.editor.token
    )
    out = data["addComment"]
    [row] = await Comment.filter(task_id=task.id)
    assert (row.body, row.author_id) == ("Looks good", t.editor.user.id)
    assert out["comment"] == {
        "id": gid("Comment", row.id),
        "body": "Looks good",
        "author": {"id": t.editor.gid},
        "task": {"id": tid(task)},
    }
    assert out["task"]["commentCount"] == 1
    assert out["task"]["comments"] == {
        "totalCount": 1,
        "nodes": [{"id": gid("Comment", row.id), "body": "Looks good"}],
    }
    # A comment is not a change to the task itself.
    assert (await Task.get(id=task.id)).version == 1

    [entry] = await audits("comment.create")
    assert entry.resource_type == "Comment" and entry.resource_id == str(row.id)
    assert entry.after == {
        "id": row.id,
        "taskId": task.id,
        "authorId": t.editor.user.id,
        "body": "Looks good",
        "createdAt": row.created_at.isoformat(),
        "updatedAt": row.updated_at.isoformat(),
    }
    assert entry.organization_id == t.org.id
    [evt] = await events(t.project)
    assert evt.type == "CommentAdded" and evt.seq == 1
    assert evt.payload == {"taskId": task.id, "commentId": row.id, "comment": entry.after}

    longest = "x" * 10_000
    await gql.ok(ADD_COMMENT, {"i": {"taskId": tid(task), "body": longest}}, token=t.admin.token)
    assert await Comment.filter(task_id=task.id, body=longest).exists()
    assert_dense(await events(t.project))


async def test_add_comment_rejections(gql, factory):
    t = await team(factory)
    task = await make_task(t.project, t.owner)
    archived = await make_task(t.project, t.owner, archived_at=datetime.now(UTC))
    cases = [
        ({"taskId": tid(task), "body": "x" * 10_001}, "BAD_USER_INPUT", "body"),
        ({"taskId": tid(task), "body": " \n\t "}, "BAD_USER_INPUT", "body"),
        ({"taskId": tid(task), "body": None}, "BAD_USER_INPUT", None),
        ({"taskId": t.project_gid, "body": "hi"}, "BAD_USER_INPUT", "taskId"),
        ({"taskId": "nope", "body": "hi"}, "BAD_USER_INPUT", None),
        ({"taskId": tid(archived), "body": "hi"}, "BAD_USER_INPUT", "taskId"),
        ({"taskId": gid("Task", 999_999), "body": "hi"}, "NOT_FOUND", None),
    ]
    for i, code, field in cases:
        await rejected(gql, ADD_COMMENT, {"i": i}, t.editor.token, code, field)
    await rejected(
        gql, ADD_COMMENT, {"i": {"taskId": tid(task), "body": "hi"}}, t.viewer.token, "FORBIDDEN"
    )
    outsider = await factory.user("Outsider")
    await rejected(
        gql, ADD_COMMENT, {"i": {"taskId": tid(task), "body": "hi"}}, outsider.token, "NOT_FOUND"
    )
