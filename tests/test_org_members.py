"""Organization memberships: updateMemberRole and removeMember."""

import asyncio

import pytest

from models import (
    ApiKey,
    AuditEntry,
    OrganizationMember,
    OrgRole,
    ProjectMember,
    ProjectRole,
)
from tests.conftest import gid
from tests.membership_helpers import (
    assert_audit,
    call,
    db_state,
    events,
    fails,
    make_key,
    membership,
    only_audit,
    project_membership,
)

UPDATE_ROLE = """
mutation($i: UpdateMemberRoleInput!) {
  updateMemberRole(input: $i) { member { id role user { id } organization { id } } }
}"""
REMOVE = """
mutation($i: RemoveMemberInput!) { removeMember(input: $i) { removedMemberId } }"""
MY_ORGS = "{ viewer { organizations { role organization { slug } } } }"


async def _role_vars(org, actor, role):
    return {"i": {"memberId": gid("OrganizationMember", (await membership(org, actor)).id),
                  "role": role}}


async def _member_vars(org, actor):
    return {"i": {"memberId": gid("OrganizationMember", (await membership(org, actor)).id)}}




# -- updateMemberRole ---------------------------------------------------------------------------


async def test_admin_promotes_a_member_to_admin(gql, acme):
    org, _, admin, member = acme
    variables = await _role_vars(org, member, "ADMIN")
    data = await call(gql, UPDATE_ROLE, variables, admin.token, "req-role-1")
    assert data["updateMemberRole"]["member"] == {
        "id": variables["i"]["memberId"], "role": "ADMIN",
        "user": {"id": member.gid}, "organization": {"id": gid("Organization", org.id)},
    }
    row = await membership(org, member)
    assert row.role is OrgRole.ADMIN
    entry = await only_audit("member.update_role")
    assert_audit(entry, actor=admin, org_id=org.id, request_id="req-role-1")
    assert entry.resource_type == "OrganizationMember" and entry.resource_id == str(row.id)
    assert entry.before["role"] == "member" and entry.after["role"] == "admin"


async def test_setting_the_same_role_writes_nothing(gql, acme):
    org, owner, _, member = acme
    before = await db_state()
    await gql.ok(UPDATE_ROLE, await _role_vars(org, member, "MEMBER"), owner.token)
    assert await db_state() == before


async def test_only_owners_make_or_change_owners(gql, acme, factory):
    org, owner, admin, member = acme
    await fails(gql, "FORBIDDEN", UPDATE_ROLE, await _role_vars(org, member, "OWNER"), admin.token)
    await fails(gql, "FORBIDDEN", UPDATE_ROLE, await _role_vars(org, admin, "OWNER"), admin.token)
    await fails(gql, "FORBIDDEN", UPDATE_ROLE, await _role_vars(org, owner, "ADMIN"), admin.token)
    await fails(gql, "FORBIDDEN", UPDATE_ROLE, await _role_vars(org, admin, "MEMBER"), member.token)

    await gql.ok(UPDATE_ROLE, await _role_vars(org, member, "OWNER"), owner.token)
    assert (await membership(org, member)).role is OrgRole.OWNER


async def test_the_last_owner_cannot_be_demoted(gql, acme):
    org, owner, admin, _ = acme
    error = await fails(gql, "CONFLICT", UPDATE_ROLE, await _role_vars(org, owner, "ADMIN"),
                        owner.token)
    assert error["extensions"]["reason"] == "LAST_OWNER"

    # With a second owner, the first may step down; the viewer's role follows at once.
    await gql.ok(UPDATE_ROLE, await _role_vars(org, admin, "OWNER"), owner.token)
    data = await gql.ok(UPDATE_ROLE, await _role_vars(org, owner, "ADMIN"), owner.token)
    assert data["updateMemberRole"]["member"]["role"] == "ADMIN"
    assert (await membership(org, owner)).role is OrgRole.ADMIN
    viewer_role = 'query { organization(slug: "acme") { viewerRole } }'
    assert (await gql.ok(viewer_role, token=owner.token))["organization"]["viewerRole"] == "ADMIN"


