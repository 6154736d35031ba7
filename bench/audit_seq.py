"""Audit seq benchmark: write throughput of one organization with concurrent writers, by where
the write takes the organization's audit counter (PostgreSQL).

    .venv/bin/python bench/audit_seq.py                          # writers 1, 4, 8, 16; 3 x 2 s each
    .venv/bin/python bench/audit_seq.py --raw                    # the same transaction in plain SQL
    .venv/bin/python bench/audit_seq.py --writers 8 --seconds 10
    .venv/bin/python bench/audit_seq.py --projects shared        # every writer on one board

Each writer loops `updateTask` through the real resolver and unit of work (no HTTP, no
GraphQL parsing: the database's share is what moves) on a task of its own project, all
projects in one organization; `--projects shared` puts every writer on one project instead.
The same run measures each placement of the audit counter:

- none:  entries written without a seq, no lock on the organization row (the write path
         before the live audit log; the floor);
- tail:  the seq taken by one UPDATE ... RETURNING just before COMMIT (this code): the
         organization row is held for the entries' INSERT and the COMMIT only;
- early: the seq taken where the resolver calls `work.audit()` (as board events take theirs):
         held from there, through the board event, to COMMIT;
- start: the organization row locked first thing in the transaction (the whole write).

`--raw` runs the same transaction shape as plain SQL over asyncpg (lock the project, read and
update the task, the board event with its seq, the audit entry placed as above, COMMIT), so
that Python's share, which dominates the resolver run on a small machine, does not hide the
database's: the lock's effect shows there undiluted.

Each cell is run `--rounds` times, modes interleaved, and the median is printed (a shared
machine drifts): writes/s per mode and writer count, and the ratio to `none` at the same
count. A fresh database `pcg_bench_audit_<pid>` is created through PCG_BENCH_POSTGRES_URL
(else PCG_TEST_POSTGRES_URL, else postgres://postgres@127.0.0.1:5432/postgres) and dropped
after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tortoise import Tortoise

from models import (
    AuditEntry,
    Organization,
    OrganizationMember,
    OrgRole,
    Plan,
    Project,
    ProjectMember,
    ProjectRole,
    Task,
    TaskStatus,
    User,
    orm,
)
from resolvers import unit_of_work
from resolvers.access import Access
from resolvers.audit import stream as audit_stream
from resolvers.context import Context
from resolvers.identity.auth import Principal
from resolvers.task.tasks import update_task
from server.db import migrate, tortoise_config
from server.settings import Settings

SECRET = "bench-secret-key-" + "x" * 40
PG_ADMIN_URL = os.environ.get(
    "PCG_BENCH_POSTGRES_URL",
    os.environ.get("PCG_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
)
MODES = ("none", "tail", "early", "start")


async def _admin(*statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://", 1))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


# -- the placements of the counter, patched over this code's (tail) ----------------------------

_record = audit_stream.AuditLog.record
_audit = unit_of_work.UnitOfWork.audit
_start = unit_of_work.unit_of_work


async def _plain_record(self, entries):
    for entry in entries:
        await entry.save()


async def _seq_now(self, entries):
    for entry in entries:
        if entry.pk is not None:
            continue
        await _record(self, [entry])


async def _early_audit(self, *args, **kwargs):
    entry = await _audit(self, *args, **kwargs)
    await _record(audit_stream.AUDIT_LOG, [entry])  # seq + INSERT here, mid-transaction
    return entry


def _locking_start(org_id: int):
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def start(ctx):
        async with _start(ctx) as work:
            db = orm.db_of(Organization)
            await db.execute_query(f'SELECT "id" FROM "organization" WHERE "id" = {org_id} FOR UPDATE')
            yield work

    return start


def use(mode: str, org_id: int) -> None:
    audit_stream.AuditLog.record = _record
    unit_of_work.UnitOfWork.audit = _audit
    unit_of_work.unit_of_work = _start
    import resolvers.task.tasks as tasks

    tasks.unit_of_work = _start
    if mode == "none":
        audit_stream.AuditLog.record = _plain_record
    elif mode == "early":
        unit_of_work.UnitOfWork.audit = _early_audit
        audit_stream.AuditLog.record = _seq_now
    elif mode == "start":
        tasks.unit_of_work = _locking_start(org_id)


# -- the run ---------------------------------------------------------------------------------------


async def arrange(writers: int, shared: bool):
    password = "x"
    owner = await User.create(email="owner@bench.test", name="Owner", password_hash=password)
    org = await Organization.create(slug="bench", name="Bench", plan=Plan.ENTERPRISE)
    await OrganizationMember.create(organization=org, user=owner, role=OrgRole.OWNER)
    tasks = []
    projects = [await Project.create(organization=org, name="P0", created_by=owner)]
    if not shared:
        projects += [await Project.create(organization=org, name=f"P{i}", created_by=owner) for i in range(1, writers)]
    for project in projects:
        await ProjectMember.create(project=project, user=owner, role=ProjectRole.OWNER)
    for i in range(writers):
        project = projects[0] if shared else projects[i]
        tasks.append(await Task.create(project=project, title="t", position=f"a{i:04d}", created_by=owner,
                                       status=TaskStatus.TODO))
    return owner, org, tasks


async def run(settings: Settings, owner: User, tasks: list[Task], writers: int, seconds: float) -> float:
    stop = time.monotonic() + seconds
    done = 0

    async def writer(task: Task) -> None:
        nonlocal done
        ctx = Context(settings=settings, access=Access(Principal(user=owner)), broadcast=None)
        n = 0
        while time.monotonic() < stop:
            n += 1
            await update_task(ctx, task.id, title=f"t{n}")
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(writer(tasks[i]) for i in range(writers)))
    return done / (time.monotonic() - started)


# -- the same transaction in plain SQL --------------------------------------------------------------


def _raw_steps(mode: str, org_id: int, project_id: int, task_id: int, n: int) -> list[tuple[str, tuple]]:
    seq = (f'UPDATE "organization" SET "audit_seq" = "audit_seq" + 1 WHERE "id" = {org_id} '
           'RETURNING "audit_seq"', ())
    entry_with_seq = (
        'INSERT INTO "audit_entry" ("organization_id", "action", "resource_type", "resource_id", '
        '"before", "after", "created_at", "seq") VALUES ($1, \'task.update\', \'Task\', $2, \'{}\', '
        '\'{}\', now(), (SELECT "audit_seq" FROM "organization" WHERE "id" = $1))', (org_id, str(task_id)))
    entry = (
        'INSERT INTO "audit_entry" ("organization_id", "action", "resource_type", "resource_id", '
        '"before", "after", "created_at") VALUES ($1, \'task.update\', \'Task\', $2, \'{}\', \'{}\', now())',
        (org_id, str(task_id)))
    audit = {"none": [entry], "tail": [seq, entry_with_seq], "early": [seq, entry_with_seq], "start": [entry_with_seq]}[mode]
    steps = []
    if mode == "start":
        steps += [seq]
    steps += [
        (f'SELECT "id" FROM "project" WHERE "id" = {project_id} FOR UPDATE', ()),
        (f'SELECT * FROM "task" WHERE "id" = {task_id}', ()),
        ('UPDATE "task" SET "title" = $1, "version" = "version" + 1 WHERE "id" = $2', (f"t{n}", task_id)),
        (f'SELECT * FROM "task" WHERE "id" = {task_id}', ()),
    ]
    if mode == "early":
        steps += audit
    steps += [
        (f'UPDATE "project" SET "event_seq" = "event_seq" + 1 WHERE "id" = {project_id} RETURNING "event_seq"', ()),
        ('INSERT INTO "board_event" ("project_id", "seq", "type", "payload", "created_at") VALUES '
         '($1, (SELECT "event_seq" FROM "project" WHERE "id" = $1), \'TaskUpdated\', \'{}\', now())', (project_id,)),
    ]
    if mode in ("none", "tail", "start"):
        steps += audit
    return steps


async def run_raw(url: str, mode: str, org_id: int, tasks: list[tuple[int, int]], writers: int, seconds: float) -> float:
    import asyncpg

    pool = await asyncpg.create_pool(url.replace("postgres://", "postgresql://", 1), min_size=writers, max_size=writers)
    stop = time.monotonic() + seconds
    done = 0

    async def writer(project_id: int, task_id: int) -> None:
        nonlocal done
        n = 0
        async with pool.acquire() as conn:
            while time.monotonic() < stop:
                n += 1
                async with conn.transaction():
                    for sql, params in _raw_steps(mode, org_id, project_id, task_id, n):
                        await conn.execute(sql, *params)
                done += 1

    try:
        started = time.monotonic()
        await asyncio.gather(*(writer(*tasks[i]) for i in range(writers)))
        return done / (time.monotonic() - started)
    finally:
        await pool.close()


async def main(args) -> None:
    counts = [int(n) for n in args.writers.split(",")]
    name = f"pcg_bench_audit_{os.getpid()}"
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    await _admin(f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
    try:
        settings = Settings(database_url=url, env="test", secret_key=SECRET,
                            db_pool_min=1, db_pool_max=max(counts) + 2)
        await migrate(settings)
        await Tortoise.init(config=tortoise_config(url, settings))
        try:
            owner, org, tasks = await arrange(max(counts), args.projects == "shared")
            pairs = [(t.project_id, t.id) for t in tasks]
            if not args.raw:
                await run(settings, owner, tasks, max(counts), 1.0)  # warm-up: pool, caches
            samples: dict[tuple[str, int], list[float]] = {}
            for writers in counts:
                for _ in range(args.rounds):
                    for mode in MODES:
                        if args.raw:
                            rate = await run_raw(url, mode, org.id, pairs, writers, args.seconds)
                        else:
                            use(mode, org.id)
                            rate = await run(settings, owner, tasks, writers, args.seconds)
                        samples.setdefault((mode, writers), []).append(rate)
            use("tail", org.id)
            results = {cell: statistics.median(rates) for cell, rates in samples.items()}
            entries = await AuditEntry.filter(organization_id=org.id).count()
        finally:
            await Tortoise.close_connections()
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    what = "the transaction in plain SQL (asyncpg)" if args.raw else "updateTask through the resolver"
    print(f"{what}: writes/s, one organization, "
          f"{'one shared project' if args.projects == 'shared' else 'a project per writer'}; "
          f"median of {args.rounds} x {args.seconds:g} s per cell; {entries} entries written")
    print(f"{'writers':>8} " + " ".join(f"{mode:>14}" for mode in MODES))
    for writers in counts:
        floor = results["none", writers]
        cells = [f"{results[mode, writers]:8.0f} ({results[mode, writers] / floor:4.2f})" for mode in MODES]
        print(f"{writers:>8} " + " ".join(f"{c:>14}" for c in cells))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", default="1,4,8,16", help="comma-separated writer counts")
    parser.add_argument("--seconds", type=float, default=2.0, help="per run")
    parser.add_argument("--projects", choices=["own", "shared"], default="own")
    parser.add_argument("--rounds", type=int, default=3, help="runs per cell (the median is printed)")
    parser.add_argument("--raw", action="store_true", help="the transaction as plain SQL over asyncpg")
    asyncio.run(main(parser.parse_args()))
