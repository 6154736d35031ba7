"""Tortoise configuration and Aerich migrations, shared by the app, the CLI and the tests."""

from __future__ import annotations

from pathlib import Path

from aerich import Command
from tortoise.context import TortoiseContext

from models import MODEL_MODULES
from server.settings import Settings

APP_LABEL = "models"


def tortoise_config(database_url: str) -> dict:
    return {
        "connections": {"default": _connection(database_url)},
        "apps": {
            APP_LABEL: {
                "models": [*MODEL_MODULES, "aerich.models"],
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def _connection(url: str) -> str | dict:
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
    return url


async def migrate(settings: Settings) -> list[str]:
    """Apply pending Aerich migrations; return the names of those applied.

    Runs in its own TortoiseContext because Aerich closes the context it used on exit.
    """
    with TortoiseContext():
        async with Command(
            tortoise_config=tortoise_config(settings.database_url),
            app=APP_LABEL,
            location=str(settings.migrations_dir),
        ) as cmd:
            await cmd.init()
            return await cmd.upgrade(run_in_transaction=True)
