"""Audit retention per plan (resolvers/audit/retention.py): only entries past their plan's
window go, enterprise keeps everything unless set, and no DELETE removes more than a batch."""

from __future__ import annotations

import asyncio
import math
import os
from datetime import UTC, datetime, timedelta

import pytest

from models import AuditEntry, Organization, OrgRole, Plan
from resolvers.audit import retention as audit_retention
from resolvers.audit.retention import NO_ORGANIZATION, prune
from server.cli import main
from server.settings import replace
from tests.querycount import count_statements

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


async def _entries(org: Organization | None, ages_in_days: list[float], action: str = "task.update") -> list[int]:
    ids = []
    for age in ages_in_days:
        entry = await AuditEntry.create(
            organization=org, action=action, resource_type="Task", resource_id="1",
            created_at=NOW - timedelta(days=age),
        )
        ids.append(entry.id)
    return ids


@pytest.fixture
async def orgs(factory):
    owner = await factory.user("Owner")
    return {plan: await factory.org(owner, f"org-{plan.value}", plan=plan) for plan in Plan}


def _kept(settings, **days):
    return replace(settings, **{f"audit_retention_days_{k}": v for k, v in days.items()})


@pytest.mark.both_databases
async def test_only_entries_past_their_plans_window_go(settings, orgs):
    ages = [1, 29.9, 30.1, 89, 91, 400, 4000]
    ids = {plan: await _entries(org, ages) for plan, org in orgs.items()}
    ids[NO_ORGANIZATION] = await _entries(None, ages, action="user.sign_up")
    pruned = await prune(_kept(settings, free=30, pro=90, enterprise=0), now=NOW)
    left = set(await AuditEntry.all().values_list("id", flat=True))
    expect_kept = {
        Plan.FREE: ids[Plan.FREE][:2],
        Plan.PRO: ids[Plan.PRO][:4],
        Plan.ENTERPRISE: ids[Plan.ENTERPRISE],  # forever
        NO_ORGANIZATION: ids[NO_ORGANIZATION][:2],  # the free plan's window
    }
    assert left == {i for kept in expect_kept.values() for i in kept}
    assert pruned.by_scope == {"free": 5, "pro": 3, NO_ORGANIZATION: 5}


@pytest.mark.both_databases
async def test_enterprise_is_pruned_only_when_set_and_nothing_when_all_are_forever(settings, orgs):
    old = await _entries(orgs[Plan.ENTERPRISE], [10, 1000])
    forever = _kept(settings, free=0, pro=0, enterprise=0)
    assert not audit_retention.enabled(forever)
    with count_statements() as log:
        assert (await prune(forever, now=NOW)).total == 0
    assert log.count == 0
    assert (await prune(_kept(settings, free=0, pro=0, enterprise=365), now=NOW)).by_scope == {"enterprise": 1}
    assert await AuditEntry.all().values_list("id", flat=True) == [old[0]]


@pytest.mark.both_databases
async def test_an_organization_is_kept_by_its_plan_at_pruning_time(settings, orgs):
    await _entries(orgs[Plan.FREE], [100])
    await Organization.filter(id=orgs[Plan.FREE].id).update(plan=Plan.ENTERPRISE)  # upgraded
    assert (await prune(_kept(settings, free=30, enterprise=0), now=NOW)).total == 0
    await Organization.filter(id=orgs[Plan.FREE].id).update(plan=Plan.FREE)  # downgraded again
    assert (await prune(_kept(settings, free=30, enterprise=0), now=NOW)).total == 1


@pytest.mark.both_databases
async def test_no_statement_deletes_more_than_a_batch(settings, orgs):
    # Expired free entries interleaved (by id) with kept enterprise ones, all of one instant
    # (ties broken by id).
    expired = []
    for _ in range(47):
        expired += await _entries(orgs[Plan.FREE], [200])
        await _entries(orgs[Plan.ENTERPRISE], [200])
    with count_statements() as log:
        pruned = await prune(_kept(settings, free=30, pro=30, enterprise=0), now=NOW, batch=10)
    assert pruned.batches == [10, 10, 10, 10, 7]
    # (The app's own background tasks may run statements meanwhile: only this table counts.)
    mine = [s for s in log.statements if '"audit_entry"' in s]
    deletes = [s for s in mine if s.lstrip().upper().startswith("DELETE")]
    selects = [s for s in mine if s.lstrip().upper().startswith("SELECT")]
    assert len(deletes) == math.ceil(47 / 10)
    # One SELECT of the next ids per batch, and for the pro scope (nothing expired) one.
    assert len(selects) == len(deletes) + 1 + 1  # + the no-organization scope's one
    # Every DELETE is bounded by the key range of its batch (never "delete everything older
    # than"): up to the batch's last (created_at, id), and after the previous batch's.
    for index, sql in enumerate(deletes):
        text = sql.replace('"', "").replace(" ", "")
        assert "created_at<=" in text and "id<=" in text, sql
        assert ("id>" in text) == (index > 0), sql
    assert all("LIMIT" in sql for sql in selects)
    assert not await AuditEntry.filter(id__in=expired).exists()
    assert await AuditEntry.filter(organization_id=orgs[Plan.ENTERPRISE].id).count() == 47


