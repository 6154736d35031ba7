"""The application factory: Starlette + Strawberry + Tortoise + broadcast."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from tortoise import Tortoise
from tortoise.contrib.starlette import RegisterTortoise

from resolvers.broadcast import Hub
from resolvers.events import prune_forever
from schema.root import schema as default_schema
from server.db import tortoise_config
from server.graphql_app import PcgGraphQL
from server.middleware import RequestIdMiddleware
from server.settings import Settings

log = logging.getLogger("pcg")


async def health(request: Request) -> JSONResponse:
    try:
        await Tortoise.get_connection("default").execute_query("SELECT 1")
        database = "ok"
    except Exception:  # noqa: BLE001 - report, don't raise
        database = "unavailable"
    status = 200 if database == "ok" else 503
    return JSONResponse({"status": "ok" if status == 200 else "degraded", "database": database}, status)


def create_app(settings: Settings, schema=default_schema) -> Starlette:
    settings = settings.with_secret()
    broadcast = Hub(settings.broadcast_url)
    graphql = PcgGraphQL(schema, settings=settings, broadcast=broadcast)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        async with RegisterTortoise(app, config=tortoise_config(settings.database_url)):
            await broadcast.connect()
            pruner = asyncio.create_task(prune_forever(settings.event_retention_days))
            try:
                yield
            finally:
                pruner.cancel()
                await broadcast.disconnect()

    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/api/health", health),
        ],
        middleware=[Middleware(RequestIdMiddleware)],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.broadcast = broadcast
    return app


def app_from_env() -> Starlette:
    """Factory for uvicorn's import-string mode (`pcg serve --reload` / `--workers N`):
    each worker process builds its own app from the environment."""
    return create_app(Settings.from_env())
