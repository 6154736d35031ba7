"""Board benchmark: the full board of a 500-task project through GraphQL, against a floor.

    .venv/bin/python bench/board.py                 # SQLite, in a temp directory
    .venv/bin/python bench/board.py --postgres      # a temp PostgreSQL database, dropped after
    .venv/bin/python bench/board.py --profile       # also profile the GraphQL path (pyinstrument)

It seeds one project (500 open tasks over the five columns, assignees among 20 users, 0-3
labels and 0-10 comments each, some subtasks, custom properties) into a fresh database built
by the migrations, then measures, after a warm-up:

- GraphQL: the board query through the real ASGI app (lifespan included) over HTTP with
  httpx.ASGITransport: latency p50/p95 and requests/s at concurrency 1 and 16, and the SQL
  statements one request sends;
- baseline: the same JSON (byte-for-byte the same data) from hand-written SQL over the same
  database connection plus orjson.dumps, authentication and access check included: the floor;
- the ratio GraphQL / baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jwt
import orjson
from asgi_lifespan import LifespanManager
from fractional_indexing import generate_n_keys_between
from tortoise import Tortoise

from bench import harness
from models import (
    Comment,
    CustomFieldDefinition,
    CustomFieldType,
    Label,
    Organization,
    OrganizationMember,
    OrgRole,
    Project,
    ProjectMember,
    ProjectRole,
    Task,
    TaskLabel,
    TaskPriority,
    TaskStatus,
    User,
)
from models.task import PRIORITY_RANK
from resolvers import codec
from resolvers.identity.sessions import issue_outside_request
from resolvers.ids import to_global_id
from schema import execution
from server.app import create_app
from server.db import migrate
from server.settings import Settings

SECRET = "bench-secret-key-" + "x" * 40
PG_ADMIN_URL = os.environ.get(
    "PCG_BENCH_POSTGRES_URL",
    os.environ.get("PCG_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
)
PAGE = 100  # per column; the board holds 100 tasks per column, so every task is returned

BOARD = """
query Board($id: ID!) {
  project(id: $id) {
    id
    name
    board {
      columns {
        status
        tasks(first: PAGE) {
          totalCount
          pageInfo { hasNextPage endCursor }
          nodes {
            id title status priority position dueDate version customProperties
            commentCount subtaskCount
            assignee { id name }
            labels { id name color }
          }
        }
      }
    }
  }
}
""".replace("PAGE", str(PAGE))


# -- seeding ------------------------------------------------------------------------------------


async def seed(n_tasks: int, n_users: int, rng: random.Random) -> tuple[User, Project]:
    await User.bulk_create(
        [
            User(email=f"bench{i}@example.test", name=f"Bench User {i}", password_hash="x")
            for i in range(n_users)
        ]
    )
    users = list(await User.all().order_by("id"))
    org = await Organization.create(slug="bench", name="Bench")
    await OrganizationMember.bulk_create(
        [
            OrganizationMember(
                organization=org, user=u, role=OrgRole.OWNER if i == 0 else OrgRole.MEMBER
            )
            for i, u in enumerate(users)
        ]
    )
    project = await Project.create(organization=org, name="Board", created_by=users[0])
    await ProjectMember.bulk_create(
        [
            ProjectMember(
                project=project, user=u, role=ProjectRole.OWNER if i == 0 else ProjectRole.EDITOR
            )
            for i, u in enumerate(users)
        ]
    )
    await CustomFieldDefinition.create(
        project=project, key="estimate", name="Estimate", type=CustomFieldType.NUMBER
    )
    colors = ["#d73a4a", "#a2eeef", "#7057ff", "#008672", "#e4e669", "#0075ca", "#cfd3d7", "#fbca04"]
    await Label.bulk_create(
        [Label(project=project, name=f"label-{i}", color=c) for i, c in enumerate(colors)]
    )
    labels = list(await Label.filter(project=project).order_by("id"))
    statuses = list(TaskStatus)
    priorities = list(TaskPriority)
    positions = {s: iter(generate_n_keys_between(None, None, n_tasks)) for s in statuses}
    today = date(2026, 1, 1)

    def task(i: int, parent_id: int | None) -> Task:
        status = statuses[i % 5]
        priority = rng.choice(priorities)
        return Task(
            project=project,
            title=f"Task {i}: {rng.choice(['fix', 'build', 'ship', 'review'])} the thing",
            description="",
            status=status,
            priority=priority,
            priority_rank=PRIORITY_RANK[priority],
            position=next(positions[status]),
            assignee_id=rng.choice(users).id if rng.random() < 0.85 else None,
            created_by_id=users[0].id,
            parent_id=parent_id,
            due_date=today + timedelta(days=rng.randrange(60)) if rng.random() < 0.5 else None,
            custom_properties={"estimate": rng.randrange(1, 13)} if rng.random() < 0.6 else {},
        )

    # Every 10th task is a subtask of a task created before it.
    await Task.bulk_create([task(i, None) for i in range(n_tasks) if i % 10 != 9])
    parents = [t.id for t in await Task.filter(project=project).order_by("id")]
    await Task.bulk_create(
        [task(i, rng.choice(parents)) for i in range(n_tasks) if i % 10 == 9]
    )
    tasks = list(await Task.filter(project=project).order_by("id"))
    await TaskLabel.bulk_create(
        [
            TaskLabel(task=t, label=label)
            for t in tasks
            for label in rng.sample(labels, rng.randrange(4))
        ]
    )
    await Comment.bulk_create(
        [
            Comment(task=t, author=rng.choice(users), body=f"Comment {k} on {t.id}")
            for t in tasks
            for k in range(rng.randrange(11))
        ]
    )
    return users[0], project


# -- the floor: hand-written SQL + orjson ------------------------------------------------------

_STATUS_NAMES = {s.value: s.name for s in TaskStatus}
_PRIORITY_NAMES = {p.value: p.name for p in TaskPriority}


class Baseline:
    """The board as a hand-written endpoint would serve it: verify the token, load the user and
    the caller's role in the project, then four queries for the data, and orjson."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres
        self.p = (lambda i: f"${i}") if postgres else (lambda i: "?")

    async def __call__(self, token: str, project_gid: str) -> bytes:
        db = Tortoise.get_connection("default")
        claims = jwt.decode(token, SECRET, algorithms=["HS256"])
        user_id = int(claims["sub"])
        project_id = int(codec.decode_text(project_gid).split(":")[1])
        p = self.p
        users = await db.execute_query_dict(
            f'SELECT "id" FROM "users" WHERE "id" = {p(1)} AND "is_active"', [user_id]
        )
        if not users:
            raise PermissionError("unknown user")
        # Any membership of the project, or an owner/admin role in its organization.
        project = await db.execute_query_dict(
            f'SELECT "p"."id", "p"."name" FROM "project" "p" WHERE "p"."id" = {p(1)} AND ('
            f' EXISTS (SELECT 1 FROM "project_member" "m" JOIN "organization_member" "o"'
            f'  ON "o"."organization_id" = "p"."organization_id" AND "o"."user_id" = "m"."user_id"'
            f'  WHERE "m"."project_id" = "p"."id" AND "m"."user_id" = {p(2)})'
            f' OR EXISTS (SELECT 1 FROM "organization_member" "o"'
            f'  WHERE "o"."organization_id" = "p"."organization_id" AND "o"."user_id" = {p(3)}'
            f"  AND \"o\".\"role\" IN ('owner', 'admin')))",
            [project_id, user_id, user_id],
        )
        if not project:
            return orjson.dumps({"data": {"project": None}})
        tasks = await db.execute_query_dict(
            'SELECT "r".*, (SELECT COUNT(*) FROM "task_comment" "c" WHERE "c"."task_id" = "r"."id")'
            ' "comments", COALESCE("s"."n", 0) "subtasks"'
            ' FROM (SELECT "id", "title", "status", "priority", "position", "due_date",'
            ' "version", "custom_properties", "assignee_id",'
            ' ROW_NUMBER() OVER (PARTITION BY "status" ORDER BY "position", "id") "rn",'
            ' COUNT(*) OVER (PARTITION BY "status") "total"'
            f' FROM "task" WHERE "project_id" = {p(1)} AND "archived_at" IS NULL) "r"'
            ' LEFT JOIN (SELECT "parent_id", COUNT(*) "n" FROM "task"'
            f' WHERE "project_id" = {p(2)} AND "parent_id" IS NOT NULL AND "archived_at" IS NULL'
            ' GROUP BY "parent_id") "s" ON "s"."parent_id" = "r"."id"'
            f' WHERE "r"."rn" <= {PAGE + 1} ORDER BY "r"."status", "r"."rn"',
            [project_id, project_id],
        )
        ids = [t["id"] for t in tasks]
        assignee_ids = sorted({t["assignee_id"] for t in tasks if t["assignee_id"]})
        people = {}
        if assignee_ids:
            marks = ", ".join(p(i + 1) for i in range(len(assignee_ids)))
            people = {
                u["id"]: {"id": to_global_id("User", u["id"]), "name": u["name"]}
                for u in await db.execute_query_dict(
                    f'SELECT "id", "name" FROM "users" WHERE "id" IN ({marks})', assignee_ids
                )
            }
        labels: dict[int, list] = {i: [] for i in ids}
        if ids:
            marks = ", ".join(p(i + 1) for i in range(len(ids)))
            for row in await db.execute_query_dict(
                'SELECT "tl"."task_id", "l"."id", "l"."name", "l"."color" FROM "task_label" "tl"'
                ' JOIN "label" "l" ON "l"."id" = "tl"."label_id"'
                f' WHERE "tl"."task_id" IN ({marks}) ORDER BY "l"."name", "l"."id"',
                ids,
            ):
                labels[row["task_id"]].append(
                    {"id": to_global_id("Label", row["id"]), "name": row["name"], "color": row["color"]}
                )
        columns = {s.value: [] for s in TaskStatus}
        totals = {s.value: 0 for s in TaskStatus}
        for t in tasks:
            columns[t["status"]].append(t)
            totals[t["status"]] = t["total"]
        out = []
        for status, rows in columns.items():
            more = len(rows) > PAGE
            rows = rows[:PAGE]
            nodes = [
                {
                    "id": to_global_id("Task", t["id"]),
                    "title": t["title"],
                    "status": _STATUS_NAMES[t["status"]],
                    "priority": _PRIORITY_NAMES[t["priority"]],
                    "position": t["position"],
                    "dueDate": _iso(t["due_date"]),
                    "version": t["version"],
                    "customProperties": _json(t["custom_properties"]),
                    "commentCount": t["comments"],
                    "subtaskCount": t["subtasks"],
                    "assignee": people.get(t["assignee_id"]),
                    "labels": labels[t["id"]],
                }
                for t in rows
            ]
            end = _cursor(rows[-1]) if rows else None
            out.append(
                {
                    "status": _STATUS_NAMES[status],
                    "tasks": {
                        "totalCount": totals[status],
                        "pageInfo": {"hasNextPage": more, "endCursor": end},
                        "nodes": nodes,
                    },
                }
            )
        row = project[0]
        return orjson.dumps(
            {
                "data": {
                    "project": {
                        "id": to_global_id("Project", row["id"]),
                        "name": row["name"],
                        "board": {"columns": out},
                    }
                }
            }
        )