@pytest.mark.both_databases
async def test_two_owners_demoting_each_other_at_once_leave_one_owner(gql, acme, factory):
    org, owner, _, _ = acme
    co_owner = await factory.user("CoOwner")
    await factory.org_member(org, co_owner, OrgRole.OWNER)
    results = await asyncio.gather(
        gql.raw(UPDATE_ROLE, await _role_vars(org, co_owner, "MEMBER"), owner.token),
        gql.raw(UPDATE_ROLE, await _role_vars(org, owner, "MEMBER"), co_owner.token),
    )
    codes = sorted((r.get("errors") or [{"extensions": {"code": "OK"}}])[0]["extensions"]["code"]
                   for r in results)
    # The loser either saw the other demotion already (no longer an owner: FORBIDDEN) or
    # raced it to the re-check under the lock (CONFLICT); never do both succeed.
    assert codes in (["CONFLICT", "OK"], ["FORBIDDEN", "OK"])
    assert await OrganizationMember.filter(organization_id=org.id, role=OrgRole.OWNER).count() == 1
    assert await AuditEntry.filter(action="member.update_role").count() == 1


# -- removeMember -------------------------------------------------------------------------------


async def test_removing_a_member_drops_their_project_memberships_and_keys(gql, acme, factory):
    org, owner, admin, member = acme
    web = await factory.project(org, owner, "Web")
    api = await factory.project(org, owner, "API")
    quiet = await factory.project(org, owner, "Quiet")
    await factory.project_member(web, member, ProjectRole.EDITOR)
    await factory.project_member(api, member, ProjectRole.VIEWER)
    # The same person in another organization keeps everything there.
    other_owner = await factory.user("OtherOwner")
    other = await factory.org(other_owner, "other")
    await factory.org_member(other, member, OrgRole.MEMBER)
    elsewhere = await factory.project(other, other_owner)
    await factory.project_member(elsewhere, member, ProjectRole.EDITOR)
    acme_key, _ = await make_key(org, member, OrgRole.MEMBER)
    other_key, _ = await make_key(other, member, OrgRole.MEMBER)
    web_pm = await project_membership(web, member)
    api_pm = await project_membership(api, member)
    org_member = await membership(org, member)

    data = await call(gql, REMOVE, await _member_vars(org, member), admin.token, "req-remove-1")
    assert data["removeMember"]["removedMemberId"] == gid("OrganizationMember", org_member.id)

    assert not await OrganizationMember.exists(id=org_member.id)
    assert not await ProjectMember.exists(user_id=member.user.id, project__organization_id=org.id)
    assert await ProjectMember.exists(user_id=member.user.id, project_id=elsewhere.id)
    assert await OrganizationMember.exists(user_id=member.user.id, organization_id=other.id)
    assert (await ApiKey.get(id=acme_key.id)).revoked_at is not None
    assert (await ApiKey.get(id=other_key.id)).revoked_at is None

    for project, pm, role in ((web, web_pm, "editor"), (api, api_pm, "viewer")):
        [event] = await events(project.id)
        assert event.type == "MemberRemoved" and event.seq == 1
        assert event.payload == {"memberId": pm.id, "userId": member.user.id, "role": role}
        assert event.actor_id == admin.user.id
    assert await events(quiet.id) == []

    entry = await only_audit("member.remove")
    assert_audit(entry, actor=admin, org_id=org.id, request_id="req-remove-1")
    assert entry.before["userId"] == member.user.id and entry.before["role"] == "member"
    assert {p["id"] for p in entry.before["projectMembers"]} == {web_pm.id, api_pm.id}
    assert entry.after == {"revokedApiKeyIds": [acme_key.id]}

    # They can no longer see the organization.
    orgs = (await gql.ok(MY_ORGS, token=member.token))["viewer"]["organizations"]
    assert [o["organization"]["slug"] for o in orgs] == ["other"]


async def test_a_member_may_leave_but_not_remove_others(gql, acme):
    org, _, admin, member = acme
    await fails(gql, "FORBIDDEN", REMOVE, await _member_vars(org, admin), member.token)
    await gql.ok(REMOVE, await _member_vars(org, member), member.token)
    assert not await OrganizationMember.exists(organization_id=org.id, user_id=member.user.id)
    assert (await only_audit("member.remove")).actor_id == member.user.id


async def test_owners_are_removed_only_by_owners_and_never_the_last(gql, acme, factory):
    org, owner, admin, _ = acme
    await fails(gql, "FORBIDDEN", REMOVE, await _member_vars(org, owner), admin.token)
    error = await fails(gql, "CONFLICT", REMOVE, await _member_vars(org, owner), owner.token)
    assert error["extensions"]["reason"] == "LAST_OWNER"

    co_owner = await factory.user("CoOwner")
    await factory.org_member(org, co_owner, OrgRole.OWNER)
    await gql.ok(REMOVE, await _member_vars(org, co_owner), owner.token)
    assert not await OrganizationMember.exists(organization_id=org.id, user_id=co_owner.user.id)
