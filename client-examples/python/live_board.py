"""A live-board client in Python with `gql`: log in, list projects, watch a board, make a
task and move it, and print the board events that come back.

    pip install -r requirements.txt        # gql with its httpx and websockets transports
    python live_board.py                   # against `make demo` on http://127.0.0.1:8000
    python live_board.py --watch           # ...and keep printing events until Ctrl-C
    python live_board.py --watch --after CURSOR   # resume from a cursor printed before

Queries and mutations go over HTTP (POST /graphql); the board subscription goes over a
websocket speaking graphql-transport-ws, authenticated by the connection_init payload.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from contextlib import aclosing
from datetime import datetime

from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportError, TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

LOG_IN = """
mutation LogIn($input: LogInInput!) {
  logIn(input: $input) { accessToken user { name email } }
}"""

PROJECTS = """
query Projects {
  viewer { user { name email } }
  projects(first: 100) { nodes { id name viewerRole taskCount organization { slug } } }
}"""

# The board and the log position it was read at, in one query: subscribing `after` that
# cursor replays whatever happened since, so nothing falls between the read and the
# subscription, however long the websocket takes to open.
BOARD = """
query BoardSnapshot($id: ID!) {
  project(id: $id) {
    name eventCursor
    board { columns { status tasks { totalCount } } }
  }
}"""

BOARD_EVENTS = """
subscription BoardEvents($projectId: ID!, $after: String) {
  boardEvents(projectId: $projectId, after: $after) {
    __typename seq cursor actor { name }
    ... on TaskCreated { task { id title status } }
    ... on TaskUpdated { changedFields task { id title status } }
    ... on TaskMoved { fromStatus toStatus task { id title status } }
    ... on TaskArchived { task { id title status } }
    ... on TaskUnarchived { task { id title status } }
    ... on TaskDeleted { taskId status }
    ... on CommentAdded { taskId comment { body } }
    ... on ResyncRequired { reason }
  }
}"""

CREATE_TASK = """
mutation CreateTask($input: CreateTaskInput!) {
  createTask(input: $input) { task { id title status version } }
}"""

MOVE_TASK = """
mutation MoveTask($input: MoveTaskInput!) {
  moveTask(input: $input) { task { id status position version } }
}"""

WRITERS = {"OWNER", "ADMIN", "EDITOR"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=env("PCG_URL", "http://127.0.0.1:8000"),
                   help="server base URL (env PCG_URL; default %(default)s)")
    p.add_argument("--token", default=env("PCG_TOKEN"),
                   help="access token or pcg_ API key (env PCG_TOKEN); skips the log-in")
    p.add_argument("--email", default=env("PCG_EMAIL", "ada@demo.pcg"), help="(env PCG_EMAIL)")
    p.add_argument("--password", default=env("PCG_PASSWORD", "demo-password"), help="(env PCG_PASSWORD)")
    p.add_argument("--project", default=env("PCG_PROJECT"),
                   help="project name or ID (env PCG_PROJECT; default: the first you may edit)")
    p.add_argument("--title", default="Hello from Python", help="title of the task to create")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the events")
    p.add_argument("--watch", action="store_true", help="keep printing board events until Ctrl-C")
    p.add_argument("--after", default=None,
                   help="resume from this saved event cursor (default: the board's eventCursor)")
    return p.parse_args(argv)


def describe(event: dict) -> str:
    """One line per event: `event <seq> <type> task=<id> ...`."""
    kind = event["__typename"]
    by = (event.get("actor") or {}).get("name", "someone")
    task = event.get("task") or {}
    task_id = task.get("id") or event.get("taskId") or "-"
    detail = f'"{task["title"]}"' if task else ""
    if kind == "TaskMoved":
        detail += f' {event["fromStatus"]} -> {event["toStatus"]}'
    elif kind == "TaskUpdated":
        detail += f' changed {",".join(event["changedFields"])}'
    elif kind == "CommentAdded":
        detail = f'comment "{event["comment"]["body"]}"'
    elif task:
        detail += f' in {task["status"]}'
    return f"event {event['seq']} {kind} task={task_id} {detail} (by {by})".replace("  ", " ")


def pick_project(projects: list[dict], wanted: str | None) -> dict:
    if wanted:
        for project in projects:
            if wanted in (project["id"], project["name"]):
                return project
        raise SystemExit(f"No project named or with ID {wanted!r} among yours")
    for project in projects:
        if project["viewerRole"] in WRITERS:
            return project
    raise SystemExit("You may not edit any project: pass --project, or log in as an editor")


async def run(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    api = f"{base}/graphql"
    ws_api = "ws" + api[len("http"):]

    token = (args.token or "").removeprefix("Bearer ").strip()
    if not token:
        async with Client(transport=HTTPXAsyncTransport(url=api)) as anonymous:
            data = await anonymous.execute(GraphQLRequest(
                LOG_IN, variable_values={"input": {"email": args.email, "password": args.password}}
            ))
        token = data["logIn"]["accessToken"]

    http = HTTPXAsyncTransport(url=api, headers={"Authorization": f"Bearer {token}"})
    async with Client(transport=http) as session:
        data = await session.execute(GraphQLRequest(PROJECTS))
        me = data["viewer"]["user"]
        projects = data["projects"]["nodes"]
        print(f"Logged in as {me['name']} <{me['email']}>")
        print("Projects you can see:")
        for p in projects:
            print(f"  {p['name']:<24} {p['id']}  ({p['viewerRole'].lower()}, {p['taskCount']} tasks)")
        project = pick_project(projects, args.project)

        async def read_board() -> dict:
            board = (await session.execute(GraphQLRequest(BOARD, variable_values={"id": project["id"]})))["project"]
            print(f"Board of {board['name']}: " + ", ".join(
                f"{c['status']} {c['tasks']['totalCount']}" for c in board["board"]["columns"]), flush=True)
            return board

        board = await read_board()

        # The websocket authenticates once, with the connection_init payload.
        ws = WebsocketsTransport(
            url=ws_api,
            init_payload={"authorization": f"Bearer {token}"},
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],  # graphql-transport-ws
        )
        async with Client(transport=ws) as live:
            # Events, or the exception that ended the subscription, in arrival order.
            inbox: asyncio.Queue[dict | Exception] = asyncio.Queue()

            # Resuming from a saved cursor: write only once the backlog has started to arrive
            # (or a resync is done), so that our own events come after it.
            resumed = asyncio.Event()
            cursor = args.after or board["eventCursor"]
            if cursor == board["eventCursor"]:
                resumed.set()

            async def listen(cursor: str) -> None:
                try:
                    while cursor := await follow(cursor):
                        resumed.set()
                    await inbox.put(ConnectionError("the server ended the subscription"))
                except Exception as error:  # noqa: BLE001 - handed to the reader below
                    await inbox.put(error)
                resumed.set()

            async def follow(cursor: str) -> str | None:
                """Queue the board's events after `cursor` until the server ends the stream
                (None) or asks for a resync (the cursor of a fresh board read to go on from)."""
                request = GraphQLRequest(BOARD_EVENTS, variable_values={
                    "projectId": project["id"], "after": cursor,
                })
                async with aclosing(live.subscribe(request)) as results:
                    async for result in results:
                        event = result["boardEvents"]
                        if event["__typename"] == "ResyncRequired":
                            # The cursor is older than the events the server keeps: rebuild from
                            # a fresh read and follow on from that read's cursor.
                            print(f"Resync required ({event['reason']}): refetching the board", flush=True)
                            cursor = (await read_board())["eventCursor"]
                            print(f"Resubscribing after {cursor}", flush=True)
                            return cursor
                        await inbox.put(event)
                        resumed.set()
                return None

            listener = asyncio.create_task(listen(cursor))
            print(f"Watching {project['name']} over graphql-transport-ws")
            # No need to wait for the subscription to reach the server before writing: it
            # starts at the board's eventCursor, so our own writes are replayed if need be.
            try:
                await asyncio.wait_for(resumed.wait(), args.timeout)
                return await create_move_and_print(session, project, inbox, args)
            finally:
                listener.cancel()


async def create_move_and_print(session, project: dict, inbox: asyncio.Queue, args) -> int:
    created = (await session.execute(GraphQLRequest(CREATE_TASK, variable_values={
        "input": {"projectId": project["id"], "title": args.title, "priority": "HIGH"},
    })))["createTask"]["task"]
    print(f"Created task {created['id']} \"{created['title']}\" in {created['status']}")
    moved = (await session.execute(GraphQLRequest(MOVE_TASK, variable_values={
        "input": {"id": created["id"], "status": "INPROGRESS", "expectedVersion": created["version"]},
    })))["moveTask"]["task"]
    print(f"Moved task {created['id']} to {moved['status']} (version {moved['version']})")

    # Print every event of the board; stop once both of ours are back (unless --watch).
    waiting_for = {"TaskCreated", "TaskMoved"}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout
    while waiting_for or args.watch:
        try:
            timeout = max(0.0, deadline - loop.time()) if waiting_for else None
            event = await asyncio.wait_for(inbox.get(), timeout)
        except TimeoutError:
            print(f"Timed out waiting for {' and '.join(sorted(waiting_for))}", file=sys.stderr)
            return 1
        if isinstance(event, Exception):
            raise event
        print(describe(event), flush=True)
        if waiting_for and (event.get("task") or {}).get("id") == created["id"]:
            waiting_for.discard(event["__typename"])
            if not waiting_for:
                print(f"Saw both events of task {created['id']} at {datetime.now():%H:%M:%S}."
                      + (f" Watching for more (Ctrl-C stops; resume point: {event['cursor']})." if args.watch else
                         " Run with --watch to keep listening."), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(run(args))
    except TransportQueryError as error:
        # Every GraphQL error carries extensions.code: UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, ...
        for e in error.errors or []:
            print(f"GraphQL error {e.get('extensions', {}).get('code')}: {e.get('message')}", file=sys.stderr)
        return 1
    except (TransportError, OSError) as error:
        print(f"Cannot talk to {args.url}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
