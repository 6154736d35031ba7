"""Websocket churn: a socket opened with an access token holds nothing once it has closed.

Each socket opened with a short-lived token schedules its own close at the token's expiry;
that timer must go when the socket does, or every closed socket stays in memory until its
token expires (about 20 KB each: 3,000 cycles held 58 MB before the fix).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import websockets

from tests.conftest import SECRET
from tests.processes import aserving, free_port, subprocess_env
from tests.wsclient import LEGACY_WS, TRANSPORT_WS, GraphQLWS

CYCLES = 5_000
WARM_UP = 500
PARALLEL = 4
# RSS growth allowed over the measured cycles. Before the fix every closed socket held
# ≈20 KB (5,000 cycles after warm-up: +98.8 MB); after it, allocator noise (< 1 MB).
GROWTH_BOUND_KB = 5_000


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


async def _cycle(url: str, token: str, protocol: str) -> None:
    async with websockets.connect(url, subprotocols=[protocol], open_timeout=10) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
        while True:
            message = json.loads(await asyncio.wait_for(socket.recv(), 10))
            if message["type"] == "connection_ack":
                return
            assert message["type"] in ("ka", "ping"), message


async def churn(url: str, token: str, cycles: int) -> None:
    """`cycles` connect / connection_init / ack / close, PARALLEL at a time, both protocols."""
    remaining = iter(range(cycles))

    async def worker() -> None:
        for n in remaining:
            await _cycle(url, token, TRANSPORT_WS if n % 2 else LEGACY_WS)

    await asyncio.gather(*(worker() for _ in range(PARALLEL)))


async def test_churned_sockets_hold_no_memory(tmp_path, settings, factory):
    user = await factory.user("Churn")
    port = free_port()
    env = subprocess_env(
        tmp_path / "data", PCG_DATABASE_URL=settings.database_url, PCG_SECRET_KEY=SECRET,
        PCG_RATE_LIMIT="0",
    )
    async with aserving(env, port, tmp_path / "serve.log", "--log-level", "warning") as proc:
        url = f"ws://127.0.0.1:{port}/graphql"
        await churn(url, user.token, WARM_UP)
        before = rss_kb(proc.pid)
        started = time.monotonic()
        await churn(url, user.token, CYCLES)
        elapsed = time.monotonic() - started
        after = rss_kb(proc.pid)
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
    growth = after - before
    print(f"\n{CYCLES} cycles in {elapsed:.1f} s: RSS {before} -> {after} KB ({growth:+d} KB)")
    assert growth < GROWTH_BOUND_KB, f"RSS grew {growth} KB over {CYCLES} cycles"


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_expiry_timer_goes_with_its_socket(live, factory, protocol):
    """Every way a connection ends (client close, connection_terminate) cancels its timer."""
    from server.ws_protocol import pending_expiry_timers

    user = await factory.user("Timer")
    baseline = pending_expiry_timers()
    sockets = [await GraphQLWS.connect(f"ws://{live}/graphql", protocol=protocol, token=user.token) for _ in range(20)]
    assert pending_expiry_timers() == baseline + 20
    for n, ws in enumerate(sockets):
        if protocol == LEGACY_WS and n % 2:
            await ws.send({"type": "connection_terminate"})
        await ws.close()
    deadline = time.monotonic() + 10
    while pending_expiry_timers() != baseline and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert pending_expiry_timers() == baseline
