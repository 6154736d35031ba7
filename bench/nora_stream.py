"""NORA streaming benchmark: a fake provider emitting 1,000 tokens/s into one reply that
100 websocket subscribers follow through `noraEvents`.

    .venv/bin/python bench/nora_stream.py                       # 100 subscribers, 5 s of tokens
    .venv/bin/python bench/nora_stream.py --subscribers 200 --seconds 10 --rate 2000

One `pcg serve` (embedded SQLite, memory broadcast, PCG_NORA_PROVIDER=openai) talks to a fake
OpenAI-compatible server in its own process that streams tokens at `--rate`. Each token is
the wall-clock microsecond at which the provider wrote it, so a client that receives a
TextDelta measures provider-token → client-delivery latency for every token in it: that
includes the server's delta coalescing (one TextDelta per ~30 ms per message), the event's
write to the log, the broadcast and the websocket fan-out. Clients run in their own
processes; on a small machine they still compete with the server for CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-secret-" + "x" * 40
EVENTS = """subscription($c: ID!, $after: String) { noraEvents(conversationId: $c, after: $after) {
  __typename seq ... on TextDelta { index text } ... on MessageCompleted { message { status } } } }"""
START = """mutation($i: StartNoraConversationInput!) { startNoraConversation(input: $i) {
  conversation { id eventCursor } } }"""
SEND = """mutation($i: SendNoraMessageInput!) { sendNoraMessage(input: $i) {
  assistantMessage { id status } } }"""
WRAP = 10**10  # tokens carry the microsecond clock modulo this (hex), ~2.7 hours
# `pcg serve` under cProfile. uvicorn re-raises SIGTERM after its graceful shutdown, which
# would kill the process before cProfile writes: dump from the signal handler instead.
PROFILED_SERVE = """
import cProfile, os, signal, sys
out = sys.argv[1]
profile = cProfile.Profile()
def dump(*_):
    profile.disable(); profile.dump_stats(out); os._exit(0)
