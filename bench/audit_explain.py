"""EXPLAIN (ANALYZE, BUFFERS) of the live audit log's and retention's statements on PostgreSQL
with 1,000,000 audit entries, as Tortoise sends them.

    .venv/bin/python bench/audit_explain.py [--entries 1000000]

One organization (free plan) holds 40% of the entries, interleaved by id with 100 others (pro
and enterprise); the entries span 200 days. Printed: the stream's replay after a cursor deep
in the log (`seq > N ORDER BY seq LIMIT 500`), its oldest-kept probe, the current seq, and one
batch of a free organization's pruning 100,000 entries into its expired backlog (the SELECT of
the next 1,000 keys, then the DELETE of that key range, rolled back). A fresh database `pcg_bench_explain_<pid>` is
created through PCG_BENCH_POSTGRES_URL (else PCG_TEST_POSTGRES_URL, else
postgres://postgres@127.0.0.1:5432/postgres) and dropped after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tortoise import Tortoise
from tortoise.expressions import Q

from models import AuditEntry, Organization, orm
from resolvers.audit.retention import _after, _up_to
from resolvers.audit.stream import AUDIT_LOG
from resolvers.event.log import REFILL_BATCH
from server.db import migrate, tortoise_config
from server.settings import Settings

SECRET = "bench-secret-key-" + "x" * 40
PG_ADMIN_URL = os.environ.get(
    "PCG_BENCH_POSTGRES_URL",
    os.environ.get("PCG_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
)


async def _admin(*statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://", 1))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def seed(db, entries: int) -> None:
    await db.execute_script(
        "INSERT INTO \"organization\" (\"id\", \"slug\", \"name\", \"plan\", \"created_at\", \"updated_at\", \"audit_seq\") "
        "SELECT g, 'org-' || g, 'Org ' || g, CASE WHEN g = 1 THEN 'free' WHEN g % 2 = 0 THEN 'pro' "
        "ELSE 'enterprise' END, now(), now(), 0 FROM generate_series(1, 101) g;"
        f"INSERT INTO \"audit_entry\" (\"organization_id\", \"action\", \"resource_type\", \"resource_id\", "
        f"\"before\", \"after\", \"ip\", \"request_id\", \"user_agent\", \"created_at\") "
        f"SELECT CASE WHEN g % 5 < 2 THEN 1 ELSE 2 + (g % 100) END, 'task.update', 'Task', g::text, "
        f"'{{\"title\": \"a\"}}', '{{\"title\": \"b\"}}', '198.51.100.7', md5(g::text), 'Mozilla/5.0', "
        f"now() - (({entries} - g) * interval '1 second' * (200 * 86400 / {entries})) "
        f"FROM generate_series(1, {entries}) g;"
        "UPDATE \"audit_entry\" SET \"seq\" = \"ranked\".\"n\" FROM (SELECT \"id\", ROW_NUMBER() OVER "
        "(PARTITION BY \"organization_id\" ORDER BY \"id\") AS \"n\" FROM \"audit_entry\") AS \"ranked\" "
        "WHERE \"audit_entry\".\"id\" = \"ranked\".\"id\";"
        "UPDATE \"organization\" SET \"audit_seq\" = (SELECT COALESCE(MAX(\"seq\"), 0) FROM \"audit_entry\" "
        "WHERE \"organization_id\" = \"organization\".\"id\");"
    )
    # VACUUM runs outside a transaction block: one statement each.
    await db.execute_script('VACUUM ANALYZE "audit_entry"')
    await db.execute_script('VACUUM ANALYZE "organization"')


async def explain(conn, title: str, sql: str, params: list, rollback: bool = False) -> None:
    print(f"\n-- {title}\n{sql}  {params}")
    tr = conn.transaction()
    await tr.start()
    try:
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, *params)
    finally:
        await (tr.rollback() if rollback else tr.commit())
    print("\n".join(r[0] for r in rows))


async def main(args) -> None:
    name = f"pcg_bench_explain_{os.getpid()}"
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    await _admin(f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
    try:
        settings = Settings(database_url=url, env="test", secret_key=SECRET, db_statement_timeout=600)
        await migrate(settings)
        await Tortoise.init(config=tortoise_config(url, settings))
        try:
            db = orm.db_of(AuditEntry)
            started = time.monotonic()
            await seed(db, args.entries)
            count = (await db.execute_query_dict('SELECT COUNT(*) AS "n" FROM "audit_entry"'))[0]["n"]
            print(f"{count} entries seeded in {time.monotonic() - started:.0f} s; organization 1 (free) holds "
                  f"{await AuditEntry.filter(organization_id=1).count()}")

            import asyncpg

            conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
            current = await AUDIT_LOG.current_seq(1)
            deep = current - 1000
            _, sql, params = orm.sql_of(AuditEntry.filter(organization_id=1, seq__gt=deep).order_by("seq").limit(REFILL_BATCH))
            await explain(conn, f"replay after a cursor {current - deep} entries behind (AUDIT_LOG.after)", sql, params)
            _, sql, params = orm.sql_of(
                AuditEntry.filter(organization_id=1, seq__isnull=False).order_by("seq").limit(1).values_list("seq", flat=True))
            await explain(conn, "oldest kept (AUDIT_LOG.oldest_kept)", sql, params)
            _, sql, params = orm.sql_of(
                Organization.filter(id=1).limit(1).values_list("audit_seq", flat=True))
            await explain(conn, "current seq (AUDIT_LOG.current_seq)", sql, params)

            cutoff = datetime.now(UTC) - timedelta(days=90)
            owner = Q(organization_id=1)

            def batch_after(key):
                return (AuditEntry.filter(owner, _after(key), created_at__lt=cutoff)
                        .order_by("created_at", "id").limit(1000).values_list("created_at", "id"))

            # A batch deep in the backlog: after the key of the 100,000th expired entry.
            deep = (await AuditEntry.filter(owner, created_at__lt=cutoff).order_by("created_at", "id")
                    .offset(99_999).limit(1).values_list("created_at", "id"))[0]
            _, sql, params = orm.sql_of(batch_after(deep))
            await explain(conn, "prune: the next 1,000 expired keys of a free organization, 100,000 in", sql, params)
            upto = (await batch_after(deep))[-1]
            _, sql, params = orm.sql_of(
                AuditEntry.filter(owner, _after(deep), _up_to(upto), created_at__lt=cutoff).delete())
            await explain(conn, "prune: DELETE of that key range (rolled back)", sql, params, rollback=True)
            await conn.close()
        finally:
            await Tortoise.close_connections()
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    asyncio.run(main(parser.parse_args()))
