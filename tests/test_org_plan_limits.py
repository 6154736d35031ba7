"""Plan limits (resolvers/org/plans.py): each limit refused at, not under, its value with
PLAN_LIMIT_REACHED; `organization.usage`; setOrganizationPlan and `pcg set-plan`; and two
writers racing for the last slot on both databases."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime

import httpx
import pytest
from asgi_lifespan import LifespanManager

from models import (
    AuditEntry,
    Invite,
    Organization,
    OrganizationMember,
    OrgRole,
    Plan,
    Project,
    Task,
    TaskPriority,
    TaskStatus,
)
from resolvers.org.plans import LIMITS
from server.cli import main
from server.settings import Settings
from tests.conftest import gid
from tests.membership_helpers import make_invite
from tests.querycount import count_statements

INVITE = """mutation($i: InviteMemberInput!) { inviteMember(input: $i) { invite { id email } } }"""
ACCEPT = """mutation($t: String!) { acceptInvite(input: {token: $t}) { member { id role } } }"""
CREATE_PROJECT = """mutation($o: ID!, $n: String!) {
  createProject(input: {organizationId: $o, name: $n}) { project { id } } }"""
ARCHIVE = """mutation($p: ID!) { archiveProject(input: {projectId: $p}) { project { id archivedAt } } }"""
CREATE_TASK = """mutation($p: ID!) { createTask(input: {projectId: $p, title: "t"}) { task { id } } }"""
CREATE_ORG = """mutation($s: String!) {
  createOrganization(input: {slug: $s, name: "N"}) { organization { id plan } } }"""
SET_PLAN = """mutation($o: ID!, $p: Plan!) {
  setOrganizationPlan(input: {organizationId: $o, plan: $p}) { organization { id plan } } }"""
USAGE = """query($s: String!) { organization(slug: $s) { plan usage {
  plan members pendingInvites projects limits { members projects tasksPerProject } } } }"""
PAST = datetime(2026, 1, 1, tzinfo=UTC)
PLAN_ONLY = """query($s: String!) { organization(slug: $s) { plan } }"""


def _invite(org, email: str) -> dict:
    return {"i": {"organizationId": gid("Organization", org.id), "email": email, "role": "MEMBER"}}


def _limit_error(body: dict) -> dict:
    assert body.get("errors"), body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "PLAN_LIMIT_REACHED", error
    return error["extensions"]


async def _free_org_with_members(factory, n_members: int):
    """A free organization whose owner is joined by `n_members` members."""
    owner = await factory.user("Owner")
    org = await factory.org(owner, plan=Plan.FREE)
    for _ in range(n_members):
        await factory.org_member(org, await factory.user(), OrgRole.MEMBER)
    return org, owner


# -- members --------------------------------------------------------------------------------


async def test_member_limit_counts_pending_invites_and_refuses_at_the_limit(gql, factory):
    org, owner = await _free_org_with_members(factory, 2)  # 3 members
    await make_invite(org, owner, "pending@example.test")  # 4 seats
    await gql.ok(INVITE, _invite(org, "fifth@example.test"), owner.token)  # 5 = the limit

    body = await gql.raw(INVITE, _invite(org, "sixth@example.test"), owner.token)
    ext = _limit_error(body)
    assert {k: ext[k] for k in ("resource", "limit", "current", "plan")} == {
        "resource": "members", "limit": 5, "current": 5, "plan": "free",
    }
    assert not await Invite.exists(email="sixth@example.test")
    assert await AuditEntry.filter(action="invite.create").count() == 1

    # Re-inviting a pending address replaces its invite: no new seat, so it is allowed.
    await gql.ok(INVITE, _invite(org, "pending@example.test"), owner.token)
    assert await Invite.filter(organization_id=org.id, revoked_at__isnull=True).count() == 2


async def test_accepting_an_invite_is_refused_when_a_downgrade_left_no_seat(gql, factory):
    owner = await factory.user("Owner")
    org = await factory.org(owner, plan=Plan.PRO)
    for _ in range(4):
        await factory.org_member(org, await factory.user(), OrgRole.MEMBER)  # 5 members
    guest = await factory.user("Guest")
    invite, token = await make_invite(org, owner, guest.user.email.lower())
    await Organization.filter(id=org.id).update(plan=Plan.FREE)  # 6 seats > 5

    ext = _limit_error(await gql.raw(ACCEPT, {"t": token}, guest.token))
    assert (ext["resource"], ext["limit"], ext["current"], ext["plan"]) == ("members", 5, 5, "free")
    assert not await OrganizationMember.exists(organization_id=org.id, user_id=guest.user.id)
    assert (await Invite.get(id=invite.id)).accepted_at is None

    # With room again, the invite's own seat is the one it takes.
    await Organization.filter(id=org.id).update(plan=Plan.PRO)
    data = await gql.ok(ACCEPT, {"t": token}, guest.token)
    assert data["acceptInvite"]["member"]["role"] == "MEMBER"


# -- projects -------------------------------------------------------------------------------


async def test_project_limit_excludes_archived_projects(gql, factory):
    owner = await factory.user("Owner")
    org = await factory.org(owner, plan=Plan.FREE)
    for n in range(9):
        await factory.project(org, owner, f"P{n}")
    o = gid("Organization", org.id)
    tenth = (await gql.ok(CREATE_PROJECT, {"o": o, "n": "P9"}, owner.token))["createProject"]

    ext = _limit_error(await gql.raw(CREATE_PROJECT, {"o": o, "n": "P10"}, owner.token))
    assert (ext["resource"], ext["limit"], ext["current"], ext["plan"]) == ("projects", 10, 10, "free")
    assert await Project.filter(organization_id=org.id).count() == 10

    await gql.ok(ARCHIVE, {"p": tenth["project"]["id"]}, owner.token)
    await gql.ok(CREATE_PROJECT, {"o": o, "n": "P10"}, owner.token)
    assert await Project.filter(organization_id=org.id, archived_at__isnull=True).count() == 10


async def test_pro_has_no_project_limit(gql, factory):
    owner = await factory.user("Owner")
    org = await factory.org(owner, plan=Plan.PRO)
    for n in range(10):
        await factory.project(org, owner, f"P{n}")
    await gql.ok(CREATE_PROJECT, {"o": gid("Organization", org.id), "n": "P10"}, owner.token)
    usage = (await gql.ok(USAGE, {"s": org.slug}, owner.token))["organization"]["usage"]
    assert (usage["projects"], usage["limits"]) == (
        11, {"members": 100, "projects": None, "tasksPerProject": 100_000},
    )


# -- tasks per project ----------------------------------------------------------------------


async def test_tasks_per_project_limit_counts_archived_tasks(gql, factory):
    owner = await factory.user("Owner")
    org = await factory.org(owner, plan=Plan.FREE)
    project = await factory.project(org, owner)
    limit = LIMITS[Plan.FREE].tasks_per_project
    await Task.bulk_create([
        Task(project_id=project.id, title=f"t{n}", status=TaskStatus.TODO,
             priority=TaskPriority.MEDIUM, priority_rank=2, position=f"a{n:05d}",
             created_by_id=owner.user.id, archived_at=None if n % 2 else PAST)
        for n in range(limit - 1)
    ])
    p = gid("Project", project.id)
    await gql.ok(CREATE_TASK, {"p": p}, owner.token)  # the 1,000th

    ext = _limit_error(await gql.raw(CREATE_TASK, {"p": p}, owner.token))
    assert (ext["resource"], ext["limit"], ext["current"], ext["plan"]) == (
        "tasksPerProject", limit, limit, "free",
    )
    assert await Task.filter(project_id=project.id).count() == limit
    assert await AuditEntry.filter(action="task.create").count() == 1


# -- organizations per user -----------------------------------------------------------------


async def test_a_user_owns_one_free_organization(gql, factory):
    ada = await factory.user("Ada")
    first = (await gql.ok(CREATE_ORG, {"s": "ada-one"}, ada.token))["createOrganization"]
    assert first["organization"]["plan"] == "FREE"

    ext = _limit_error(await gql.raw(CREATE_ORG, {"s": "ada-two"}, ada.token))
    assert (ext["resource"], ext["limit"], ext["current"], ext["plan"]) == ("organizations", 1, 1, "free")
    assert not await Organization.exists(slug="ada-two")

    # Once the first is on a paid plan, a new free one is allowed.
    await gql.ok(SET_PLAN, {"o": first["organization"]["id"], "p": "PRO"}, ada.token)
    await gql.ok(CREATE_ORG, {"s": "ada-two"}, ada.token)


# -- the race -------------------------------------------------------------------------------


@pytest.mark.both_databases
async def test_two_invites_racing_for_the_last_seat_one_wins(gql, factory, backend):
    org, owner = await _free_org_with_members(factory, 2)
    admin = await factory.user("Admin")
    await factory.org_member(org, admin, OrgRole.ADMIN)  # 4 of 5 seats: one for two writers

    for round_ in range(3):
        results = await asyncio.gather(
            gql.raw(INVITE, _invite(org, f"left{round_}@example.test"), owner.token),
            gql.raw(INVITE, _invite(org, f"right{round_}@example.test"), admin.token),
        )
        won = [r for r in results if not r.get("errors")]
        lost = [r for r in results if r.get("errors")]
        assert len(won) == 1 and len(lost) == 1, results
        assert _limit_error(lost[0])["current"] == 5
        seats = await OrganizationMember.filter(organization_id=org.id).count() + await Invite.filter(
            organization_id=org.id, accepted_at__isnull=True, revoked_at__isnull=True
        ).count()
        assert seats == 5
        # Free the seat again for the next round.
        await Invite.filter(organization_id=org.id, revoked_at__isnull=True).update(
            revoked_at=PAST
        )


@pytest.mark.both_databases
async def test_two_projects_racing_for_the_last_slot_one_wins(gql, factory, backend):
    owner = await factory.user("Owner")
    org = await factory.org(owner, plan=Plan.FREE)
    for n in range(9):
        await factory.project(org, owner, f"P{n}")
    o = gid("Organization", org.id)
    results = await asyncio.gather(
        *(gql.raw(CREATE_PROJECT, {"o": o, "n": f"race{n}"}, owner.token) for n in range(3))
    )
    won = [r for r in results if not r.get("errors")]
    lost = [r for r in results if r.get("errors")]
    assert len(won) == 1 and len(lost) == 2, results
    for body in lost:
        assert _limit_error(body)["current"] == 10
    assert await Project.filter(organization_id=org.id).count() == 10


@pytest.mark.both_databases
async def test_two_organizations_created_at_once_by_one_user_one_wins(gql, factory, backend):
    ada = await factory.user("Ada")
    results = await asyncio.gather(
        *(gql.raw(CREATE_ORG, {"s": f"ada-{n}"}, ada.token) for n in range(3))
    )
    won = [r for r in results if not r.get("errors")]
    lost = [r for r in results if r.get("errors")]
    assert len(won) == 1 and len(lost) == 2, results
    for body in lost:
        assert _limit_error(body)["resource"] == "organizations"
    assert await OrganizationMember.filter(user_id=ada.user.id, role=OrgRole.OWNER).count() == 1


# -- usage ----------------------------------------------------------------------------------


async def test_usage_reports_counts_and_limits_in_one_statement(gql, factory):
    org, owner = await _free_org_with_members(factory, 2)
    await make_invite(org, owner, "pending@example.test")
    await make_invite(org, owner, "revoked@example.test", revoked_at=PAST)
    archived = await factory.project(org, owner, "Old")
    await Project.filter(id=archived.id).update(archived_at=PAST)
    await factory.project(org, owner, "Live")
    member = await factory.user("Member")
    await factory.org_member(org, member, OrgRole.MEMBER)

    data = await gql.ok(USAGE, {"s": org.slug}, member.token)
    assert data["organization"]["usage"] == {
        "plan": "FREE", "members": 5, "pendingInvites": 1, "projects": 1,
        "limits": {"members": 5, "projects": 10, "tasksPerProject": 1000},
    }
    await Organization.filter(id=org.id).update(plan=Plan.ENTERPRISE)
    with count_statements() as base:
        await gql.ok(PLAN_ONLY, {"s": org.slug}, member.token)
    with count_statements() as log:
        data = await gql.ok(USAGE, {"s": org.slug}, member.token)
    assert log.count == base.count + 1, log.report()
    assert data["organization"]["usage"]["limits"] == {
        "members": None, "projects": None, "tasksPerProject": None,
    }

    outsider = await factory.user("Outsider")
    assert (await gql.ok(USAGE, {"s": org.slug}, outsider.token))["organization"] is None


# -- changing the plan ----------------------------------------------------------------------


async def test_only_owners_set_the_plan_and_it_is_audited(gql, factory, acme):
    org, owner, admin, member = acme
    o = gid("Organization", org.id)
    for actor in (admin, member):
        assert await gql.code(SET_PLAN, {"o": o, "p": "FREE"}, actor.token) == "FORBIDDEN"
    stranger = await factory.user("Stranger")
    await factory.org(stranger)
    assert await gql.code(SET_PLAN, {"o": o, "p": "FREE"}, stranger.token) == "NOT_FOUND"
    assert (await Organization.get(id=org.id)).plan is Plan.ENTERPRISE
    assert not await AuditEntry.exists(action="organization.set_plan")

    data = await gql.ok(SET_PLAN, {"o": o, "p": "FREE"}, owner.token)
    assert data["setOrganizationPlan"]["organization"]["plan"] == "FREE"
    [entry] = await AuditEntry.filter(action="organization.set_plan")
    assert entry.actor_id == owner.user.id and entry.organization_id == org.id
    assert (entry.before["plan"], entry.after["plan"]) == ("enterprise", "free")

    # An unchanged plan writes nothing.
    await gql.ok(SET_PLAN, {"o": o, "p": "FREE"}, owner.token)
    assert await AuditEntry.filter(action="organization.set_plan").count() == 1


async def test_downgrade_keeps_data_and_refuses_writes_beyond(gql, factory):
    owner = await factory.user("Owner")
    org = await factory.org(owner, plan=Plan.PRO)
    for n in range(12):
        await factory.project(org, owner, f"P{n}")
    o = gid("Organization", org.id)
    await gql.ok(SET_PLAN, {"o": o, "p": "FREE"}, owner.token)
    assert await Project.filter(organization_id=org.id).count() == 12
    ext = _limit_error(await gql.raw(CREATE_PROJECT, {"o": o, "n": "more"}, owner.token))
    assert (ext["limit"], ext["current"]) == (10, 12)


@pytest.fixture
def cli_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("PCG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PCG_DATA_DIR", str(tmp_path / "data"))


def test_cli_set_plan_changes_the_plan_and_audits_it(cli_env, capsys):
    assert main(["seed", "--demo"]) == 0
    capsys.readouterr()
    assert main(["set-plan", "--org", "demo", "--plan", "enterprise"]) == 0
    assert "plan pro -> enterprise" in capsys.readouterr().out
    assert main(["set-plan", "--org", "demo", "--plan", "enterprise"]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert main(["set-plan", "--org", "nope", "--plan", "pro"]) == 1
    assert "no organization with slug 'nope'" in capsys.readouterr().err
    asyncio.run(_check_cli_plan())


async def _check_cli_plan() -> None:
    from server.app import create_app

    app = create_app(Settings.from_env())
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver"):
            org = await Organization.get(slug="demo")
            assert org.plan is Plan.ENTERPRISE
            [entry] = await AuditEntry.filter(action="organization.set_plan")
            assert entry.actor_id is None and entry.request_id.startswith("cli-")
            assert (entry.before["plan"], entry.after["plan"]) == ("pro", "enterprise")
