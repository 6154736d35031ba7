"""Pooled PostgreSQL connections are handed on without asyncpg's reset statement
(server/db_resilience.py `_keep_session`): one round trip per statement instead of two. That
is sound only while nothing leaves session state on a pooled connection, which this module
holds the code to: no SQL string of the application sets a session setting, takes a
session-level advisory lock, declares a cursor that outlives its transaction, listens, or
makes a temporary table. (A transaction left open is still rolled back by asyncpg.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import asyncpg
import pytest
from tortoise import Tortoise
from tortoise.transactions import in_transaction

from models import Organization

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("models", "resolvers", "schema", "server")

# SQL, not prose: each alternative needs the statement's own syntax. SET LOCAL and
# pg_advisory_xact_lock end with their transaction and are fine.
_SESSION_STATE = re.compile(
    r"^\s*SET\s+(SESSION\s+)?(?!LOCAL\b)[\w.\"]+\s*(=|\bTO\b)"
    r"|^\s*RESET\s+(ALL|ROLE|[a-z.]*_[\w.]+|\"[^\"]+\")\s*;?\s*$"
    r"|^\s*(UN)?LISTEN\s+[\w\"*]+\s*;?\s*$"
    r"|\bDECLARE\s+[\w\"]+\s+.*\bCURSOR\b.*\bWITH\s+HOLD\b"
    r"|\bCREATE\s+(GLOBAL\s+|LOCAL\s+)?TEMP(ORARY)?\s+TABLE\b"
    r"|\bPG_(TRY_)?ADVISORY_LOCK(_SHARED)?\s*\("
    r"|\bSET_CONFIG\s*\("
    r"|^\s*PREPARE\s+[\w\"]+\s*(\(|\bAS\b)"
    r"|^\s*DISCARD\s+(ALL|PLANS|SEQUENCES|TEMP)\b",
    re.IGNORECASE | re.DOTALL,
)


def session_state_statements(source: str) -> list[str]:
    return [
        node.value for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and _SESSION_STATE.search(node.value)
    ]


def test_no_sql_of_the_application_leaves_session_state():
    found = {
        str(path.relative_to(ROOT)): hits
        for folder in CHECKED for path in sorted((ROOT / folder).rglob("*.py"))
        if (hits := session_state_statements(path.read_text()))
    }
    assert found == {}, found


def test_the_check_sees_what_it_looks_for():
    planted = '''
a = "SET search_path TO other"
b = "select pg_advisory_lock(42)"
c = "DECLARE c CURSOR WITH HOLD FOR SELECT 1"
d = "CREATE TEMP TABLE t (id int)"
e = "LISTEN board"
f = 'UPDATE "task" SET "title" = $1 WHERE "id" = $2'
g = "SELECT pg_advisory_xact_lock(42)"
h = "SET SESSION statement_timeout = 0"
i = "Set `key` to `value`, replacing what the cache held"
j = "SET LOCAL lock_timeout = '1s'"
k = "SELECT set_config('app.user', '7', false)"
l = "Reset your password"
m = "RESET search_path;"
'''
    assert session_state_statements(planted) == [
        "SET search_path TO other", "select pg_advisory_lock(42)",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1", "CREATE TEMP TABLE t (id int)", "LISTEN board",
        "SET SESSION statement_timeout = 0", "SELECT set_config('app.user', '7', false)", "RESET search_path;",
    ]


@pytest.mark.postgres_only
async def test_a_released_connection_is_not_sent_the_reset_statement(app, settings):
    """What the server last ran on each pooled connection is the application's own statement,
    not asyncpg's reset; the connection still comes back clean after a failed transaction."""
    await Organization.filter(id=-1).first()
    with pytest.raises(RuntimeError):
        async with in_transaction():
            await Organization.create(slug="rolled-back", name="Rolled back")
            raise RuntimeError("abort the transaction")
    assert not await Organization.filter(slug="rolled-back").exists()
    await Organization.filter(id=-2).exists()

    database = Tortoise.get_connection("default").database  # type: ignore[attr-defined]
    admin = await asyncpg.connect(settings.database_url.replace("postgres://", "postgresql://", 1))
    try:
        rows = await admin.fetch(
            "SELECT query, state, xact_start FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            database,
        )
    finally:
        await admin.close()
    assert rows, "the pool's connections are open"
    assert not [r for r in rows if "pg_advisory_unlock_all" in r["query"]], rows
    assert all(r["state"] == "idle" and r["xact_start"] is None for r in rows), rows
    assert any('"organization"' in r["query"] for r in rows), rows
