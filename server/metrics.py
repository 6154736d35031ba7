"""GET /metrics: the Prometheus text format, for the peers PCG_METRICS allows.

`loopback` (the default) serves 127.0.0.1 and ::1 only: behind a reverse proxy on the same
host every request is a loopback peer, so there use `token:` or keep /metrics off the proxy.
Under `pcg serve --workers N` the values of every worker are aggregated from the files in
PROMETHEUS_MULTIPROC_DIR (set by `pcg serve`, a fresh directory per run).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response
from tortoise import Tortoise

from resolvers import metrics
from server.transport import error_response

log = logging.getLogger("pcg.metrics")

LOOPBACK = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})
POOL_SAMPLE_SECONDS = 5.0


def refusal(request: Request, policy: str) -> Response | None:
    """None when the caller may read the metrics; the JSON refusal otherwise."""
    request_id = request.scope.get("state", {}).get("request_id")
    if policy == "off":
        return error_response(404, "NOT_FOUND", "Metrics are turned off (PCG_METRICS=off)", request_id)
    if policy.startswith("token:"):
        expected = policy[len("token:"):].encode()
        given = request.headers.get("authorization", "")
        scheme, _, secret = given.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(secret.strip().encode(), expected):
            return None
        return error_response(403, "FORBIDDEN", "Metrics need the PCG_METRICS bearer token", request_id)
    peer = request.client.host if request.client else None
    if peer in LOOPBACK:
        return None
    return error_response(403, "FORBIDDEN", "Metrics are served to loopback peers only", request_id)


def _registry():
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def endpoint(policy: str):
    async def serve_metrics(request: Request) -> Response:
        refused = refusal(request, policy)
        if refused is not None:
            return refused
        sample_pool()
        # Text format 0.0.4, or OpenMetrics when the scraper asks for it.
        encode, content_type = choose_encoder(request.headers.get("accept"))
        return Response(encode(_registry()), headers={"Content-Type": content_type})

    return serve_metrics


def pool_usage() -> tuple[int, int, int] | None:
    """(open, in use, most) connections of the default database connection, or None.

    The one adapter to Tortoise's clients: asyncpg's pool behind AsyncpgDBClient._pool; the
    SQLite client is one connection behind an asyncio lock, in use while the lock is held."""
    try:
        client = Tortoise.get_connection("default")
    except Exception:  # noqa: BLE001 - not initialised (yet, or any more)
        return None
    pool = getattr(client, "_pool", None)
    if pool is not None and hasattr(pool, "get_size"):
        size = pool.get_size()
        return size, size - pool.get_idle_size(), pool.get_max_size()
    lock = getattr(client, "_lock", None)
    if isinstance(lock, asyncio.Lock):
        return 1, int(lock.locked()), 1
    return None


def sample_pool() -> None:
    usage = pool_usage()
    if usage is None:
        return
    size, in_use, most = usage
    metrics.POOL_SIZE.set(size)
    metrics.POOL_IN_USE.set(in_use)
    metrics.POOL_MAX.set(most)


async def sample_pool_forever() -> None:
    """Every worker keeps its own pool figures fresh: a scrape reaches one worker only."""
    while True:
        try:
            sample_pool()
        except Exception:  # noqa: BLE001 - a figure missing is better than a dead task
            log.debug("sampling the database pool failed", exc_info=True)
        await asyncio.sleep(POOL_SAMPLE_SECONDS)


def forget_this_process() -> None:
    """Under multiprocess mode, a worker that stops takes its live gauges (open websockets,
    subscriptions, pool, broker) out of the sums; its counters stay, as counters should."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())
