"""Migration 10 (audit_live) on a database that already holds an audit log: the existing
entries of each organization are numbered 1..n in id order, its counter set to n, entries of
no organization stay unnumbered, and the next write continues the sequence. Both dialects."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest
from tortoise import Tortoise

from server.db import migrate, tortoise_config
from server.settings import PROJECT_ROOT, Settings
from tests.conftest import PG_ADMIN_URL, SECRET, _forget_compiled_queries, _pg_admin, _pg_url

MIGRATIONS = PROJECT_ROOT / "migrations"
TARGET = "10_"


@pytest.fixture
def empty_database(request, tmp_path):
    backend = request.param
    _forget_compiled_queries()
    if backend == "postgres":
        name = f"pcg_mig_{os.getpid()}"
        try:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'))
        except Exception as exc:  # noqa: BLE001
            pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
        yield _pg_url(name)
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    else:
        yield f"sqlite://{tmp_path / 'old.db'}"


def _history_before(target: str, into) -> None:
    """The migrations directory as it was before `target` (aerich reads every file in it)."""
    shutil.copytree(MIGRATIONS, into, ignore=shutil.ignore_patterns("__pycache__"))
    for path in (into / "models").glob("*.py"):
        if int(path.name.split("_")[0]) >= int(target.rstrip("_")):
            path.unlink()


async def _sql(url: str, *statements: str) -> list[list[dict]]:
    settings = Settings(database_url=url, env="test", secret_key=SECRET)
    await Tortoise.init(config=tortoise_config(url, settings))
    try:
        conn = Tortoise.get_connection("default")
        return [await conn.execute_query_dict(statement) for statement in statements]
    finally:
        await Tortoise.close_connections()


@pytest.mark.parametrize("empty_database", ["sqlite", "postgres"], indirect=True)
def test_existing_entries_are_numbered_per_organization(empty_database, tmp_path):
    url = empty_database
    old = tmp_path / "old-migrations"
    _history_before(TARGET, old)
    applied = asyncio.run(migrate(Settings(database_url=url, env="test", secret_key=SECRET, migrations_dir=old)))
    assert applied and not any(name.startswith(TARGET) for name in applied)

    now = "'2026-11-30 10:00:00+00:00'"
    inserts = [
        f"INSERT INTO \"organization\" (\"id\", \"slug\", \"name\", \"plan\", \"created_at\", \"updated_at\") "
        f"VALUES ({i}, 'o{i}', 'O{i}', 'free', {now}, {now})" for i in (1, 2, 3)
    ]
    # Interleaved ids across organizations 1 and 2, two entries of no organization, none for 3.
    owners = [1, 2, 1, None, 2, 1, None, 1]
    for n, org in enumerate(owners, start=1):
        inserts.append(
            f"INSERT INTO \"audit_entry\" (\"id\", \"organization_id\", \"action\", \"resource_type\", "
            f"\"resource_id\", \"created_at\") VALUES ({n * 10}, {'NULL' if org is None else org}, "
            f"'task.update', 'Task', '{n}', {now})"
        )
    asyncio.run(_sql(url, *inserts))

    applied = asyncio.run(migrate(Settings(database_url=url, env="test", secret_key=SECRET)))
    assert [name for name in applied if name.startswith(TARGET)], applied

    entries, orgs = asyncio.run(_sql(
        url,
        'SELECT "id", "organization_id", "seq", "user_agent" FROM "audit_entry" ORDER BY "id"',
        'SELECT "id", "audit_seq" FROM "organization" ORDER BY "id"',
    ))
    assert [(e["organization_id"], e["seq"]) for e in entries] == [
        (1, 1), (2, 1), (1, 2), (None, None), (2, 2), (1, 3), (None, None), (1, 4),
    ]
    assert {e["user_agent"] for e in entries} == {None}
    assert [(o["id"], o["audit_seq"]) for o in orgs] == [(1, 4), (2, 2), (3, 0)]
    # The unique index holds: a second entry with seq 4 in organization 1 is refused.
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        asyncio.run(_sql(url, 'INSERT INTO "audit_entry" ("organization_id", "action", "resource_type", '
                              f'"resource_id", "created_at", "seq") VALUES (1, \'x\', \'X\', \'1\', {now}, 4)'))
