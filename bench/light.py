"""Light-query benchmark: the fixed cost of one small read (`task(id)` with five fields).

    .venv/bin/python bench/light.py                 # SQLite, in a temp directory
    .venv/bin/python bench/light.py --postgres      # a temp PostgreSQL database, dropped after

Almost nothing of this request is data: it is the HTTP transport, the request pipeline
(parse cache, limits and validation cache, authentication, the access check, rate-limit
admission, metrics), two or three statements and the response. Measured, interleaved in
blocks as in bench/board.py (bench/harness.py): the compiled executor, graphql-core's, the
same bytes from a trivial ASGI app through the same client (the client's and transport's
share), and a hand-written endpoint (verify the token, load the user, load the task with the
caller's right to see it in one statement, orjson).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jwt
import orjson
from asgi_lifespan import LifespanManager
from tortoise import Tortoise

from bench import harness
from bench.board import PG_ADMIN_URL, SECRET, seed
from models import Task, TaskPriority, TaskStatus
from resolvers.identity.sessions import issue_outside_request
from resolvers.ids import parse_global_id, to_global_id
from schema import execution
from server.app import create_app
from server.db import migrate
from server.settings import Settings

LIGHT = """query Light($id: ID!) { task(id: $id) { id title status priority position } }"""

_STATUS = {s.value: s.name for s in TaskStatus}
_PRIORITY = {p.value: p.name for p in TaskPriority}


class Floor:
    """The same answer from a hand-written endpoint."""

    def __init__(self, postgres: bool) -> None:
        self.p = (lambda i: f"${i}") if postgres else (lambda i: "?")

    async def __call__(self, token: str, task_gid: str) -> bytes:
        db = Tortoise.get_connection("default")
        claims = jwt.decode(token, SECRET, algorithms=["HS256"])
        user_id = int(claims["sub"])
        _, task_id = parse_global_id(task_gid)
        p = self.p
        if not await db.execute_query_dict(
            f'SELECT "id" FROM "users" WHERE "id" = {p(1)} AND "is_active"', [user_id]
        ):
            raise PermissionError("unknown user")
        rows = await db.execute_query_dict(
            'SELECT "t"."id", "t"."title", "t"."status", "t"."priority", "t"."position"'
            ' FROM "task" "t" JOIN "project" "p" ON "p"."id" = "t"."project_id"'
            f' WHERE "t"."id" = {p(1)} AND ('
            ' EXISTS (SELECT 1 FROM "project_member" "m" JOIN "organization_member" "o"'
            '  ON "o"."organization_id" = "p"."organization_id" AND "o"."user_id" = "m"."user_id"'
            f'  WHERE "m"."project_id" = "p"."id" AND "m"."user_id" = {p(2)})'
            ' OR EXISTS (SELECT 1 FROM "organization_member" "o"'
            f'  WHERE "o"."organization_id" = "p"."organization_id" AND "o"."user_id" = {p(3)}'
            "  AND \"o\".\"role\" IN ('owner', 'admin')))",
            [task_id, user_id, user_id],
        )
        if not rows:
            return orjson.dumps({"data": {"task": None}})
        t = rows[0]
        return orjson.dumps({"data": {"task": {
            "id": to_global_id("Task", t["id"]), "title": t["title"], "status": _STATUS[t["status"]],
            "priority": _PRIORITY[t["priority"]], "position": t["position"],
        }}})


async def run(args) -> None:
    if args.postgres:
        import asyncpg

        name = f"pcg_bench_{os.getpid()}"
        admin = PG_ADMIN_URL.replace("postgres://", "postgresql://", 1)
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        try:
            await bench(args, PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name, postgres=True)
        finally:
            conn = await asyncpg.connect(admin)
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.close()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            await bench(args, f"sqlite://{tmp}/bench.db", postgres=False)


async def bench(args, url: str, postgres: bool) -> None:
    settings = Settings(env="test", database_url=url, secret_key=SECRET, rate_limit=args.rate_limit,
                        slow_operation_ms=60_000, rate_limit_pro=10**9, rate_limit_free=10**9)
    await migrate(settings)
    app = create_app(settings)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    async with LifespanManager(app):
        owner, project = await seed(50, 5, random.Random(7))
        task = await Task.filter(project=project).order_by("id").first()
        token = (await issue_outside_request(owner, SECRET, 3600)).access_token
        task_gid = to_global_id("Task", task.id)
        async with harness.client(app) as client:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            body = orjson.dumps({"query": LIGHT, "variables": {"id": task_gid}})

            async def graphql() -> bytes:
                response = await client.post("/graphql", content=body, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"GraphQL answered {response.status_code}: {response.text[:300]}")
                return response.content

            floor_endpoint = Floor(postgres)

            async def floor() -> bytes:
                return await floor_endpoint(token, task_gid)

            ours = orjson.loads(await graphql())
            assert "errors" not in ours, ours
            assert ours["data"] == orjson.loads(await floor())["data"], "the floor answers differently"
            statements = await harness.StatementCount().around(graphql)
            floor_statements = await harness.StatementCount().around(floor)
            async with harness.client(harness.canned_app(await graphql())) as canned:
                async def http_only() -> bytes:
                    return (await canned.post("/graphql", content=body, headers=headers)).content

                def warm() -> None:
                    harness.use_executor(app, True)
                    harness.use_cache(app, True)

                sides = [
                    harness.Side("compiled", graphql, lambda: harness.use_executor_cold(app, True)),
                    harness.Side("graphql-core", graphql, lambda: harness.use_executor_cold(app, False)),
                    harness.Side("cached", graphql, warm),
                    harness.Side("HTTP client+transport only", http_only),
                    harness.Side("floor (SQL + orjson)", floor),
                ]
                for side in sides:
                    if side.before:
                        side.before()
                    for _ in range(args.warmup):
                        await side.call()
                before = execution.stats()
                results = await harness.interleaved(sides, args.requests, 1, rounds=10)
                after = execution.stats()
            harness.use_executor(app, True)
            harness.use_cache(app, False)
            if args.profile:
                from bench.board import profile

                await profile(graphql, args.profile)
        print(f"pcg light-query benchmark — {'PostgreSQL' if postgres else 'SQLite'}: task(id) with 5 fields"
              f"{', rate limiter on' if args.rate_limit else ''}")
        print(f"  {args.requests} requests per row, concurrency 1, interleaved in blocks")
        for name, m in results.items():
            print(harness.row(name, m, 30))
        h, f = results["HTTP client+transport only"], results["floor (SQL + orjson)"]
        for name in ("compiled", "graphql-core", "cached"):
            g = results[name]
            print(f"  {name}: server CPU {g['cpu'] - h['cpu']:.2f} ms/request "
                  f"(x{(g['cpu'] - h['cpu']) / f['cpu']:.1f} the floor's {f['cpu']:.2f} ms)")
        print(f"  statements: GraphQL {statements}, floor {floor_statements}; compiled executions "
              f"{after['compiled'] - before['compiled']}, fallbacks {after['fallback'] - before['fallback']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--rate-limit", action="store_true",
                        help="with the rate limiter on (an in-process budget; off by default)")
    parser.add_argument("--profile", type=int, nargs="?", const=300, default=0, metavar="N")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
