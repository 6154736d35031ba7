"""Optimistic concurrency on tasks: of two writers that read the same version, one wins."""

from __future__ import annotations

import asyncio

import pytest

from models import CustomFieldDefinition, CustomFieldType, Task
from tests.conftest import gid
from tests.tasks_support import (
    MOVE,
    UPDATE,
    assert_dense,
    audits,
    events,
    make_task,
    team,
    tid,
)


def _split(results: list[dict]) -> tuple[list[dict], list[dict]]:
    won = [r["data"] for r in results if not r.get("errors")]
    lost = [r["errors"] for r in results if r.get("errors")]
    return won, lost


@pytest.mark.both_databases
async def test_same_expected_version_exactly_one_wins(gql, factory):
    t = await team(factory)
    task = await make_task(t.project, t.owner, "start")

    results = await asyncio.gather(
        *(
            gql.raw(
                UPDATE, {"i": {"id": tid(task), "expectedVersion": 1, "title": title}}, token=token
            )
            for title, token in (("left", t.editor.token), ("right", t.admin.token))
        )
    )
    won, lost = _split(results)
    assert len(won) == 1 and len(lost) == 1
    [[error]] = lost
    assert error["extensions"]["code"] == "CONFLICT"
    assert error["extensions"]["currentVersion"] == 2

    winner = won[0]["updateTask"]["task"]
    row = await Task.get(id=task.id)
    assert row.version == 2 and winner["version"] == 2
    assert row.title == winner["title"]
    [entry] = await audits("task.update")
    assert entry.after["title"] == winner["title"]
    [evt] = await events(t.project)
    assert evt.seq == 1 and evt.payload["task"]["title"] == winner["title"]


@pytest.mark.both_databases
async def test_many_writers_on_one_version_one_wins(gql, factory):
    t = await team(factory)
    task = await make_task(t.project, t.owner, "start")
    requests = [
        gql.raw(
            UPDATE,
            {"i": {"id": tid(task), "expectedVersion": 1, "title": f"w{n}"}},
            token=t.editor.token,
        )
        for n in range(4)
    ] + [
        gql.raw(
            MOVE,
            {"i": {"id": tid(task), "expectedVersion": 1, "status": "DONE"}},
            token=t.editor.token,
        )
        for _ in range(2)
    ]
    won, lost = _split(await asyncio.gather(*requests))
    assert len(won) == 1 and len(lost) == 5
    assert {e[0]["extensions"]["code"] for e in lost} == {"CONFLICT"}
    assert (await Task.get(id=task.id)).version == 2
    assert len(await audits()) == 1
    assert len(await events(t.project)) == 1


@pytest.mark.both_databases
async def test_writers_without_expected_version_lose_nothing(gql, factory):
    """Without expectedVersion a lost race is re-planned from the fresh row, so concurrent
    merges of different custom properties all survive."""
    t = await team(factory)
    for n in range(4):
        await CustomFieldDefinition.create(
            project=t.project, key=f"k{n}", name=f"K{n}", type=CustomFieldType.TEXT
        )
    task = await make_task(t.project, t.owner)

    results = await asyncio.gather(
        *(
            gql.raw(
                UPDATE,
                {"i": {"id": tid(task), "customProperties": {f"k{n}": f"v{n}"}}},
                token=t.editor.token,
            )
            for n in range(4)
        )
    )
    won, lost = _split(results)
    assert lost == [] and len(won) == 4
    row = await Task.get(id=task.id)
    assert row.custom_properties == {f"k{n}": f"v{n}" for n in range(4)}
    assert row.version == 5
    evts = await events(t.project)
    assert_dense(evts)
    assert sorted(e.payload["task"]["version"] for e in evts) == [2, 3, 4, 5]
    assert len(await audits("task.update")) == 4


@pytest.mark.postgres_only
async def test_conditional_update_decides_when_both_passed_the_version_check(
    gql, factory, settings
):
    """Force the race deterministically: a second connection holds the task's row lock, so
    both requests read version 1, pass the early check and queue on their UPDATE ... WHERE
    version = 1. Once the lock goes, the first UPDATE wins and the second matches no row.
    (SQLite has one writer, so this interleaving cannot happen there.)"""
    import asyncpg

    t = await team(factory)
    task = await make_task(t.project, t.owner, "start")
    locker = await asyncpg.connect(settings.database_url.replace("postgres://", "postgresql://", 1))
    try:
        tx = locker.transaction()
        await tx.start()
        await locker.execute("SELECT 1 FROM task WHERE id = $1 FOR UPDATE", task.id)
        pending = [
            asyncio.ensure_future(
                gql.raw(
                    UPDATE,
                    {"i": {"id": tid(task), "expectedVersion": 1, "title": title}},
                    token=t.editor.token,
                )
            )
            for title in ("left", "right")
        ]
        waiting_sql = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        for _ in range(500):
            # Activity stats are snapshotted per transaction; the locker is inside one.
            await locker.execute("SELECT pg_stat_clear_snapshot()")
            if await locker.fetchval(waiting_sql) == 2:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the two updates never queued on the row lock")
        await tx.rollback()
        won, lost = _split(await asyncio.gather(*pending))
    finally:
        await locker.close()

    assert len(won) == 1 and len(lost) == 1
    assert lost[0][0]["extensions"] == {"code": "CONFLICT", "currentVersion": 2}
    assert (await Task.get(id=task.id)).version == 2
    assert len(await audits("task.update")) == 1
    assert len(await events(t.project)) == 1


@pytest.mark.both_databases
async def test_tasks_created_at_once_get_distinct_ranks(gql, factory):
    """Concurrent createTask calls into one column: every task gets its own position."""
    t = await team(factory)
    query = "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { position } } }"
    results = await asyncio.gather(*[
        gql.ok(query, {"i": {"projectId": gid("Project", t.project.id), "title": f"t{i}"}},
               token=t.owner.token)
        for i in range(8)
    ])
    positions = [r["createTask"]["task"]["position"] for r in results]
    assert len(set(positions)) == 8


@pytest.mark.both_databases
async def test_tasks_moved_into_one_slot_at_once_get_distinct_ranks(gql, factory):
    """Concurrent moves to the bottom of one column, and into one gap: distinct ranks."""
    t = await team(factory)
    tasks = [await make_task(t.project, t.owner, f"t{i}") for i in range(8)]
    await asyncio.gather(*[
        gql.ok(MOVE, {"i": {"id": tid(task), "status": "DONE"}}, token=t.owner.token)
        for task in tasks[:4]
    ])
    done = await Task.filter(project=t.project, status="done").values_list("position", flat=True)
    assert len(set(done)) == 4
    first, second = sorted(await Task.filter(project=t.project, status="done").order_by("position"),
                           key=lambda x: x.position)[:2]
    await asyncio.gather(*[
        gql.ok(MOVE, {"i": {"id": tid(task), "status": "DONE", "afterId": tid(first), "beforeId": tid(second)}},
               token=t.owner.token)
        for task in tasks[4:6]
    ])
    done = await Task.filter(project=t.project, status="done").values_list("position", flat=True)
    assert len(set(done)) == 6
