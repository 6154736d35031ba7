"""Tortoise configuration and Aerich migrations, shared by the app, the CLI and the tests."""

from __future__ import annotations

from pathlib import Path

from aerich import Command
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.context import TortoiseContext

from models import MODEL_MODULES
from server.settings import Settings

APP_LABEL = "models"


def tortoise_config(database_url: str, settings: Settings | None = None) -> dict:
    """`settings` bounds PostgreSQL's statements, connects and pool (defaults otherwise)."""
    return {
        "connections": {"default": _connection(database_url, settings or Settings())},
        "apps": {
            APP_LABEL: {
                "models": [*MODEL_MODULES, "aerich.models"],
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def _connection(url: str, settings: Settings) -> str | dict:
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # WAL lets readers proceed while a write commits; NORMAL sync is safe under WAL.
        return {
            "engine": "tortoise.backends.sqlite",
            "credentials": {
                "file_path": path,
                "journal_mode": "WAL",
                "journal_size_limit": 16384,
                "foreign_keys": "ON",
                "synchronous": "NORMAL",
                "busy_timeout": 5000,
            },
        }
    if url.startswith(("postgres://", "postgresql://")):
        return _postgres(url, settings)
    return url


def _postgres(url: str, settings: Settings) -> dict:
    """A dict config, so the options reach asyncpg typed (URL parameters arrive as strings).

    Every statement is bounded twice: server-side `statement_timeout` cancels it in the
    database, asyncpg's `command_timeout` gives up on a server that no longer answers."""
    config = expand_db_url(url.replace("postgresql://", "postgres://", 1))
    credentials = config["credentials"]
    budget = settings.db_statement_timeout  # 0: unbounded, for migrations only
    server_settings = {
        **credentials.pop("server_settings", {}),
        "statement_timeout": str(budget * 1000),
    }
    credentials.update(
        minsize=settings.db_pool_min,
        maxsize=settings.db_pool_max,
        # A little over the server-side bound, so the database's own cancellation (a clean
        # error on a healthy connection) wins whenever the database can still answer.
        command_timeout=budget + 1 if budget else None,
        timeout=settings.db_connect_timeout,
        acquire_timeout=settings.db_pool_timeout,
        server_settings=server_settings,
    )
    config["engine"] = "server.db_resilience"
    return config


async def migrate(settings: Settings) -> list[str]:
    """Apply pending Aerich migrations; return the names of those applied.

    Runs in its own TortoiseContext because Aerich closes the context it used on exit.
    A migration may rewrite a large table: its statements have no time budget.
    """
    with TortoiseContext():
        async with Command(
            # 0 is below the setting's minimum (an operator cannot set it): copied unvalidated.
            tortoise_config=tortoise_config(
                settings.database_url, settings.model_copy(update={"db_statement_timeout": 0})
            ),
            app=APP_LABEL,
            location=str(settings.migrations_dir),
        ) as cmd:
            await cmd.init()
            return await cmd.upgrade(run_in_transaction=True)
