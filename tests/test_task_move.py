"""moveTask: fractional ranks between neighbours; a move rewrites exactly one row."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models import Task, TaskStatus
from tests.conftest import gid
from tests.tasks_support import (
    MOVE,
    assert_dense,
    audits,
    events,
    make_task,
    rejected,
    team,
    tid,
)

BOARD = """query($p: ID!) { project(id: $p) { board { columns {
    status tasks(first: 100) { nodes { id title position } } } } } }"""


async def _columns(gql, t) -> dict[str, list[str]]:
    data = await gql.ok(BOARD, {"p": t.project_gid}, token=t.viewer.token)
    columns = {}
    for column in data["project"]["board"]["columns"]:
        nodes = column["tasks"]["nodes"]
        positions = [n["position"] for n in nodes]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)
        columns[column["status"]] = [n["title"] for n in nodes]
    return columns


async def _rows() -> dict[int, tuple]:
    return {r.id: (r.status, r.position, r.version, r.updated_at) for r in await Task.all()}


async def _move(gql, t, task, status="TODO", after=None, before=None, **extra) -> dict:
    i = {"id": tid(task), "status": status, **extra}
    if after is not None:
        i["afterId"] = tid(after)
    if before is not None:
        i["beforeId"] = tid(before)
    return (await gql.ok(MOVE, {"i": i}, token=t.editor.token))["moveTask"]["task"]


async def _five(t):
    return [await make_task(t.project, t.owner, name) for name in "abcde"]


@pytest.mark.both_databases
async def test_move_between_two_neighbours_writes_only_the_moved_row(gql, factory):
    t = await team(factory)
    a, b, c, d, e = await _five(t)
    done = await make_task(t.project, t.owner, "x", status=TaskStatus.DONE)
    before = await _rows()

    out = await _move(gql, t, e, after=a, before=b, expectedVersion=1)
    assert out["status"] == "TODO" and out["version"] == 2
    assert a.position < out["position"] < b.position

    after = await _rows()
    assert after.pop(e.id)[:3] == (TaskStatus.TODO, out["position"], 2)
    before.pop(e.id)
    assert after == before  # every other task: same position, version and updated_at
    assert (await _columns(gql, t))["TODO"] == list("aebcd")
    assert done.id in after

    [evt] = await events(t.project)
    assert evt.type == "TaskMoved"
    assert evt.payload["taskId"] == e.id
    assert (evt.payload["fromStatus"], evt.payload["toStatus"]) == ("todo", "todo")
    assert evt.payload["position"] == out["position"]
    assert evt.payload["task"]["position"] == out["position"]
    [entry] = await audits("task.move")
    assert entry.before["position"] == e.position and entry.after["position"] == out["position"]
    assert entry.before["version"] == 1 and entry.after["version"] == 2


async def test_move_with_one_neighbour_finds_the_other(gql, factory):
    t = await team(factory)
    a, b, c, d, e = await _five(t)

    await _move(gql, t, a, after=c)  # below c: the slot between c and d
    assert (await _columns(gql, t))["TODO"] == list("bcade")
    await _move(gql, t, e, before=b)  # above b: the top
    assert (await _columns(gql, t))["TODO"] == list("ebcad")
    await _move(gql, t, b, after=d)  # below the last task: the bottom
    assert (await _columns(gql, t))["TODO"] == list("ecadb")
    await _move(gql, t, c, before=a)  # where it already is
    assert (await _columns(gql, t))["TODO"] == list("ecadb")
    assert_dense(await events(t.project))


async def test_move_across_columns(gql, factory):
    t = await team(factory)
    a, b, c, d, e = await _five(t)
    x = await make_task(t.project, t.owner, "x", status=TaskStatus.DONE)
    y = await make_task(t.project, t.owner, "y", status=TaskStatus.DONE)

    out = await _move(gql, t, c, status="DONE")  # no neighbours: bottom of the column
    assert out["status"] == "DONE" and out["position"] > y.position
    await _move(gql, t, a, status="DONE", after=x)
    await _move(gql, t, e, status="INREVIEW")  # an empty column
    await _move(gql, t, b, status="INREVIEW", before=e)

    columns = await _columns(gql, t)
    assert columns["TODO"] == ["d"]
    assert columns["DONE"] == ["x", "a", "y", "c"]
    assert columns["INREVIEW"] == ["b", "e"]
    evts = await events(t.project)
    assert_dense(evts)
    assert [(e.payload["fromStatus"], e.payload["toStatus"]) for e in evts] == [
        ("todo", "done"),
        ("todo", "done"),
        ("todo", "inreview"),
        ("todo", "inreview"),
    ]
    for task in (d, x, y):
        row = await Task.get(id=task.id)
        assert (row.position, row.version) == (task.position, 1)


async def test_repeated_moves_into_one_gap_keep_order(gql, factory):
    t = await team(factory)
    a, b, c, d, e = await _five(t)
    order = list("abcde")
    tasks = {task.title: task for task in (a, b, c, d, e)}
    for _ in range(12):
        # Always squeeze the bottom task in right under the top one.
        mover = tasks[order[-1]]
        await _move(gql, t, mover, after=tasks[order[0]], before=tasks[order[1]])
        order.insert(1, order.pop())
        assert (await _columns(gql, t))["TODO"] == order


async def test_move_rejects_bad_neighbours_without_writing(gql, factory):
    t = await team(factory)
    a, b, c, d, e = await _five(t)
    done = await make_task(t.project, t.owner, "done", status=TaskStatus.DONE)
    archived = await make_task(t.project, t.owner, "gone", archived_at=datetime.now(UTC))
    sibling_project = await factory.project(t.org, t.owner, "Sibling")
    sibling = await make_task(sibling_project, t.owner)
    stranger = await factory.user("Stranger")
    foreign_project = await factory.project(await factory.org(stranger), stranger)
    foreign = await make_task(foreign_project, stranger)

    def move(**i):
        return {"i": {"id": tid(c), "status": "TODO", **i}}

    cases = [
        (move(afterId=tid(done)), "afterId"),  # another column
        (move(beforeId=tid(done)), "beforeId"),
        (move(afterId=tid(archived)), "afterId"),
        (move(afterId=tid(sibling)), "afterId"),  # another project of the same org
        (move(afterId=tid(a), beforeId=tid(sibling)), "beforeId"),
        (move(afterId=tid(b), beforeId=tid(a)), "beforeId"),  # upside down
        (move(afterId=tid(a), beforeId=tid(a)), "beforeId"),
        (move(afterId=tid(c)), "afterId"),  # itself
        (move(beforeId=tid(c)), "beforeId"),
        (move(afterId="%%%"), None),
        (move(afterId=gid("Project", t.project.id)), "afterId"),
        (move(beforeId=gid("Label", 1)), "beforeId"),
        ({"i": {"id": tid(c), "status": "DOING"}}, None),
        ({"i": {"id": gid("User", 1), "status": "TODO"}}, "id"),
    ]
    for variables, field in cases:
        await rejected(gql, MOVE, variables, t.editor.token, "BAD_USER_INPUT", field)

    # A task in another organization's project reads exactly like one that does not exist.
    foreign_err = await rejected(
        gql, MOVE, move(afterId=tid(foreign)), t.editor.token, "BAD_USER_INPUT", "afterId"
    )
    missing_err = await rejected(
        gql, MOVE, move(afterId=gid("Task", 999_999)), t.editor.token, "BAD_USER_INPUT", "afterId"
    )
    assert foreign_err["message"] == missing_err["message"]
    assert foreign_err["extensions"] == missing_err["extensions"]


async def test_move_archived_task_is_rejected(gql, factory):
    t = await team(factory)
    a, *_ = await _five(t)
    gone = await make_task(t.project, t.owner, "gone", archived_at=datetime.now(UTC))
    await rejected(
        gql,
        MOVE,
        {"i": {"id": tid(gone), "status": "DONE"}},
        t.editor.token,
        "BAD_USER_INPUT",
        "id",
    )


async def test_move_roles_and_versions(gql, factory):
    t = await team(factory)
    a, b, *_ = await _five(t)
    await rejected(gql, MOVE, {"i": {"id": tid(a), "status": "DONE"}}, t.viewer.token, "FORBIDDEN")
    outsider = await factory.user("Outsider")
    await rejected(gql, MOVE, {"i": {"id": tid(a), "status": "DONE"}}, outsider.token, "NOT_FOUND")
    error = await rejected(
        gql,
        MOVE,
        {"i": {"id": tid(a), "status": "DONE", "expectedVersion": 7}},
        t.editor.token,
        "CONFLICT",
    )
    assert error["extensions"]["currentVersion"] == 1
