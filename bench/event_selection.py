"""Per-event selection benchmark: what one subscriber's execution of one board event costs.

    .venv/bin/python bench/event_selection.py [--postgres] [--events 2000]

bench/fanout.py measures delivery to many subscribers, who share one execution per event
when their answers cannot differ (schema/sharing.py); subscribers who may see different
things each run the event's selection. This times that run alone, in-process: the
per-event executor of a `boardEvents` subscription (a TaskCreated with its task, labels,
assignee and project, and the actor), built as the subscription builds it (fresh loaders
per event), through the compiled executor and graphql-core's, interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asgi_lifespan import LifespanManager
from graphql import ExecutionResult, parse

from bench.board import PG_ADMIN_URL, SECRET, seed
from models import BoardEvent, Label
from resolvers.context import Context
from resolvers.identity.sessions import issue_outside_request
from resolvers.ids import to_global_id
from resolvers.loaders import Loaders
from schema import event as board_events
from schema import execution, runtime
from schema.authentication import access_for
from schema.root import ExecutionContext, schema
from server.app import create_app
from server.db import migrate
from server.settings import Settings

SUBSCRIPTION = parse("""subscription Events($p: ID!) { boardEvents(projectId: $p) {
  __typename seq occurredAt cursor actor { id name }
  ... on TaskCreated { task { id title status priority position version dueDate customProperties
        commentCount subtaskCount assignee { id name } labels { id name color }
        project { id name viewerRole } } } } }""")
CREATE = """mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }"""


async def bench(args, url: str) -> None:
    settings = Settings(env="test", database_url=url, secret_key=SECRET, rate_limit=False)
    await migrate(settings)
    app = create_app(settings)
    async with LifespanManager(app):
        owner, project = await seed(20, 5, random.Random(7))
        token = (await issue_outside_request(owner, SECRET, 3600)).access_token
        labels = [to_global_id("Label", label.id) for label in await Label.filter(project=project)][:3]
        pid = to_global_id("Project", project.id)
        context = Context(settings=settings, access=await access_for(f"Bearer {token}", SECRET),
                          broadcast=app.state.broadcast)
        await context.access.load()
        result = await schema.execute(CREATE, {"i": {"projectId": pid, "title": "Event", "labelIds": labels,
                                                    "assigneeId": to_global_id("User", owner.id)}},
                                      context_value=context)
        assert not result.errors, result.errors
        event = board_events._typed(await BoardEvent.filter(project_id=project.id).order_by("-seq").first())
        executor = ExecutionContext.build(runtime.graphql_schema(schema), SUBSCRIPTION, None, context, {"p": pid}, "Events")

        async def once() -> ExecutionResult:
            context.loaders = Loaders()  # as boardEvents does for each event
            outcome = executor.build_per_event_executor(event).execute_operation(False)
            return outcome if isinstance(outcome, ExecutionResult) else await outcome

        answers = {}
        for compiled in (True, False):
            context.settings = settings.model_copy(update={"compiled_execution": compiled})
            answers[compiled] = await once()
            assert not answers[compiled].errors, answers[compiled].errors
        assert answers[True].data == answers[False].data
        cpu = {True: 0.0, False: 0.0}
        rounds = 10
        before = execution.stats()
        for _ in range(rounds):
            for compiled in (True, False):
                context.settings = settings.model_copy(update={"compiled_execution": compiled})
                start = time.process_time()
                for _ in range(args.events // rounds):
                    await once()
                cpu[compiled] += time.process_time() - start
        after = execution.stats()
    per = {k: v / args.events * 1e6 for k, v in cpu.items()}
    print(f"per-event selection of boardEvents (TaskCreated with task, labels, assignee, project, actor): "
          f"{args.events} events each, interleaved")
    print(f"  compiled      {per[True]:7.0f} µs CPU per event per subscriber")
    print(f"  graphql-core  {per[False]:7.0f} µs CPU per event per subscriber")
    print(f"  x{per[False] / per[True]:.1f} less with the compiled executor; compiled executions "
          f"{after['compiled'] - before['compiled']}, fallbacks {after['fallback'] - before['fallback']}")


async def run(args) -> None:
    if not args.postgres:
        with tempfile.TemporaryDirectory() as tmp:
            await bench(args, f"sqlite://{tmp}/bench.db")
        return
    import asyncpg

    name = f"pcg_bench_{os.getpid()}"
    admin = PG_ADMIN_URL.replace("postgres://", "postgresql://", 1)
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    try:
        await bench(args, PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name)
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--events", type=int, default=2000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
