"""The builtin provider's requests, each acting through the real resolvers as the asking user."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models import (
    BoardEvent,
    Comment,
    Label,
    OrgRole,
    ProjectRole,
    Task,
    TaskLabel,
    TaskPriority,
    TaskStatus,
)
from tests.nora_support import make_team, pk, send, settled, start


@pytest.fixture
async def board(factory, gql):
    owner, org, project = await make_team(factory)
    linus = await factory.user("Linus")
    await factory.org_member(org, linus, OrgRole.MEMBER)
    await factory.project_member(project, linus, ProjectRole.EDITOR)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    tasks = {}
    for i, (title, status, assignee, due) in enumerate([
        ("Fix login", TaskStatus.TODO, None, yesterday),
        ("Fix logout", TaskStatus.TODO, None, None),
        ("Write docs", TaskStatus.INPROGRESS, owner.user, None),
        ("Deploy", TaskStatus.TODO, linus.user, None),
    ]):
        tasks[title] = await Task.create(
            project=project, title=title, status=status, priority=TaskPriority.MEDIUM, priority_rank=2,
            position=f"a{i}", assignee=assignee, created_by=owner.user, due_date=due,
        )
    blocked = await Label.create(project=project, name="Blocked", color="#ff0000")
    await TaskLabel.create(task=tasks["Deploy"], label=blocked)
    conversation = await start(gql, owner.token, org, project)
    return {"owner": owner, "linus": linus, "project": project, "tasks": tasks, "conversation": conversation}


async def ask(gql, board, text: str) -> str:
    sent = await send(gql, board["owner"].token, board["conversation"]["id"], text)
    reply = await settled(pk(sent["assistantMessage"]["id"]))
    assert reply.status.value == "complete", reply.error_message
    return reply.content


async def test_reading_requests(gql, board):
    overdue = await ask(gql, board, "list overdue tasks")
    assert "I found 1 overdue tasks:\n- Fix login (To do, medium" in overdue
    mine = await ask(gql, board, "what are my tasks?")
    assert "- Write docs (In progress, medium, Olga)" in mine and "Deploy" not in mine
    blocked = await ask(gql, board, "anything blocked?")
    assert "I found 1 blocked tasks:\n- Deploy" in blocked
    summary = await ask(gql, board, "summarize the board")
    assert "Website: 4 open tasks — 3 to do, 1 in progress, 0 in review; 0 done, 0 cancelled." in summary
    assert "1 overdue" in summary and "2 unassigned" in summary and "1 blocked" in summary
    team = await ask(gql, board, "who is on the team")
    assert "- Linus <" in team and "(member)" in team and "- Olga <" in team and "(owner)" in team
    found = await ask(gql, board, 'find "log"')
    assert "Fix login" in found and "Fix logout" in found
    shown = await ask(gql, board, 'show task "Deploy"')
    assert "Labels: Blocked" in shown
    assert await BoardEvent.all().count() == 0  # reading writes nothing


async def test_writing_requests_change_the_board_as_the_user(gql, board):
    tasks, owner, linus = board["tasks"], board["owner"], board["linus"]
    moved = await ask(gql, board, 'move "Fix login" to done')
    assert moved.endswith('Done: "Fix login" — I moved it to Done.')
    assigned = await ask(gql, board, "assign Write docs to linus")
    assert 'assigned it to Linus' in assigned
    prioritized = await ask(gql, board, 'set priority of "Deploy" to critical')
    assert "set its priority to critical" in prioritized
    commented = await ask(gql, board, 'comment on "Deploy": waiting on infra')
    assert commented.endswith('Commented on "Deploy".')

    assert (await Task.get(id=tasks["Fix login"].id)).status is TaskStatus.DONE
    assert (await Task.get(id=tasks["Write docs"].id)).assignee_id == linus.user.id
    assert (await Task.get(id=tasks["Deploy"].id)).priority is TaskPriority.CRITICAL
    comment = await Comment.get(task_id=tasks["Deploy"].id)
    assert (comment.body, comment.author_id) == ("waiting on infra", owner.user.id)
    events = await BoardEvent.filter(project_id=board["project"].id).order_by("seq").values_list("type", "actor_id")
    assert events == [
        ("TaskUpdated", owner.user.id), ("TaskUpdated", owner.user.id), ("TaskUpdated", owner.user.id),
        ("CommentAdded", owner.user.id),
    ]


async def test_unclear_requests_change_nothing(gql, board):
    ambiguous = await ask(gql, board, 'move "Fix" to done')
    assert '2 tasks match "Fix".' in ambiguous and "- Fix login" in ambiguous and "- Fix logout" in ambiguous
    missing = await ask(gql, board, 'move "Nope" to done')
    assert 'I couldn\'t find a task matching "Nope"' in missing
    nobody = await ask(gql, board, 'assign "Deploy" to Zed')
    assert "Nobody called \"Zed\"" in nobody
    help_text = await ask(gql, board, "write me a poem")
    assert help_text.startswith("I'm NORA") and "create a task" in help_text
    assert await BoardEvent.all().count() == 0
    assert {t.status for t in await Task.all()} == {TaskStatus.TODO, TaskStatus.INPROGRESS}
