"""Health endpoints for load balancers and orchestrators.

- `/api/health/live`: the process answers; no I/O, so a slow database never gets a healthy
  process restarted.
- `/api/health/ready`: the database answers within its budget, the migrations are at head,
  the broadcast broker is connected; 503 naming the failing part otherwise.
- `/api/health`: the combined view, with the keys it always had (`status`, `database`).
Each check is bounded by `PCG_HEALTH_TIMEOUT`, and they run concurrently: the answer comes
within one budget, whatever hangs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse
from tortoise import Tortoise

from resolvers.errors import ServiceUnavailable
from server.db import APP_LABEL

OK = "ok"


async def live(request: Request) -> JSONResponse:
    return JSONResponse({"status": OK})


async def ready(request: Request) -> JSONResponse:
    checks = await run_checks(request.app)
    healthy = all(value == OK for value in checks.values())
    return _answer({"status": OK if healthy else "unavailable", "checks": checks}, healthy)


async def combined(request: Request) -> JSONResponse:
    checks = await run_checks(request.app)
    healthy = all(value == OK for value in checks.values())
    body = {
        "status": OK if healthy else "degraded",
        # Kept as it was before the checks existed: "ok" or "unavailable".
        "database": OK if checks["database"] == OK else "unavailable",
        "checks": checks,
    }
    return _answer(body, healthy)


def _answer(body: dict, healthy: bool) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if not healthy:
        headers["Retry-After"] = str(ServiceUnavailable.retry_after)
    return JSONResponse(body, 200 if healthy else 503, headers=headers)


async def run_checks(app) -> dict[str, str]:
    settings = app.state.settings
    budget = settings.health_timeout
    database, migrations, broadcast = await asyncio.gather(
        _bounded(_database(), budget, failed="down"),
        _bounded(_migrations(settings.migrations_dir), budget, failed="unknown"),
        _bounded(_broadcast(app.state.broadcast), budget, failed="down"),
    )
    if database != OK and migrations in ("timeout", "unknown"):
        # Without a database the migrations cannot be known; say so once, under database.
        migrations = "unknown"
    return {"database": database, "migrations": migrations, "broadcast": broadcast}


async def _bounded(check, budget: float, failed: str) -> str:
    try:
        async with asyncio.timeout(budget):
            return await check
    except TimeoutError:
        return "timeout"
    except Exception:  # noqa: BLE001 - a health check reports, it does not raise
        return failed


async def _database() -> str:
    await Tortoise.get_connection("default").execute_query("SELECT 1")
    return OK


def migration_files(migrations_dir: Path) -> set[str]:
    return {p.name for p in (migrations_dir / APP_LABEL).glob("*.py") if not p.name.startswith("__")}


async def _migrations(migrations_dir: Path) -> str:
    from aerich.models import Aerich

    applied = set(await Aerich.filter(app=APP_LABEL).values_list("version", flat=True))
    # Applied but unknown here is fine (a newer instance migrated first); a file not applied
    # means this code expects a schema the database does not have yet.
    return "pending" if migration_files(migrations_dir) - applied else OK


async def _broadcast(hub) -> str:
    return OK if await hub.connected() else "down"
