"""The application factory: Starlette + Strawberry + Tortoise + broadcast."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from tortoise.contrib.starlette import RegisterTortoise
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from resolvers import response_cache
from resolvers.audit import retention as audit_retention
from resolvers.broadcast import Hub
from resolvers.documents import TrustedDocuments
from resolvers.email.worker import OutboxWorker
from resolvers.event.log import prune_forever
from resolvers.identity import sessions as session_lifecycle
from resolvers.identity.revocations import SessionRegistry
from resolvers.nora.engine import NoraRuntime
from schema.root import schema as default_schema
from server import audit_csv, gc_tuning, graphiql, health, metrics
from server.db import tortoise_config
from server.graphql_app import PcgGraphQL
from server.logs import configure_if_needed
from server.middleware import (
    RequestIdMiddleware,
    SecurityHeadersMiddleware,
    UnhandledErrorMiddleware,
    WebSocketMetricsMiddleware,
    cors,
)
from server.persisted import PersistedQueries
from server.ratelimit import RateLimitMiddleware
from server.settings import PROJECT_ROOT, Settings
from server.tracing import start_tracing
from server.transport import error_response

log = logging.getLogger("pcg")


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


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """Starlette's own refusals (unknown path, method) in the API's JSON error shape."""
    codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
    return error_response(
        exc.status_code, codes.get(exc.status_code, "BAD_REQUEST"), exc.detail,
        request.scope.get("state", {}).get("request_id"), dict(exc.headers or {}),
    )


def create_app(settings: Settings, schema=default_schema) -> Starlette:
    settings = settings.with_secret()
    configure_if_needed()
    tracing = start_tracing(settings.otel_endpoint)
    broadcast = Hub(settings.broadcast_url)
    nora = NoraRuntime(settings, broadcast)
    sessions = SessionRegistry(broadcast)
    mailer = OutboxWorker(settings)
    persisted = PersistedQueries(settings.broadcast_url, settings.limits.max_document_chars)
    documents = TrustedDocuments(settings.trusted_documents)
    answers = response_cache.make_store(
        settings.broadcast_url, max_entries=settings.response_cache_entries,
        max_bytes=settings.response_cache_bytes, ttl_seconds=settings.response_cache_ttl,
    ) if settings.response_cache else None
    graphql = PcgGraphQL(schema, settings=settings, broadcast=broadcast, nora=nora,
                         persisted=persisted, documents=documents, sessions=sessions,
                         response_cache=answers)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        async with RegisterTortoise(app, config=tortoise_config(settings.database_url, settings)):
            await broadcast.connect()
            # Before the first request: ended sessions are refused from the start.
            await sessions.start()
            pruner = asyncio.create_task(prune_forever(settings.event_retention_days))
            session_pruner = asyncio.create_task(session_lifecycle.prune_forever())
            audit_pruner = (asyncio.create_task(audit_retention.prune_forever(settings))
                            if audit_retention.enabled(settings) else None)
            pool_sampler = asyncio.create_task(metrics.sample_pool_forever())
            await nora.start()
            await mailer.start()
            if documents.active:
                await documents.refresh()
                reloader = asyncio.create_task(documents.refresh_forever())
            gc_tuning.tune()
            try:
                yield
            finally:
                await mailer.stop()
                pruner.cancel()
                session_pruner.cancel()
                if audit_pruner is not None:
                    audit_pruner.cancel()
                if documents.active:
                    reloader.cancel()
                pool_sampler.cancel()
                # Running NORA replies end (FAILED, with what was written) while the
                # database and broadcast are still up.
                await nora.stop()
                await sessions.stop()
                await broadcast.disconnect()
                await persisted.close()
                if answers is not None:
                    await answers.close()
                if tracing is not None:
                    await tracing.shutdown()
                metrics.forget_this_process()

    app = Starlette(
        routes=[
            # Every method reaches the view, which answers what it does not serve in JSON.
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            Route("/api/health", health.combined),
            Route("/api/health/live", health.live),
            Route("/api/health/ready", health.ready),
            Route("/api/orgs/{slug}/audit.csv", audit_csv.endpoint, methods=["GET"]),
            Route("/board", board_page),
            *([Mount(graphiql.STATIC_PATH, app=graphiql.static_files())] if settings.graphiql_enabled else []),
            Route("/metrics", metrics.endpoint(settings.metrics)),
        ],
        middleware=[
            # First, so every layer below sees the client behind a trusted proxy.
            *([Middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))]
              if settings.trusted_proxies else []),
            Middleware(RequestIdMiddleware),
            Middleware(WebSocketMetricsMiddleware),
            Middleware(SecurityHeadersMiddleware, hsts=settings.hsts),
            cors(settings),
            Middleware(UnhandledErrorMiddleware),
            Middleware(RateLimitMiddleware, settings=settings),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    app.state.settings = settings
    app.state.broadcast = broadcast
    app.state.nora = nora
    app.state.sessions = sessions
    app.state.mailer = mailer
    app.state.response_cache = answers
    return app


def app_from_env() -> Starlette:
    """Factory for uvicorn's import-string mode (`pcg serve --reload` / `--workers N`):
    each worker process builds its own app from the environment."""
    return create_app(Settings.from_env())
