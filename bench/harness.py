"""What bench/board.py and bench/light.py share: interleaved timing of several ways to serve
the same answer, the executor switch, and the cost of the HTTP client and transport alone.

Each side is measured in alternating blocks (compiled, graphql-core, HTTP only, floor,
compiled, ...), so that a noisy neighbour on the shared machine slows every side alike and
the ratios stay meaningful. CPU is this process's (`time.process_time`): the database
server's is not in it, the in-process HTTP client's is, which is why the "HTTP only" side
(the same client and ASGI transport answering the same bytes from a trivial app) is
measured too: GraphQL minus HTTP only is the server's share.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx

from models import orm
from server.graphql_app import PcgGraphQL


def graphql_view(app) -> PcgGraphQL:
    for route in app.routes:
        endpoint = getattr(route, "endpoint", None)
        if isinstance(endpoint, PcgGraphQL):
            return endpoint
    raise LookupError("no GraphQL route")


def use_executor(app, compiled: bool) -> None:
    """Switch the app between compiled plans (schema/execution) and graphql-core's executor
    (what PCG_COMPILED_EXECUTION sets), between two measured blocks."""
    view = graphql_view(app)
    view.settings = view.settings.model_copy(update={"compiled_execution": compiled})


def use_executor_cold(app, compiled: bool) -> None:
    """`use_executor` with the response cache out of the way: every request runs."""
    use_executor(app, compiled)
    use_cache(app, False)


def use_cache(app, on: bool) -> None:
    """Serve repeated queries from the response cache (schema/caching.py) or never."""
    view = graphql_view(app)
    view.response_cache = app.state.response_cache if on else None


def canned_app(body: bytes):
    """An ASGI app that answers every request with `body` as JSON."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        ]})
        await send({"type": "http.response.body", "body": body})

    return app


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")


class StatementCount(logging.Handler):
    """One DEBUG record per statement on tortoise.db_client (see tests/querycount.py)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if not str(record.msg).startswith(orm.NOT_STATEMENTS):
            self.count += 1

    async def around(self, call) -> int:
        logger = logging.getLogger("tortoise.db_client")
        level, propagate = logger.level, logger.propagate
        logger.setLevel(logging.DEBUG)
        logger.propagate = False  # counted here, not printed
        logger.addHandler(self)
        try:
            await call()
        finally:
            logger.removeHandler(self)
            logger.setLevel(level)
            logger.propagate = propagate
        return self.count


@dataclasses.dataclass
class Side:
    name: str
    call: Callable[[], Awaitable[object]]
    before: Callable[[], None] | None = None  # e.g. switch the executor
    latencies: list[float] = dataclasses.field(default_factory=list)
    cpu: float = 0.0
    elapsed: float = 0.0
    count: int = 0

    def result(self) -> dict:
        latencies = sorted(self.latencies)
        return {
            "p50": statistics.median(latencies) * 1000,
            "p95": latencies[max(0, int(len(latencies) * 0.95) - 1)] * 1000,
            "rps": self.count / self.elapsed,
            "cpu": self.cpu / self.count * 1000,
        }


async def _block(side: Side, n: int, concurrency: int) -> None:
    remaining = iter(range(n))

    async def worker() -> None:
        for _ in remaining:
            start = time.perf_counter()
            await side.call()
            side.latencies.append(time.perf_counter() - start)

    if side.before is not None:
        side.before()
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    side.elapsed += time.perf_counter() - start
    side.cpu += time.process_time() - cpu
    side.count += n


async def interleaved(sides: list[Side], n: int, concurrency: int, rounds: int = 5) -> dict[str, dict]:
    """`n` calls of each side at `concurrency`, in `rounds` alternating blocks."""
    fresh = [dataclasses.replace(side, latencies=[], cpu=0.0, elapsed=0.0, count=0) for side in sides]
    per_block = max(1, n // rounds)
    for _ in range(rounds):
        for side in fresh:
            await _block(side, per_block, concurrency)
    return {side.name: side.result() for side in fresh}


def row(name: str, m: dict, width: int = 30) -> str:
    return (
        f"  {name:<{width}} p50 {m['p50']:8.2f} ms  p95 {m['p95']:8.2f} ms  "
        f"{m['rps']:7.1f} req/s  cpu {m['cpu']:7.2f} ms/req"
    )
