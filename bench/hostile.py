"""What hostile documents cost the server, with the request limits off ("before") and on.

    .venv/bin/python bench/hostile.py            # SQLite in a temp directory, about a minute
    .venv/bin/python bench/hostile.py --quick    # smaller "before" sizes

Each document is sent through the real ASGI app (lifespan included) over httpx.ASGITransport
with a valid token, and the server process's CPU time (time.process_time) is measured around
the request. "before" is the same app with the limits raised out of reach (Limits with huge
caps, no token limit) and, for the fragment DAG, Strawberry's QueryDepthLimiter that the app
used to run; the sizes of the "before" runs are scaled down where the full attack would take
minutes, and the scale is printed. "after" is the app as shipped. The floor is a trivial query
(`{ __typename }`) measured in the same run: the ratio column is after / floor.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from asgi_lifespan import LifespanManager  # noqa: E402
from graphql import get_introspection_query, parse, validate  # noqa: E402
from strawberry.extensions import QueryDepthLimiter  # noqa: E402

from models import (  # noqa: E402,E501
    Organization,
    OrganizationMember,
    OrgRole,
    Project,
    ProjectMember,
    ProjectRole,
    Task,
    TaskStatus,
    User,
)
from resolvers.identity.auth import issue_access_token  # noqa: E402
from resolvers.ids import to_global_id  # noqa: E402
from schema.limits import Limits  # noqa: E402
from schema.root import schema  # noqa: E402
from schema.runtime import graphql_schema  # noqa: E402
from server.app import create_app  # noqa: E402
from server.db import migrate  # noqa: E402
from server.settings import Settings, replace  # noqa: E402

SECRET = "bench-secret-" + "x" * 40
OFF = Limits(max_tokens=10**9, max_document_chars=10**9, max_depth=10**6, max_aliases=10**6,
             max_directives=10**6, max_root_fields=10**6, max_cost=10**15)


def fragment_dag(n: int) -> str:
    fragments = [f"fragment F{i} on Viewer {{ ...F{i + 1} ...F{i + 1} }}" for i in range(n)]
    fragments.append(f"fragment F{n} on Viewer {{ user {{ id }} }}")
    return "{ viewer { ...F0 } } " + " ".join(fragments)


def token_body(size: int) -> str:
    return "{ viewer { user { " + "id " * (size // 3) + "} } }"


def multiplying(page: int) -> str:
    return (f"{{ projects(first: {page}) {{ nodes {{ tasks(first: {page}) {{ nodes {{ project {{ "
            f"tasks(first: {page}) {{ nodes {{ title }} }} }} }} }} }} }} }}")


def alias_bomb(n: int, project_id: str) -> str:
    board = "board { columns { tasks(first: 100) { nodes { id title assignee { id } labels { id } } } } }"
    return "{ " + " ".join(f"b{i}: project(id: \"{project_id}\") {{ {board} }}" for i in range(n)) + " }"


def introspections(n: int) -> str:
    one = get_introspection_query(descriptions=True)
    inner = one[one.index("__schema"):one.index("fragment FullType")].rsplit("}", 1)[0]
    return "query { " + " ".join(f"s{i}: {inner}" for i in range(n)) + " } " + one[one.index("fragment FullType"):]


async def seed() -> tuple[str, str]:
    owner = await User.create(email="bench@example.test", name="Bench", password_hash="x")
    org = await Organization.create(slug="bench", name="Bench")
    await OrganizationMember.create(organization=org, user=owner, role=OrgRole.OWNER)
    project = await Project.create(organization=org, name="Board", created_by=owner)
    await ProjectMember.create(project=project, user=owner, role=ProjectRole.OWNER)
    statuses = list(TaskStatus)
    await Task.bulk_create([
        Task(project=project, title=f"Task {i}", status=statuses[i % 5], position=f"a{i:04d}",
             created_by=owner)
        for i in range(100)
    ])
    token, _ = issue_access_token(owner, SECRET, 3600)
    return token, to_global_id("Project", project.id)


async def cpu_of(client: httpx.AsyncClient, token: str, query: str) -> tuple[float, str]:
    start = time.process_time()
    response = await client.post("/graphql", json={"query": query},
                                 headers={"authorization": f"Bearer {token}"})
    spent = time.process_time() - start
    body = response.json()
    outcome = body["errors"][0]["extensions"]["code"] if body.get("errors") else f"{len(response.content):,} B data"
    return spent, f"{response.status_code} {outcome}"


def depth_rule_cpu(n: int) -> float:
    """The validation rule the app ran before: Strawberry's QueryDepthLimiter."""
    rules = QueryDepthLimiter(max_depth=12).validation_rules
    document = parse(fragment_dag(n))
    start = time.process_time()
    validate(graphql_schema(schema), document, rules)
    return time.process_time() - start


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Settings(env="test", data_dir=Path(tmp), database_url=f"sqlite://{tmp}/bench.db",
                        secret_key=SECRET, rate_limit=False)
        await migrate(base)
        app = create_app(base)
        view = next(route.endpoint for route in app.routes if route.path == "/graphql")
        async with LifespanManager(app):
            token, project_id = await seed()
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")

            async def measure(query: str, limits: Limits) -> tuple[float, str]:
                view.settings = replace(base, limits=limits)
                return await cpu_of(client, token, query)

            floor = min([(await measure("{ __typename }", Limits()))[0] for _ in range(20)])
            dag_n = 16 if args.quick else 18
            cases = [
                ("fragment DAG (40 fragments, 1.3 KB)", fragment_dag(40), None,
                 f"QueryDepthLimiter alone at {dag_n} fragments (x4 per 2 more)", lambda: depth_rule_cpu(dag_n)),
                ("1 MB of `id` tokens", token_body(1_000_000), token_body(300_000 if args.quick else 1_000_000),
                 "300 KB" if args.quick else None, None),
                ("multiplying connections (first: 100, 3 levels)", multiplying(100), multiplying(20), "page 20", None),
                ("1,000 aliased boards", alias_bomb(1000, project_id), alias_bomb(20 if args.quick else 50, project_id),
                 f"{20 if args.quick else 50} aliases", None),
                ("100 aliased introspections", introspections(100), introspections(5 if args.quick else 20),
                 f"{5 if args.quick else 20} aliases", None),
            ]
            print(f"floor: {{ __typename }} costs {floor * 1000:.2f} ms CPU\n")
            print(f"{'document':48} {'before (CPU)':>14} {'scale':>40} {'after (CPU)':>12} {'after/floor':>12}  outcome")
            for name, hostile, before_doc, scale, before_fn in cases:
                after, outcome = await measure(hostile, Limits())
                before = before_fn() if before_fn is not None else (await measure(before_doc, OFF))[0]
                print(f"{name:48} {before * 1000:>11.0f} ms {scale or 'full':>40} {after * 1000:>9.2f} ms "
                      f"{after / floor:>11.1f}x  {outcome}")
            await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller 'before' sizes")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