def _iso(value) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else value.isoformat()


def _json(value):
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


def _cursor(row: dict) -> str:
    return codec.encode(orjson.dumps([row["position"], row["id"]]))


# -- measuring ----------------------------------------------------------------------------------


async def run(args) -> None:
    if args.postgres:
        import asyncpg

        name = f"pcg_bench_{os.getpid()}"
        admin = PG_ADMIN_URL.replace("postgres://", "postgresql://", 1)
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        try:
            await bench(args, url, postgres=True)
        finally:
            conn = await asyncpg.connect(admin)
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.close()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            await bench(args, f"sqlite://{tmp}/bench.db", postgres=False)


async def bench(args, url: str, postgres: bool) -> None:
    # The rate limiter would refuse the measured requests after a few (a board costs ~60
    # points of a plan's 500 a minute); slow-operation warnings would log a line per request
    # at concurrency 16. Neither is what this measures.
    settings = Settings(env="test", database_url=url, secret_key=SECRET, rate_limit=False,
                        slow_operation_ms=60_000)
    await migrate(settings)
    app = create_app(settings)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    rng = random.Random(args.seed)
    async with LifespanManager(app):
        t0 = time.perf_counter()
        owner, project = await seed(args.tasks, args.users, rng)
        seeded = time.perf_counter() - t0
        token = (await issue_outside_request(owner, SECRET, 3600)).access_token
        project_gid = to_global_id("Project", project.id)
        n_comments = await Comment.all().count()
        n_links = await TaskLabel.all().count()
        async with harness.client(app) as client:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            body = orjson.dumps({"query": BOARD, "variables": {"id": project_gid}})

            async def graphql() -> bytes:
                response = await client.post("/graphql", content=body, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"GraphQL answered {response.status_code}: {response.text[:300]}")
                return response.content

            baseline = Baseline(postgres)

            async def floor() -> bytes:
                return await baseline(token, project_gid)

            answers = {}
            for compiled in (True, False):
                harness.use_executor_cold(app, compiled)
                answers[compiled] = await graphql()
            assert answers[True] == answers[False], "the executors do not answer the same bytes"
            ours = orjson.loads(answers[True])
            assert "errors" not in ours, ours["errors"]
            theirs = orjson.loads(await floor())
            # The GraphQL answer also carries extensions (its cost); the data must be equal.
            assert ours["data"] == theirs["data"], "the baseline does not serve the same data as GraphQL"
            nodes = sum(len(c["tasks"]["nodes"]) for c in ours["data"]["project"]["board"]["columns"])
            statements = {}
            for compiled in (True, False):
                harness.use_executor_cold(app, compiled)
                statements[compiled] = await harness.StatementCount().around(graphql)
            harness.use_executor(app, True)
            harness.use_cache(app, True)
            await graphql()  # stored
            cached_statements = await harness.StatementCount().around(graphql)
            assert await graphql() == answers[True], "the cached answer differs"
            floor_statements = await harness.StatementCount().around(floor)

            async with harness.client(harness.canned_app(answers[True])) as canned:
                async def http_only() -> bytes:
                    response = await canned.post("/graphql", content=body, headers=headers)
                    return response.content

                def warm() -> None:
                    harness.use_executor(app, True)
                    harness.use_cache(app, True)

                sides = [
                    harness.Side("compiled", graphql, lambda: harness.use_executor_cold(app, True)),
                    harness.Side("graphql-core", graphql, lambda: harness.use_executor_cold(app, False)),
                    harness.Side("cached (no write between)", graphql, warm),
                    harness.Side("HTTP client+transport only", http_only),
                    harness.Side("floor (SQL + orjson)", floor),
                ]
                if args.skip_core:
                    sides.pop(1)
                for side in sides:
                    if side.before:
                        side.before()
                    for _ in range(args.warmup):
                        await side.call()
                before = execution.stats()
                cache_before = _cache_counts()
                results = {c: await harness.interleaved(sides, args.requests, c) for c in (1, 16)}
                after = execution.stats()
                cache_after = _cache_counts()
            harness.use_executor(app, True)

            print(f"pcg board benchmark — {'PostgreSQL' if postgres else 'SQLite'}")
            print(
                f"  data: {args.tasks} tasks ({nodes} in the response), {args.users} users, "
                f"{n_links} label links, {n_comments} comments; seeded in {seeded:.1f}s"
            )
            print(f"  response: {len(answers[True]) / 1024:.0f} KiB; {args.requests} requests per row, "
                  f"interleaved in blocks, after {args.warmup} warm-up each")
            for c in (1, 16):
                for name, m in results[c].items():
                    print(harness.row(f"{name}, c={c}", m, 36))
            print(f"  statements per request: compiled {statements[True]}, graphql-core "
                  f"{statements[False]}, cached {cached_statements}, floor {floor_statements}")
            hits = cache_after["hit"] - cache_before["hit"]
            looked = hits + cache_after["miss"] - cache_before["miss"]
            print(f"  response cache: {hits:.0f} hits of {looked:.0f} lookups ({hits / max(looked, 1):.0%}) "
                  "in the cached rows; the other rows run with it off")
            print(f"  compiled executions {after['compiled'] - before['compiled']}, fallbacks to "
                  f"graphql-core {after['fallback'] - before['fallback']} "
                  f"{ {k: v - before['reasons'].get(k, 0) for k, v in after['reasons'].items()} or ''}")
            for c in (1, 16):
                r = results[c]
                b, h = r["floor (SQL + orjson)"], r["HTTP client+transport only"]
                for name in ("compiled", "graphql-core", "cached (no write between)"):
                    if name not in r:
                        continue
                    g = r[name]
                    print(
                        f"  {name}/floor, c={c}: cpu x{g['cpu'] / b['cpu']:.1f} "
                        f"(server share x{(g['cpu'] - h['cpu']) / b['cpu']:.1f}), "
                        f"p50 x{g['p50'] / b['p50']:.1f}, p95 x{g['p95'] / b['p95']:.1f}, "
                        f"throughput x{b['rps'] / g['rps']:.1f} lower"
                    )
            if "graphql-core" in results[16]:
                print(f"  compiled vs graphql-core at c=16: throughput "
                      f"x{results[16]['compiled']['rps'] / results[16]['graphql-core']['rps']:.2f}")
            if args.profile:
                await profile(graphql, args.profile)