signal.signal(signal.SIGTERM, dump)
from server.cli import main
profile.enable()
main(sys.argv[2:])
dump()
"""


def stamp() -> str:
    return f"{int(time.time() * 1_000_000) % WRAP:x} "


def age_ms(token: str, now: float) -> float:
    sent = int(token, 16)
    return ((int(now * 1_000_000) - sent) % WRAP) / 1000


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# -- the fake provider ---------------------------------------------------------------------------


async def _provider(port_out, rate: float, seconds: float) -> None:
    total = int(rate * seconds)

    def sse(event: dict) -> bytes:
        data = f"data: {json.dumps(event)}\n\n".encode()
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    done = b"e\r\ndata: [DONE]\n\n\r\n"

    def delta(content: str | None = None, finish: str | None = None) -> dict:
        return {"choices": [{"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}]}

    async def handle(reader, writer) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
        )
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\n")
        writer.write(sse(delta("")))
        start, sent = time.perf_counter(), 0
        while sent < total:
            due = start + sent / rate
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            now = time.perf_counter()
            batch = b""
            while sent < total and start + sent / rate <= now:  # catch up if the loop lagged
                batch += sse(delta(stamp()))
                sent += 1
            writer.write(batch)
            await writer.drain()
        writer.write(sse(delta(finish="stop")))
        writer.write(sse({"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": total}}))
        writer.write(done)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port_out.put(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def provider_process(port_out, rate: float, seconds: float) -> None:
    asyncio.run(_provider(port_out, rate, seconds))


# -- subscribers ---------------------------------------------------------------------------------


async def _clients(url: str, token: str, conversation: dict, count: int, compression: bool, ready, out) -> None:
    import websockets

    latencies: list[float] = []
    deltas: list[int] = []
    spans: list[float] = []
    connected = [0]

    async def one() -> None:
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"], max_queue=None,
                                      open_timeout=60, ping_interval=None,
                                      compression="deflate" if compression else None) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            variables = {"c": conversation["id"], "after": conversation["eventCursor"]}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": EVENTS, "variables": variables}}))
            connected[0] += 1
            count_deltas, first, last = 0, None, None
            while True:
                message = json.loads(await ws.recv())
                if message["type"] != "next":
                    raise SystemExit(f"subscription ended: {message}")
                now = time.time()
                event = message["payload"]["data"]["noraEvents"]
                if event["__typename"] == "TextDelta":
                    count_deltas += 1
                    first = first or now
                    last = now
                    latencies.extend(age_ms(t, now) for t in event["text"].split())
                elif event["__typename"] in ("MessageCompleted", "MessageFailed", "MessageCancelled"):
                    if event["__typename"] != "MessageCompleted":
                        raise SystemExit(f"the reply ended with {event}")
                    break
            deltas.append(count_deltas)
            spans.append((last - first) if first else 0.0)

    tasks = [asyncio.create_task(one()) for _ in range(count)]
    while connected[0] < count:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    ready.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=300)
    out.put({"latencies": latencies, "deltas": deltas, "spans": spans})


def client_process(url, token, conversation, count, compression, ready, out) -> None:
    asyncio.run(_clients(url, token, conversation, count, compression, ready, out))


# -- the server ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, token: str | None, query: str, variables: dict) -> dict:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables},
                      headers=headers, timeout=30).json()
    if body.get("errors"):
        raise SystemExit(f"GraphQL error: {body['errors']}")
    return body["data"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=1000.0, help="provider tokens per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long the provider streams")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--no-compression", action="store_true",
                        help="clients do not offer permessage-deflate (browsers do)")
    parser.add_argument("--profile", metavar="FILE", help="run the server under cProfile, writing FILE")
    args = parser.parse_args()

    import httpx

    ctx = mp.get_context("spawn")
    ports = ctx.Queue()
    provider = ctx.Process(target=provider_process, args=(ports, args.rate, args.seconds), daemon=True)
    provider.start()
    provider_port = ports.get(timeout=30)

    tmp = Path(tempfile.mkdtemp(prefix="pcg-nora-bench-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PCG_")} | {
        "PCG_DATA_DIR": str(tmp), "PCG_SECRET_KEY": SECRET, "PCG_NORA_PROVIDER": "openai",
        "PCG_NORA_BASE_URL": f"http://127.0.0.1:{provider_port}/v1", "PCG_NORA_MODEL": "fake-1000tps",
        "PCG_NORA_QUOTA_FREE": "100000000",
    }
    if args.database_url:
        env["PCG_DATABASE_URL"] = args.database_url
    pcg = Path(sys.executable).parent / "pcg"
    cmd = [str(pcg)] if pcg.exists() and not args.profile else [sys.executable, "-m", "server.cli"]
    if args.profile:
        cmd = [sys.executable, "-c", PROFILED_SERVE, args.profile]
    log = tmp / "server.log"
    with log.open("w") as out_file:
        server = subprocess.Popen([*cmd, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                                  stdout=out_file, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    clients = []
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise SystemExit(f"pcg serve exited:\n{log.read_text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"pcg serve did not start:\n{log.read_text()}")
            time.sleep(0.1)

        account = {"email": "bench@example.test", "password": "benchmark!"}
        graphql(port, None, "mutation($i: SignUpInput!) { signUp(input: $i) { ok } }",
                {"i": {**account, "name": "Bench"}})
        # signUp returns no token (it answers alike for a taken email): log in.
        signed = graphql(port, None, "mutation($i: LogInInput!) { logIn(input: $i) { accessToken } }",
                         {"i": account})
        token = signed["logIn"]["accessToken"]
        org = graphql(port, token, "mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { organization { id } } }",
                      {"i": {"slug": "bench", "name": "Bench"}})["createOrganization"]["organization"]["id"]
        conversation = graphql(port, token, START, {"i": {"organizationId": org, "title": "bench"}})
        conversation = conversation["startNoraConversation"]["conversation"]

        out = ctx.Queue()
        readies = []
        per = [args.subscribers // args.client_processes] * args.client_processes
        per[0] += args.subscribers - sum(per)
        for count in per:
            ready = ctx.Event()
            readies.append(ready)
            clients.append(ctx.Process(target=client_process,
                                       args=(f"ws://127.0.0.1:{port}/graphql", token, conversation, count,
                                             not args.no_compression, ready, out)))
            clients[-1].start()
        for ready in readies:
            if not ready.wait(120):
                raise SystemExit("subscribers did not connect in time")

        cpu_before = cpu_seconds(server.pid)
        started = time.monotonic()
        graphql(port, token, SEND, {"i": {"conversationId": conversation["id"], "content": "stream, please"}})
        results = [out.get(timeout=args.seconds + 120) for _ in clients]
        elapsed = time.monotonic() - started
        server_cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        for client in clients:
            client.join(5)
        server.terminate()
        server.wait(10)
        provider.terminate()
        shutil.rmtree(tmp, ignore_errors=True)

    latencies = [v for r in results for v in r["latencies"]]
    deltas = [d for r in results for d in r["deltas"]]
    spans = [s for r in results for s in r["spans"]]
    tokens = int(args.rate * args.seconds)
    per_sub = [d / s for d, s in zip(deltas, spans) if s > 0]
    print(f"subscribers              {args.subscribers} (in {args.client_processes} client processes), "
          f"{os.cpu_count()} CPUs")
    print(f"provider                 {tokens} tokens at {args.rate:.0f} tokens/s ({args.seconds:.1f} s); "
          f"reply done after {elapsed:.2f} s")
    print(f"tokens delivered         {len(latencies)} (expected {tokens * args.subscribers})")
    print(f"TextDelta per subscriber {min(deltas)}-{max(deltas)} events, "
          f"{sum(per_sub) / len(per_sub):.1f} events/s (coalesced; the cap is ~33/s)")
    print(f"token -> client latency  p50 {percentile(latencies, 50):.1f} ms   p95 {percentile(latencies, 95):.1f} ms   p99 {percentile(latencies, 99):.1f} ms   max {max(latencies):.1f} ms")
    print(f"server CPU               {server_cpu:.2f} s in {elapsed:.2f} s ({server_cpu / elapsed:.0%} of one core)")
    target = percentile(latencies, 95) <= 50
    print(f"target p95 <= 50 ms      {'met' if target else 'NOT met'}")


if __name__ == "__main__":
    main()
