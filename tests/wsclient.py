"""A minimal GraphQL-over-websocket client speaking both subprotocols, for the tests."""

from __future__ import annotations

import asyncio
import json

import websockets
from websockets.exceptions import ConnectionClosed

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


class Closed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code}: {reason}")
        self.code = code
        self.reason = reason


class GraphQLWS:
    def __init__(self, socket, protocol: str) -> None:
        self.socket = socket
        self.protocol = protocol
        self._ids = 0

    @classmethod
    async def connect(cls, url: str, protocol: str = TRANSPORT_WS, token: str | None = None, payload=None,
                      user_agent: str | None = None):
        options = {"user_agent_header": user_agent} if user_agent is not None else {}
        socket = await websockets.connect(url, subprotocols=[protocol], open_timeout=5, **options)
        client = cls(socket, protocol)
        init_payload = payload if payload is not None else ({"authorization": f"Bearer {token}"} if token else {})
        await client.send({"type": "connection_init", "payload": init_payload})
        while True:
            message = await client.receive(timeout=5)
            if message["type"] == "connection_ack":
                return client
            if message["type"] == "connection_error":
                continue  # legacy protocol: the close follows

    async def send(self, message: dict) -> None:
        await self.socket.send(json.dumps(message))

    async def receive(self, timeout: float = 5.0) -> dict:
        while True:
            try:
                raw = await asyncio.wait_for(self.socket.recv(), timeout)
            except ConnectionClosed as closed:
                rcvd = closed.rcvd
                raise Closed(rcvd.code if rcvd else None, rcvd.reason if rcvd else "") from None
            assert isinstance(raw, str), "GraphQL websocket messages must be text frames"
            message = json.loads(raw)
            if message["type"] in ("ka", "ping", "pong"):
                if message["type"] == "ping":
                    await self.send({"type": "pong"})
                continue
            return message

    async def subscribe(self, query: str, variables: dict | None = None) -> str:
        self._ids += 1
        op_id = str(self._ids)
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        await self.send({"id": op_id, "type": kind, "payload": {"query": query, "variables": variables or {}}})
        return op_id

    async def next_data(self, timeout: float = 5.0) -> dict:
        """The next result payload ({data} or {data, errors}) of any operation."""
        message = await self.receive(timeout)
        if message["type"] in ("next", "data"):
            return message["payload"]
        if message["type"] == "error":
            payload = message["payload"]
            return {"errors": payload if isinstance(payload, list) else [payload]}
        raise AssertionError(f"unexpected message {message}")

    async def expect_complete(self, timeout: float = 5.0) -> None:
        message = await self.receive(timeout)
        assert message["type"] == "complete", message

    async def close(self) -> None:
        await self.socket.close()


async def closed_within(ws: GraphQLWS, seconds: float) -> Closed:
    """The close of `ws` within `seconds`; a stream's own UNAUTHENTICATED error may come first
    (its access check and the close race), anything else may not."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        try:
            message = await ws.receive(timeout=max(0.0, deadline - loop.time()))
        except Closed as closed:
            return closed
        if message["type"] == "complete":
            continue
        payload = message.get("payload")
        if message["type"] in ("next", "data"):
            errors = payload.get("errors")
        else:
            errors = payload if isinstance(payload, list) else [payload]
        assert errors and errors[0]["extensions"]["code"] == "UNAUTHENTICATED", message
