"""A websocket the client aborts (TCP reset) while the server is sending it events ends
quietly: at most one debug line, never a traceback in the server's log."""

from __future__ import annotations

import asyncio
import socket
import struct

import httpx
import pytest

from tests.conftest import SECRET, gid
from tests.processes import aserving, free_port, subprocess_env
from tests.wsclient import LEGACY_WS, TRANSPORT_WS, GraphQLWS

BOARD = """subscription($p: ID!) { boardEvents(projectId: $p) {
  __typename seq ... on TaskCreated { task { id title description status priority createdBy { name } } } } }"""
CREATE = "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }"
SUBSCRIPTIONS = 20
ABORTS = 4


def reset(ws: GraphQLWS) -> None:
    """Close the client's TCP socket with a reset (RST), as a crashed client or a dropped
    network path does: the server's next writes fail instead of being acknowledged."""
    transport = ws.socket.transport
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_reset_mid_send_logs_no_traceback(tmp_path, settings, factory, protocol):
    owner = await factory.user("Olga")
    org = await factory.org(owner)
    project = await factory.project(org, owner, "Busy")
    pid = gid("Project", project.id)
    port = free_port()
    log = tmp_path / "serve.log"
    env = subprocess_env(
        tmp_path / "data", PCG_DATABASE_URL=settings.database_url, PCG_SECRET_KEY=SECRET, PCG_RATE_LIMIT="0",
    )
    async with aserving(env, port, log), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        stop = asyncio.Event()
        created = 0

        async def write_forever() -> None:
            nonlocal created
            while not stop.is_set():
                r = await http.post("/graphql", json={"query": CREATE, "variables": {
                    "i": {"projectId": pid, "title": f"task {created}", "description": "x" * 2000}}},
                    headers={"Authorization": f"Bearer {owner.token}"})
                assert not r.json().get("errors"), r.text
                created += 1

        writer = asyncio.create_task(write_forever())
        try:
            for _ in range(ABORTS):
                ws = await GraphQLWS.connect(f"ws://127.0.0.1:{port}/graphql", protocol, token=owner.token)
                for _ in range(SUBSCRIPTIONS):
                    await ws.subscribe(BOARD, {"p": pid})
                # Events are flowing to this socket: take a few, then reset it mid-stream.
                for _ in range(SUBSCRIPTIONS):
                    await ws.next_data(timeout=10)
                reset(ws)
                await asyncio.sleep(0.3)
            # The server goes on serving: a new socket still gets the next events.
            ws = await GraphQLWS.connect(f"ws://127.0.0.1:{port}/graphql", protocol, token=owner.token)
            await ws.subscribe(BOARD, {"p": pid})
            assert (await ws.next_data(timeout=10))["data"]["boardEvents"]["__typename"] == "TaskCreated"
            await ws.close()
        finally:
            stop.set()
            await writer
        await asyncio.sleep(0.5)  # let the server log whatever the resets caused
    text = log.read_text()
    assert created > 0
    assert "Traceback" not in text, text
    assert "ERROR" not in text, text


async def test_reset_mid_send_is_one_debug_line(live, gql, factory, caplog):
    """In process, where the log records can be read: the reset socket's operations end
    with debug lines naming the operation, none carrying a traceback, none above debug.
    (Legacy graphql-ws: its operations send `complete` as they are cancelled, so they meet
    the dead socket reliably; graphql-transport-ws operations are cancelled silently.)"""
    owner = await factory.user("Olga")
    org = await factory.org(owner)
    project = await factory.project(org, owner, "Busy")
    pid = gid("Project", project.id)
    caplog.set_level("DEBUG", logger="pcg.ws")
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", LEGACY_WS, token=owner.token)
    for _ in range(SUBSCRIPTIONS):
        await ws.subscribe(BOARD, {"p": pid})
    await asyncio.sleep(0.2)  # every subscription has reached its broadcast subscribe
    await gql.ok(CREATE, {"i": {"projectId": pid, "title": "one", "description": "x" * 2000}}, token=owner.token)
    await ws.next_data(timeout=10)
    reset(ws)
    for n in range(3):  # the server is still sending these when it finds the socket gone
        await gql.ok(CREATE, {"i": {"projectId": pid, "title": f"t{n}", "description": "x" * 2000}}, token=owner.token)
    await asyncio.sleep(0.5)
    records = [r for r in caplog.records if r.name.startswith("pcg.ws")]
    assert records, "the reset left no trace at all"
    assert all(r.levelname == "DEBUG" and r.exc_info is None for r in records), [r.getMessage() for r in records]
    assert all("websocket gone" in r.getMessage() for r in records)
