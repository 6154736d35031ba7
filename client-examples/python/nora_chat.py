"""Ask NORA, the platform's assistant, from Python with `gql`: start a conversation on a
project, send one message, and print the reply as it streams in, with the tools NORA calls.

    pip install -r requirements.txt
    python nora_chat.py "summarize the board"                  # against `make demo`
    python nora_chat.py "create a task Fix login" --project "Mobile app"

sendNoraMessage returns at once with the reply in status STREAMING; the reply itself comes
over the noraEvents subscription (a websocket speaking graphql-transport-ws):
MessageStarted, TextDelta..., ToolCallStarted/ToolCallFinished, then MessageCompleted (or
MessageFailed / MessageCancelled).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

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
  projects(first: 100) { nodes { id name viewerRole organization { id name } } }
}"""

# eventCursor is the conversation's event-log position as of this write: subscribing `after`
# it replays everything since, so the reply cannot start before we listen.
START = """
mutation StartNoraConversation($input: StartNoraConversationInput!) {
  startNoraConversation(input: $input) { conversation { id eventCursor } }
}"""

NORA_EVENTS = """
subscription NoraEvents($conversationId: ID!, $after: String) {
  noraEvents(conversationId: $conversationId, after: $after) {
    __typename seq cursor messageId
    ... on TextDelta { text }
    ... on ToolCallStarted { name arguments }
    ... on ToolCallFinished { name ok result error { code message } }
    ... on MessageCompleted { message { content } usage { tokensIn tokensOut latencyMs } }
    ... on MessageFailed { code errorMessage }
  }
}"""

SEND = """
mutation SendNoraMessage($input: SendNoraMessageInput!) {
  sendNoraMessage(input: $input) { userMessage { id } assistantMessage { id status } }
}"""

WRITERS = {"OWNER", "ADMIN", "EDITOR"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("message", nargs="?", default="summarize the board", help="what to ask NORA (default %(default)r)")
    p.add_argument("--url", default=env("PCG_URL", "http://127.0.0.1:8000"),
                   help="server base URL (env PCG_URL; default %(default)s)")
    p.add_argument("--token", default=env("PCG_TOKEN"),
                   help="access token or pcg_ API key (env PCG_TOKEN); skips the log-in")
    p.add_argument("--email", default=env("PCG_EMAIL", "ada@demo.pcg"), help="(env PCG_EMAIL)")
    p.add_argument("--password", default=env("PCG_PASSWORD", "demo-password"), help="(env PCG_PASSWORD)")
    p.add_argument("--project", default=env("PCG_PROJECT"),
                   help="project name or ID (env PCG_PROJECT; default: the first you may edit)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the whole reply")
    return p.parse_args(argv)


def pick_project(projects: list[dict], wanted: str | None) -> dict:
    if wanted:
        for project in projects:
            if wanted in (project["id"], project["name"]):
                return project
        raise SystemExit(f"No project named or with ID {wanted!r} among yours")
    # NORA acts as you: on a project you may only view, it can read but not write.
    for project in projects:
        if project["viewerRole"] in WRITERS:
            return project
    raise SystemExit("You may not edit any project: pass --project, or log in as an editor")


def short(value: object, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Printer:
    """Streams the reply's text as it arrives, with each tool call on a line of its own."""

    def __init__(self) -> None:
        self.in_text = False  # inside a line of NORA's text

    def text(self, text: str) -> None:
        if not self.in_text:
            text = text.lstrip("\n")
            if not text:
                return
            print("NORA: ", end="")
        print(text, end="", flush=True)
        self.in_text = not text.endswith("\n")

    def line(self, line: str) -> None:
        if self.in_text:
            print()
            self.in_text = False
        print(line, flush=True)


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
        print(f"Logged in as {me['name']} <{me['email']}>")
        project = pick_project(data["projects"]["nodes"], args.project)

        conversation = (await session.execute(GraphQLRequest(START, variable_values={"input": {
            "organizationId": project["organization"]["id"], "projectId": project["id"],
        }})))["startNoraConversation"]["conversation"]
        print(f"Conversation {conversation['id']} about {project['name']} ({project['organization']['name']})")

        ws = WebsocketsTransport(
            url=ws_api,
            init_payload={"authorization": f"Bearer {token}"},
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        )
        async with Client(transport=ws) as live:
            inbox: asyncio.Queue[dict | Exception] = asyncio.Queue()

            async def listen() -> None:
                request = GraphQLRequest(NORA_EVENTS, variable_values={
                    "conversationId": conversation["id"], "after": conversation["eventCursor"],
                })
                try:
                    async for result in live.subscribe(request):
                        await inbox.put(result["noraEvents"])
                    await inbox.put(ConnectionError("the server ended the subscription"))
                except Exception as error:  # noqa: BLE001 - handed to the reader below
                    await inbox.put(error)

            listener = asyncio.create_task(listen())
            try:
                # Sending right away is safe: the subscription starts at eventCursor, so
                # whatever NORA writes before it reaches the server is replayed to us.
                sent = (await session.execute(GraphQLRequest(SEND, variable_values={"input": {
                    "conversationId": conversation["id"], "content": args.message,
                }})))["sendNoraMessage"]
                print(f"You: {args.message}")
                return await print_reply(inbox, sent["assistantMessage"]["id"], args.timeout)
            finally:
                listener.cancel()


async def print_reply(inbox: asyncio.Queue, reply_id: str, timeout: float) -> int:
    out = Printer()
    async with asyncio.timeout(timeout):
        while True:
            event = await inbox.get()
            if isinstance(event, Exception):
                raise event
            if event.get("messageId") != reply_id:
                continue
            kind = event["__typename"]
            if kind == "TextDelta":
                out.text(event["text"])
            elif kind == "ToolCallStarted":
                out.line(f"  -> tool {event['name']} {short(event['arguments'])}")
            elif kind == "ToolCallFinished":
                if event["ok"]:
                    out.line(f"  <- {event['name']} ok: {short(event['result'])}")
                else:
                    out.line(f"  <- {event['name']} failed: {event['error']['code']}: {event['error']['message']}")
            elif kind == "MessageCompleted":
                usage = event["usage"]
                out.line(f"Reply complete ({usage['tokensIn']} tokens in, {usage['tokensOut']} out, "
                         f"{usage['latencyMs']} ms)")
                return 0
            elif kind == "MessageFailed":
                out.line(f"Reply failed: {event['code']}: {event['errorMessage']}")
                return 1
            elif kind == "MessageCancelled":
                out.line("Reply cancelled")
                return 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(run(args))
    except TransportQueryError as error:
        # RATE_LIMITED (extensions.retryAfter), QUOTA_EXCEEDED, CONFLICT (a reply in progress), ...
        for e in error.errors or []:
            print(f"GraphQL error {e.get('extensions', {}).get('code')}: {e.get('message')}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(f"\nNo complete reply within {args.timeout:g} s", file=sys.stderr)
        return 1
    except (TransportError, OSError) as error:
        print(f"Cannot talk to {args.url}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
