"""A fake OpenAI-compatible chat-completions server on 127.0.0.1 for the NORA tests.

Raw asyncio HTTP/1.1: each request is recorded and answered by the next scripted behaviour,
streaming server-sent events with chunked transfer encoding like the real API.
"""

from __future__ import annotations

import asyncio
import json


def chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None) -> dict:
    event = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "fake-model", "choices": []}
    if delta is not None or finish is not None:
        event["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    if usage is not None:
        event["usage"] = usage
    return event


def text_events(tokens: list[str], prompt: int = 10, completion: int | None = None) -> list[dict]:
    return [
        chunk({"role": "assistant", "content": ""}),
        *[chunk({"content": t}) for t in tokens],
        chunk(finish="stop"),
        chunk(usage={"prompt_tokens": prompt, "completion_tokens": completion or len(tokens)}),
    ]


def tool_events(tokens: list[str], name: str, arguments: dict, prompt: int = 20, completion: int = 7) -> list[dict]:
    raw = json.dumps(arguments)
    half = len(raw) // 2
    return [
        chunk({"role": "assistant", "content": ""}),
        *[chunk({"content": t}) for t in tokens],
        chunk({"tool_calls": [{"index": 0, "id": "call_abc", "type": "function",
                               "function": {"name": name, "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": raw[:half]}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": raw[half:]}}]}),
        chunk(finish="tool_calls"),
        chunk(usage={"prompt_tokens": prompt, "completion_tokens": completion}),
    ]


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: list = []
        self.disconnected = asyncio.Event()
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> FakeOpenAI:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        self.server.close()

    @property
    def url(self) -> str:
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    # -- behaviours, queued in `script` ---------------------------------------------------------

    @staticmethod
    def stream(events: list[dict], delay: float = 0.0, done: bool = True):
        async def behave(writer, reader):
            await _head(writer, 200, "text/event-stream")
            for event in events:
                await _send_chunk(writer, f"data: {json.dumps(event)}\n\n")
                if delay:
                    await asyncio.sleep(delay)
            if done:
                await _send_chunk(writer, "data: [DONE]\n\n")
            await _send_chunk(writer, "")
        return behave

    @staticmethod
    def raw(text: str, piece: int = 0, content_type: str = "text/event-stream"):
        """Send `text` as it is, cut into transfer chunks of `piece` characters (0: one), so
        that line ends and fields fall across reads; then end the response."""
        async def behave(writer, reader):
            await _head(writer, 200, content_type)
            step = piece or len(text) or 1
            for start in range(0, len(text), step):
                await _send_chunk(writer, text[start:start + step])
            await _send_chunk(writer, "")
        return behave

    @staticmethod
    def break_after(events: list[dict]):
        """Send some chunks, then drop the connection in the middle of a chunk."""
        async def behave(writer, reader):
            await _head(writer, 200, "text/event-stream")
            for event in events:
                await _send_chunk(writer, f"data: {json.dumps(event)}\n\n")
            writer.write(b"40\r\ndata: {\"trunc")
            await writer.drain()
            writer.transport.abort()
        return behave

    def stall_after(self, events: list[dict], seconds: float = 15.0):
        """Send some chunks, then say nothing; note when the client goes away."""
        async def behave(writer, reader):
            await _head(writer, 200, "text/event-stream")
            for event in events:
                await _send_chunk(writer, f"data: {json.dumps(event)}\n\n")
            try:
                if await asyncio.wait_for(reader.read(1), seconds) == b"":
                    self.disconnected.set()
            except (TimeoutError, ConnectionError):
                pass
        return behave

    def gated(self, first: list[dict], gate: asyncio.Event, rest: list[dict], seconds: float = 15.0):
        """Send `first`, then nothing until the test sets `gate`, then `rest` and the end.
        A client that goes away meanwhile is noted (and gets nothing more)."""
        async def behave(writer, reader):
            await _head(writer, 200, "text/event-stream")
            for event in first:
                await _send_chunk(writer, f"data: {json.dumps(event)}\n\n")
            gone = asyncio.ensure_future(reader.read(1))
            opened = asyncio.ensure_future(gate.wait())
            done, _ = await asyncio.wait([gone, opened], timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
            if gone in done or not done:
                opened.cancel()
                if gone in done:
                    self.disconnected.set()
                return
            gone.cancel()
            for event in rest:
                await _send_chunk(writer, f"data: {json.dumps(event)}\n\n")
            await _send_chunk(writer, "data: [DONE]\n\n")
            await _send_chunk(writer, "")
        return behave

    @staticmethod
    def http_error(status: int, body: dict):
        async def behave(writer, reader):
            raw = json.dumps(body).encode()
            writer.write(
                f"HTTP/1.1 {status} Error\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(raw)}\r\nConnection: close\r\n\r\n".encode() + raw
            )
            await writer.drain()
        return behave

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append({"method": method, "path": path, "headers": headers, "json": json.loads(body or b"{}")})
            behave = self.script.pop(0) if self.script else self.stream(text_events(["ok"]))
            await behave(writer, reader)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if not writer.transport.is_closing():
                writer.close()


async def _head(writer, status: int, content_type: str) -> None:
    writer.write(
        f"HTTP/1.1 {status} OK\r\nContent-Type: {content_type}\r\nCache-Control: no-cache\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
    )
    await writer.drain()


async def _send_chunk(writer, text: str) -> None:
    data = text.encode()
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    await writer.drain()
