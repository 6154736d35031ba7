"""The application factory: Starlette + Strawberry + Tortoise + broadcast."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from tortoise import Tortoise
from tortoise.contrib.starlette import RegisterTortoise

from resolvers.broadcast import Hub
from resolvers.events import prune_forever
from resolvers.nora.engine import NoraRuntime
from schema.root import schema as default_schema
from server import metrics
from server.db import tortoise_config
from server.graphql_app import PcgGraphQL
from server.logs import configure_if_needed
from server.middleware import (
    RequestIdMiddleware,
    SecurityHeadersMiddleware,
    WebSocketMetricsMiddleware,
    cors,
)
from server.ratelimit import RateLimitMiddleware
from server.settings import PROJECT_ROOT, Settings
from server.tracing import start_tracing

log = logging.getLogger("pcg")


async def health(request: Request) -> JSONResponse:
    try:
        await Tortoise.get_connection("default").execute_query("SELECT 1")
        database = "ok"
    except Exception:  # noqa: BLE001 - report, don't raise
        database = "unavailable"
    status = 200 if database == "ok" else 503
    return JSONResponse({"status": "ok" if status == 200 else "degraded", "database": database}, status)


BOARD_PAGE = PROJECT_ROOT / "client-examples" / "web" / "index.html"
# The board page talks only to this server; the policy makes the browser hold it to that.
BOARD_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


async def board_page(request: Request):
    """The live-board example (client-examples/web/), served so that the page, its requests
    and its websocket share the server's origin, which the websocket origin check requires."""
    if not BOARD_PAGE.is_file():
        return PlainTextResponse("The board page ships with the source tree, not with this install.", 404)
    return FileResponse(BOARD_PAGE, media_type="text/html", headers={
        "Content-Security-Policy": BOARD_CSP, "Cache-Control": "no-cache",
    })


def create_app(settings: Settings, schema=default_schema) -> Starlette:
    settings = settings.with_secret()
    configure_if_needed()
    tracing = start_tracing(settings.otel_endpoint)
    broadcast = Hub(settings.broadcast_url)
    nora = NoraRuntime(settings, broadcast)
    graphql = PcgGraphQL(schema, settings=settings, broadcast=broadcast, nora=nora)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        async with RegisterTortoise(app, config=tortoise_config(settings.database_url)):
            await broadcast.connect()
            pruner = asyncio.create_task(prune_forever(settings.event_retention_days))
            pool_sampler = asyncio.create_task(metrics.sample_pool_forever())
            await nora.start()
            try:
                yield
            finally:
                pruner.cancel()
                pool_sampler.cancel()
                # Running NORA replies end (FAILED, with what was written) while the
                # database and broadcast are still up.
                await nora.stop()
                await broadcast.disconnect()
                if tracing is not None:
                    await tracing.shutdown()
                metrics.forget_this_process()

    app = Starlette(
        routes=[
            # Every method reaches the view, which answers what it does not serve in JSON.
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            Route("/api/health", health),
            Route("/board", board_page),
            Route("/metrics", metrics.endpoint(settings.metrics)),
        ],
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(WebSocketMetricsMiddleware),
            Middleware(SecurityHeadersMiddleware, hsts=settings.hsts),
            cors(settings),
            Middleware(RateLimitMiddleware, settings=settings),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.broadcast = broadcast
    app.state.nora = nora
    return app


def app_from_env() -> Starlette:
    """Factory for uvicorn's import-string mode (`pcg serve --reload` / `--workers N`):
    each worker process builds its own app from the environment."""
    return create_app(Settings.from_env())