async def test_a_resumed_stream_past_pruned_entries_is_told_to_resync(settings, live, orgs, factory):
    import httpx

    from resolvers.audit.stream import encode_cursor
    from tests.conftest import gid
    from tests.wsclient import GraphQLWS

    org = orgs[Plan.FREE]
    owner = await factory.user("Watcher")
    await factory.org_member(org, owner, OrgRole.OWNER)
    project = await factory.project(org, owner, "P")
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=owner.token)
    try:
        async with httpx.AsyncClient() as http:
            for i in range(3):
                r = await http.post(f"http://{live}/graphql", headers={"authorization": f"Bearer {owner.token}"},
                                    json={"query": "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }",
                                          "variables": {"i": {"projectId": gid("Project", project.id), "title": f"t{i}"}}})
                assert not r.json().get("errors")
        await AuditEntry.filter(organization_id=org.id, seq__lte=2).update(created_at=datetime.now(UTC) - timedelta(days=100))
        assert (await prune(_kept(settings, free=90))).by_scope == {"free": 2}
        await ws.subscribe("subscription($o: ID!, $a: String) { auditEntries(organizationId: $o, after: $a) "
                           "{ __typename seq } }", {"o": gid("Organization", org.id), "a": encode_cursor(org.id, 1)})
        assert (await ws.next_data())["data"]["auditEntries"] == {"__typename": "AuditResyncRequired", "seq": 3}
    finally:
        await ws.close()


@pytest.fixture
def prune_often(monkeypatch):
    """Set up before the app (first in the test's arguments): its pruner starts at once and
    rounds every 20 ms (a minute after start, then hourly, otherwise)."""
    monkeypatch.setattr(audit_retention, "PRUNE_FIRST_AFTER_SECONDS", 0)
    monkeypatch.setattr(audit_retention, "PRUNE_EVERY_SECONDS", 0.02)


@pytest.mark.settings(audit_retention_days_pro=30)
async def test_every_instance_prunes_in_the_background(prune_often, settings, orgs):
    now = datetime.now(UTC)
    doomed = await _entries(orgs[Plan.PRO], [(NOW - now).days + 1000])
    kept = await _entries(orgs[Plan.PRO], [(NOW - now).days + 1])
    for _ in range(250):
        if not await AuditEntry.filter(id__in=doomed).exists():
            break
        await asyncio.sleep(0.02)
    assert not await AuditEntry.filter(id__in=doomed).exists()
    assert await AuditEntry.filter(id__in=kept).count() == 1


@pytest.mark.settings(audit_retention_days_free=0, audit_retention_days_pro=0)
async def test_no_pruner_runs_when_every_plan_keeps_forever(prune_often, settings, orgs):
    await _entries(orgs[Plan.PRO], [(NOW - datetime.now(UTC)).days + 1000])
    with count_statements() as log:
        await asyncio.sleep(0.1)
    assert [s for s in log.statements if '"audit_entry"' in s] == []
    assert await AuditEntry.all().count() == 1


def test_pcg_audit_prune(tmp_path, monkeypatch, capsys, settings):
    """The CLI against the test's database, with the retention from the environment."""
    for name in [n for n in os.environ if n.startswith("PCG_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PCG_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PCG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PCG_AUDIT_RETENTION_DAYS_FREE", "7")

    async def arrange():
        from tortoise import Tortoise

        from server.db import tortoise_config

        await Tortoise.init(config=tortoise_config(settings.database_url, settings))
        try:
            org = await Organization.create(slug="cli-free", name="Free", plan=Plan.FREE)
            await _entries(org, [1, 8, 9, 10], action="task.create")
            # Relative to now: the CLI prunes with the clock.
            await AuditEntry.filter(organization_id=org.id).update(created_at=datetime.now(UTC) - timedelta(days=30))
            first = await AuditEntry.filter(organization_id=org.id).order_by("id").first()
            await AuditEntry.filter(id=first.id).update(created_at=datetime.now(UTC))
        finally:
            await Tortoise.close_connections()

    asyncio.run(arrange())
    assert main(["audit", "prune", "--batch", "2"]) == 0
    captured = capsys.readouterr()
    assert "free: 3 pruned (older than 7 days)" in captured.out
    assert "enterprise: 0 pruned (kept forever)" in captured.out
    assert "pcg: pruned 3 audit entries in 2 batches" in captured.err
    with pytest.raises(SystemExit) as refused:
        main(["audit", "prune", "--batch", "x"])
    assert refused.value.code == 2


async def test_the_first_round_waits_after_the_instance_starts(settings, orgs):
    """A boot is not also a burst of pruning: nothing is read before PRUNE_FIRST_AFTER_SECONDS."""
    assert audit_retention.enabled(settings) and audit_retention.PRUNE_FIRST_AFTER_SECONDS >= 60
    await _entries(orgs[Plan.FREE], [(NOW - datetime.now(UTC)).days + 1000])
    with count_statements() as log:
        await asyncio.sleep(0.2)
    assert [s for s in log.statements if '"audit_entry"' in s] == []
    assert await AuditEntry.all().count() == 1
