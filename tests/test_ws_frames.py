"""Malformed websocket frames get the protocol's own answer, over a real uvicorn, with raw
frames from the `websockets` library, on both subprotocols:

- graphql-transport-ws closes the socket with 4400 and a reason "Invalid message: ...";
- legacy graphql-ws answers `error` for the operation (`connection_error` for a frame that is
  not a JSON object) and the socket stays usable;
- an operation whose start fails (a validation rule that raises, or anything else) gets a
  coded `error` for that operation, never a silent complete or a dropped socket.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import gid
from tests.wsclient import LEGACY_WS, TRANSPORT_WS, Closed, GraphQLWS

BOARD = "subscription($p: ID!) { boardEvents(projectId: $p) { seq ... on TaskCreated { task { title } } } }"
UNKNOWN_FRAGMENT = 'subscription { boardEvents(projectId: "%s") { ...Nope } }'
CREATE = "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }"

# (name, raw frame text); {q} is a valid subscription document, JSON-quoted.
OPERATION_FRAMES = [
    ("payload is a string", '{{"id": "1", "type": "%s", "payload": "subscription {{ x }}"}}'),
    ("query is a number", '{{"id": "1", "type": "%s", "payload": {{"query": 42}}}}'),
    ("query is missing", '{{"id": "1", "type": "%s", "payload": {{"variables": {{}}}}}}'),
    ("variables is a string", '{{"id": "1", "type": "%s", "payload": {{"query": {q}, "variables": "p"}}}}'),
    ("operationName is a number", '{{"id": "1", "type": "%s", "payload": {{"query": {q}, "operationName": 7}}}}'),
    ("id is missing", '{{"type": "%s", "payload": {{"query": {q}}}}}'),
    ("id is a number", '{{"id": 1, "type": "%s", "payload": {{"query": {q}}}}}'),
]
NOT_OBJECTS = ["[]", '"subscribe"', "42", "null"]


@pytest.fixture
async def board(factory):
    owner = await factory.user("Olga")
    org = await factory.org(owner)
    project = await factory.project(org, owner, "Frames")
    return {"owner": owner, "pid": gid("Project", project.id)}


def frame(template: str, kind: str) -> str:
    text = (template % kind).format(q=json.dumps(BOARD))
    json.loads(text)  # the frame itself is valid JSON: only its shape is wrong
    return text


async def connect(live, board, protocol) -> GraphQLWS:
    return await GraphQLWS.connect(f"ws://{live}/graphql", protocol, token=board["owner"].token)


async def assert_usable(ws: GraphQLWS, gql, board, title: str) -> None:
    """A fresh subscription on the same socket receives the next event."""
    op_id = await ws.subscribe(BOARD, {"p": board["pid"]})
    await asyncio.sleep(0.1)
    await gql.ok(CREATE, {"i": {"projectId": board["pid"], "title": title}}, token=board["owner"].token)
    message = await ws.receive()
    assert message["id"] == op_id and message["type"] in ("next", "data"), message
    assert message["payload"]["data"]["boardEvents"]["task"]["title"] == title


# -- graphql-transport-ws: 4400 -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "template"), OPERATION_FRAMES, ids=[n for n, _ in OPERATION_FRAMES])
async def test_transport_malformed_subscribe_closes_4400(live, board, name, template):
    ws = await connect(live, board, TRANSPORT_WS)
    await ws.socket.send(frame(template, "subscribe"))
    with pytest.raises(Closed) as closed:
        await ws.receive(timeout=3)
    assert closed.value.code == 4400
    assert closed.value.reason.startswith("Invalid message"), closed.value.reason


@pytest.mark.parametrize("text", NOT_OBJECTS + ['{"type": 5}', '{"type": "complete"}', '{"type": "complete", "id": 3}'])
async def test_transport_malformed_frame_closes_4400(live, board, text):
    ws = await connect(live, board, TRANSPORT_WS)
    await ws.socket.send(text)
    with pytest.raises(Closed) as closed:
        await ws.receive(timeout=3)
    assert closed.value.code == 4400
    assert closed.value.reason.startswith("Invalid message"), closed.value.reason


# -- legacy graphql-ws: an error for the operation, and the socket goes on ---------------------


@pytest.mark.parametrize(("name", "template"), OPERATION_FRAMES, ids=[n for n, _ in OPERATION_FRAMES])
async def test_legacy_malformed_start_answers_error_and_stays_usable(live, gql, board, name, template):
    ws = await connect(live, board, LEGACY_WS)
    try:
        text = frame(template, "start")
        await ws.socket.send(text)
        message = await ws.receive(timeout=3)
        sent_id = json.loads(text).get("id")
        assert message == {
            "type": "error",
            "id": sent_id if isinstance(sent_id, str) else None,
            "payload": {"message": message["payload"]["message"], "extensions": {"code": "BAD_REQUEST"}},
        }
        assert message["payload"]["message"].startswith("Invalid message: ")
        await assert_usable(ws, gql, board, f"after {name}")
    finally:
        await ws.close()


@pytest.mark.parametrize(
    ("text", "answer"),
    [(t, "connection_error") for t in NOT_OBJECTS]
    + [('{"id": "1"}', "error"), ('{"id": "1", "type": "bogus"}', "error"), ('{"type": "stop"}', "error")],
)
async def test_legacy_malformed_frame_answers_and_stays_usable(live, gql, board, text, answer):
    ws = await connect(live, board, LEGACY_WS)
    try:
        await ws.socket.send(text)
        message = await ws.receive(timeout=3)
        assert message["type"] == answer, message
        assert message["payload"]["extensions"]["code"] == "BAD_REQUEST"
        assert message["payload"]["message"].startswith("Invalid message: ")
        await assert_usable(ws, gql, board, "after a bad frame")
    finally:
        await ws.close()


# -- an operation whose start fails: a coded error for it, on both protocols -------------------


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_unknown_fragment_answers_validation_failed(live, gql, board, protocol):
    """The depth rule raises KeyError on an unknown fragment: the spec's own rules answer."""
    ws = await connect(live, board, protocol)
    try:
        op_id = await ws.subscribe(UNKNOWN_FRAGMENT % board["pid"])
        message = await ws.receive(timeout=3)
        assert (message["type"], message["id"]) == ("error", op_id), message
        errors = message["payload"] if protocol == TRANSPORT_WS else [message["payload"]]
        assert [e["extensions"]["code"] for e in errors] == ["GRAPHQL_VALIDATION_FAILED"]
        assert errors[0]["message"] == "Unknown fragment 'Nope'."
        await assert_usable(ws, gql, board, "after an invalid document")
    finally:
        await ws.close()


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_any_failure_to_start_is_a_coded_error_for_that_operation(live, gql, board, protocol, monkeypatch):
    """A fault injected below the handler (the schema raising on a valid document) reaches the
    client as one masked INTERNAL_SERVER_ERROR for that operation; the socket goes on."""
    from schema.root import schema

    original = schema.stream
    calls = []

    async def failing_once(*args, **kwargs):
        if not calls:
            calls.append(1)
            raise RuntimeError("database on fire")
        return await original(*args, **kwargs)

    monkeypatch.setattr(schema, "stream", failing_once)
    ws = await connect(live, board, protocol)
    try:
        op_id = await ws.subscribe(BOARD, {"p": board["pid"]})
        message = await ws.receive(timeout=3)
        assert (message["type"], message["id"]) == ("error", op_id), message
        errors = message["payload"] if protocol == TRANSPORT_WS else [message["payload"]]
        assert [(e["message"], e["extensions"]["code"]) for e in errors] == [
            ("Internal server error", "INTERNAL_SERVER_ERROR")
        ]
        assert "fire" not in json.dumps(message)
        await assert_usable(ws, gql, board, "after a failed start")
    finally:
        await ws.close()


def test_a_websocket_message_is_bounded_like_a_request_body(tmp_path):
    """`pcg serve` caps websocket messages at PCG_MAX_BODY_BYTES: a bigger frame closes the
    socket with 1009 (message too big) before the server parses it."""
    import asyncio

    import websockets

    from tests.processes import free_port, serving, subprocess_env

    port = free_port()
    with serving(subprocess_env(tmp_path / "data", PCG_MAX_BODY_BYTES="65536"), port, tmp_path / "serve.log"):
        async def send_big() -> int:
            async with websockets.connect(f"ws://127.0.0.1:{port}/graphql",
                                          subprotocols=["graphql-transport-ws"], max_size=None) as ws:
                await ws.send('{"type": "connection_init", "payload": {"pad": "' + "x" * 70_000 + '"}}')
                try:
                    await asyncio.wait_for(ws.recv(), 5)
                except websockets.ConnectionClosed as closed:
                    return closed.rcvd.code
            return 0

        assert asyncio.run(send_big()) == 1009
