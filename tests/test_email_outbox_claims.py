"""Claims on the outbox: workers racing for the same rows never send one message twice, a
claim whose worker died is taken again after its lease, and a late worker cannot overwrite
the outcome of the claim that replaced its own."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from models import OutboxEmail, OutboxStatus
from resolvers.access import Access
from resolvers.context import Context
from resolvers.email import outbox
from resolvers.email.worker import OutboxWorker
from resolvers.unit_of_work import unit_of_work
from server.settings import replace
from tests.querycount import count_statements
from tests.smtp_support import SmtpServer

MESSAGES = 60


@pytest.fixture
def smtp_server():
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


async def _queue(settings, count: int) -> None:
    ctx = Context(settings=settings, access=Access(None), broadcast=None)
    async with unit_of_work(ctx) as work:
        for n in range(count):
            await work.email(f"r{n}@example.test", "password_changed",
                             {"name": f"R{n}", "login_link": "http://127.0.0.1:8000/login"})


@pytest.mark.both_databases
async def test_racing_workers_send_each_message_exactly_once(app, settings, smtp_server, backend):
    """Three workers (on PostgreSQL each on its own pooled connection, claiming with FOR
    UPDATE SKIP LOCKED) drain the same outbox at once."""
    settings = replace(settings, smtp_url=smtp_server.url())
    await _queue(settings, MESSAGES)
    workers = [OutboxWorker(settings) for _ in range(3)]
    handled = await asyncio.gather(*(w.drain() for w in workers))

    assert sum(handled) == MESSAGES, handled
    received = smtp_server.received()
    ids = Counter(m.message["Message-ID"] for m in received)
    assert len(received) == MESSAGES and set(ids.values()) == {1}
    rows = await OutboxEmail.all()
    assert {r.status for r in rows} == {OutboxStatus.SENT} and {r.attempts for r in rows} == {1}
    assert ids.keys() == {r.message_id for r in rows}


@pytest.mark.both_databases
async def test_claims_are_exclusive_and_a_lapsed_lease_is_taken_again(app, settings, backend):
    await _queue(settings, 5)
    lease = timedelta(minutes=5)
    with count_statements() as sql:
        async with unit_of_work(Context(settings=settings, access=Access(None), broadcast=None)):
            first = await outbox.claim(lease, batch=3)
    # Pick (locked rows skipped on PostgreSQL), take with a re-check, read back: 3 statements.
    assert sql.count == 3, sql.report()
    if backend == "postgres":
        assert "FOR UPDATE SKIP LOCKED" in sql.statements[0]
    async with unit_of_work(Context(settings=settings, access=Access(None), broadcast=None)):
        second = await outbox.claim(lease, batch=10)
    assert len(first) == 3 and len(second) == 2
    assert not {r.id for r in first} & {r.id for r in second}
    async with unit_of_work(Context(settings=settings, access=Access(None), broadcast=None)):
        assert await outbox.claim(lease) == []  # everything is claimed

    # The first worker died: its lease lapses and another worker takes its rows.
    await OutboxEmail.filter(id__in=[r.id for r in first]).update(lease_until=datetime.now(UTC) - timedelta(seconds=1))
    async with unit_of_work(Context(settings=settings, access=Access(None), broadcast=None)):
        third = await outbox.claim(lease)
    assert {r.id for r in third} == {r.id for r in first}
    assert {r.attempts for r in third} == {2}
    # The first worker comes back late: its outcome no longer counts.
    assert not await outbox.mark_sent(first[0])
    assert await outbox.mark_failed(first[1], "late", permanent=True, max_attempts=9, retry_base=1) is None
    assert (await OutboxEmail.get(id=first[1].id)).status is OutboxStatus.SENDING
    assert await outbox.mark_sent(third[0])
    assert (await OutboxEmail.get(id=third[0].id)).status is OutboxStatus.SENT


def test_backoff_is_exponential_capped_and_jittered():
    for attempts, step in [(1, 30), (2, 60), (3, 120), (8, 3600), (30, 3600)]:
        delays = [outbox.backoff(attempts, 30) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays), (attempts, min(delays), max(delays))
        assert len(set(delays)) > 100  # jittered, not one fixed delay


async def test_requeued_dead_messages_are_delivered(app, settings, smtp_server):
    settings = replace(settings, smtp_url=smtp_server.url())
    smtp_server.refuse.add("r0@example.test")
    await _queue(settings, 2)
    worker = OutboxWorker(settings)
    await worker.drain()
    assert (await OutboxEmail.get(to_address="r0@example.test")).status is OutboxStatus.DEAD
    smtp_server.refuse.clear()
    assert await outbox.requeue_dead() == 1
    await worker.drain()
    assert {r.status for r in await OutboxEmail.all()} == {OutboxStatus.SENT}
    assert sorted(m.rcpt_tos[0] for m in smtp_server.received()) == ["r0@example.test", "r1@example.test"]


def test_pcg_outbox_lists_dead_messages_and_retries_them(monkeypatch, tmp_path, capsys):
    """The operator's view: `pcg outbox` (counts, then the dead), `pcg outbox retry [ID...]`."""
    import os

    from server.cli import main

    for name in list(os.environ):
        if name.startswith("PCG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PCG_DATA_DIR", str(tmp_path / "data"))
    assert main(["migrate"]) == 0

    async def arrange() -> None:
        from tortoise import Tortoise

        from server.db import tortoise_config
        from server.settings import Settings

        settings = Settings.from_env()
        await Tortoise.init(config=tortoise_config(settings.database_url, settings))
        try:
            await _queue(settings, 2)
            await OutboxEmail.filter(to_address="r0@example.test").update(
                status=OutboxStatus.DEAD, attempts=12, last_error="refused: 550 5.1.1 No such mailbox\nmore")
        finally:
            await Tortoise.close_connections()

    asyncio.run(arrange())
    capsys.readouterr()
    assert main(["outbox"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "pending: 1  sending: 0  sent: 0  dead: 1"
    [line] = out[1:]
    assert "password_changed  r0@example.test  attempts=12  refused: 550 5.1.1 No such mailbox" in line
    dead_id = line.split()[0]
    assert main(["outbox", "retry", "x1"]) == 1
    assert main(["outbox", "retry", dead_id]) == 0
    assert "Requeued 1 dead email(s)." in capsys.readouterr().out
    assert main(["outbox", "list", "--status", "pending"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "pending: 2  sending: 0  sent: 0  dead: 0"