def _cache_counts() -> dict[str, float]:
    from resolvers import metrics

    return {o: metrics.RESPONSE_CACHE.labels(o)._value.get() for o in ("hit", "miss")}  # noqa: SLF001


async def profile(call, n: int) -> None:
    try:
        from pyinstrument import Profiler
    except ImportError:
        print("  --profile needs pyinstrument: .venv/bin/pip install -e '.[bench]'")
        return
    profiler = Profiler(interval=0.0005, async_mode="enabled")
    profiler.start()
    for _ in range(n):
        await call()
    profiler.stop()
    print(f"\nprofile of {n} sequential GraphQL requests (pyinstrument), by own time:")
    flat = profiler.output_text(unicode=False, color=False, flat=True)
    print("\n".join(line for line in flat.splitlines()[6:31] if line.strip()))
    print("\ncall tree (top):")
    tree = profiler.output_text(unicode=False, color=False, show_all=False)
    print("\n".join(tree.splitlines()[6:46]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", action="store_true", help="run on a temp PostgreSQL database "
                        "(admin URL from PCG_BENCH_POSTGRES_URL or PCG_TEST_POSTGRES_URL)")
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--requests", type=int, default=100, help="requests per measured row")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-core", action="store_true",
                        help="do not measure graphql-core's executor (PCG_COMPILED_EXECUTION=0)")
    parser.add_argument("--profile", type=int, nargs="?", const=30, default=0, metavar="N",
                        help="profile N GraphQL requests with pyinstrument (default 30)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
