"""Organization and project memberships, and project settings (update / archive)."""

import asyncio

import pytest

from models import (
    ApiKey,
    AuditEntry,
    OrganizationMember,
    OrgRole,
    Project,
    ProjectMember,
    ProjectRole,
)
from resolvers.event.log import access_channel
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
UPDATE_PROJECT = """
mutation($i: UpdateProjectInput!) {
  updateProject(input: $i) { project { id name description updatedAt } }
}"""
ARCHIVE = """
mutation($i: ArchiveProjectInput!) { archiveProject(input: $i) { project { id archivedAt } } }"""
ADD_PM = """
mutation($i: AddProjectMemberInput!) {
  addProjectMember(input: $i) { member { id role user { id } project { id } } }
}"""
UPDATE_PM = """
mutation($i: UpdateProjectMemberRoleInput!) {
  updateProjectMemberRole(input: $i) { member { id role } }
}"""
REMOVE_PM = """
mutation($i: RemoveProjectMemberInput!) { removeProjectMember(input: $i) { removedMemberId } }"""
MY_ORGS = "{ viewer { organizations { role organization { slug } } } }"


async def _role_vars(org, actor, role):
    return {"i": {"memberId": gid("OrganizationMember", (await membership(org, actor)).id),
                  "role": role}}


async def _member_vars(org, actor):
    return {"i": {"memberId": gid("OrganizationMember", (await membership(org, actor)).id)}}


async def _pm_vars(project, actor, **extra):
    pm = await project_membership(project, actor)
    return {"i": {"memberId": gid("ProjectMember", pm.id), **extra}}


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


# -- updateProject / archiveProject -------------------------------------------------------------


async def test_project_admin_renames_a_project(gql, acme, factory):
    org, owner, _, member = acme
    project = await factory.project(org, owner, "Web")
    await factory.project_member(project, member, ProjectRole.ADMIN)
    variables = {"i": {"projectId": gid("Project", project.id), "name": " Website ",
                       "description": "The public site"}}
    data = await call(gql, UPDATE_PROJECT, variables, member.token, "req-proj-1")
    assert data["updateProject"]["project"]["name"] == "Website"
    assert data["updateProject"]["project"]["description"] == "The public site"
    row = await Project.get(id=project.id)
    assert (row.name, row.description) == ("Website", "The public site")

    entry = await only_audit("project.update")
    assert_audit(entry, actor=member, org_id=org.id, request_id="req-proj-1")
    assert (entry.before["name"], entry.before["description"]) == ("Web", "")
    assert (entry.after["name"], entry.after["description"]) == ("Website", "The public site")
    [event] = await events(project.id)
    assert event.type == "ProjectUpdated"
    assert event.payload["project"]["name"] == "Website"
    assert sorted(event.payload["changed"]) == ["description", "name"]

    # A null field is left alone.
    await gql.ok(UPDATE_PROJECT, {"i": {"projectId": gid("Project", project.id),
                                        "description": ""}}, member.token)
    row = await Project.get(id=project.id)
    assert (row.name, row.description) == ("Website", "")


async def test_update_project_rules(gql, acme, factory):
    org, owner, _, member = acme
    project = await factory.project(org, owner, "Web")
    await factory.project_member(project, member, ProjectRole.EDITOR)
    pid = gid("Project", project.id)
    await fails(gql, "FORBIDDEN", UPDATE_PROJECT, {"i": {"projectId": pid, "name": "X"}},
                member.token)
    error = await fails(gql, "BAD_USER_INPUT", UPDATE_PROJECT,
                        {"i": {"projectId": pid, "name": "   "}}, owner.token)
    assert error["extensions"]["field"] == "name"
    error = await fails(gql, "BAD_USER_INPUT", UPDATE_PROJECT,
                        {"i": {"projectId": pid, "name": "x" * 201}}, owner.token)
    assert error["extensions"]["field"] == "name"
    # Nothing to change: nothing written.
    before = await db_state()
    await gql.ok(UPDATE_PROJECT, {"i": {"projectId": pid, "name": "Web"}}, owner.token)
    assert await db_state() == before

    await gql.ok(ARCHIVE, {"i": {"projectId": pid}}, owner.token)
    error = await fails(gql, "BAD_USER_INPUT", UPDATE_PROJECT,
                        {"i": {"projectId": pid, "name": "Y"}}, owner.token)
    assert error["extensions"]["field"] == "projectId"


async def test_project_owner_archives_a_project_once(gql, acme, factory):
    org, owner, admin, _ = acme
    project = await factory.project(org, owner, "Web")
    pid = gid("Project", project.id)
    # An org admin is an implied project admin: not enough to archive.
    await fails(gql, "FORBIDDEN", ARCHIVE, {"i": {"projectId": pid}}, admin.token)

    data = await call(gql, ARCHIVE, {"i": {"projectId": pid}}, owner.token, "req-arch-1")
    archived_at = data["archiveProject"]["project"]["archivedAt"]
    assert archived_at is not None
    row = await Project.get(id=project.id)
    assert row.archived_at is not None
    entry = await only_audit("project.archive")
    assert_audit(entry, actor=owner, org_id=org.id, request_id="req-arch-1")
    assert entry.before["archivedAt"] is None and entry.after["archivedAt"] is not None
    [event] = await events(project.id)
    assert event.type == "ProjectArchived"

    # Idempotent: archiving again returns the project unchanged and writes nothing.
    before = await db_state()
    data = await gql.ok(ARCHIVE, {"i": {"projectId": pid}}, owner.token)
    assert data["archiveProject"]["project"]["archivedAt"] == archived_at
    assert await db_state() == before


# -- addProjectMember ---------------------------------------------------------------------------


async def test_project_admin_adds_an_org_member(gql, acme, factory):
    org, owner, admin, member = acme
    project = await factory.project(org, owner, "Web")
    variables = {"i": {"projectId": gid("Project", project.id), "userId": member.gid,
                       "role": "EDITOR"}}
    data = await call(gql, ADD_PM, variables, admin.token, "req-add-1")
    out = data["addProjectMember"]["member"]
    row = await project_membership(project, member)
    assert out == {"id": gid("ProjectMember", row.id), "role": "EDITOR",
                   "user": {"id": member.gid}, "project": {"id": gid("Project", project.id)}}
    assert row.role is ProjectRole.EDITOR

    entry = await only_audit("project_member.add")
    assert_audit(entry, actor=admin, org_id=org.id, request_id="req-add-1")
    assert entry.before is None
    assert entry.after == {"id": row.id, "projectId": project.id, "userId": member.user.id,
                           "role": "editor"}
    [event] = await events(project.id)
    assert (event.type, event.seq, event.actor_id) == ("MemberAdded", 1, admin.user.id)
    assert event.payload == {"memberId": row.id, "userId": member.user.id, "role": "editor"}

    # The new member now sees the project.
    query = "query($p: ID!) { project(id: $p) { viewerRole } }"
    seen = await gql.ok(query, {"p": gid("Project", project.id)}, member.token)
    assert seen["project"]["viewerRole"] == "EDITOR"


async def test_add_project_member_rules(gql, acme, factory):
    org, owner, admin, member = acme
    project = await factory.project(org, owner, "Web")
    pid = gid("Project", project.id)
    outsider = await factory.user("Outsider")
    editor = await factory.user("Editor")
    await factory.org_member(org, editor, OrgRole.MEMBER)
    await factory.project_member(project, editor, ProjectRole.EDITOR)

    def v(user, role="VIEWER"):
        return {"i": {"projectId": pid, "userId": user.gid, "role": role}}

    error = await fails(gql, "BAD_USER_INPUT", ADD_PM, v(outsider), admin.token)
    assert error["extensions"]["field"] == "userId"
    error = await fails(gql, "CONFLICT", ADD_PM, v(editor), admin.token)
    assert error["extensions"]["field"] == "userId"
    await fails(gql, "FORBIDDEN", ADD_PM, v(member, "OWNER"), admin.token)
    await fails(gql, "FORBIDDEN", ADD_PM, v(member), editor.token)
    # A plain org member outside the project cannot even see it.
    await fails(gql, "NOT_FOUND", ADD_PM, v(member), member.token)
    bad = {"i": {"projectId": pid, "userId": gid("Project", 1), "role": "VIEWER"}}
    await fails(gql, "BAD_USER_INPUT", ADD_PM, bad, admin.token)

    await gql.ok(ADD_PM, v(member, "OWNER"), owner.token)
    assert (await project_membership(project, member)).role is ProjectRole.OWNER


# -- updateProjectMemberRole --------------------------------------------------------------------


async def test_project_admin_changes_a_member_role(gql, acme, factory):
    org, owner, admin, member = acme
    project = await factory.project(org, owner, "Web")
    await factory.project_member(project, member, ProjectRole.EDITOR)
    variables = await _pm_vars(project, member, role="VIEWER")
    data = await call(gql, UPDATE_PM, variables, admin.token, "req-pm-1")
    assert data["updateProjectMemberRole"]["member"]["role"] == "VIEWER"
    row = await project_membership(project, member)
    assert row.role is ProjectRole.VIEWER

    entry = await only_audit("project_member.update_role")
    assert_audit(entry, actor=admin, org_id=org.id, request_id="req-pm-1")
    assert entry.before["role"] == "editor" and entry.after["role"] == "viewer"
    [event] = await events(project.id)
    assert event.type == "MemberRoleChanged"
    assert event.payload == {"memberId": row.id, "userId": member.user.id, "role": "viewer",
                             "previousRole": "editor"}


async def test_project_ownership_rules(gql, acme, factory):
    org, owner, admin, member = acme
    project = await factory.project(org, owner, "Web")
    await factory.project_member(project, member, ProjectRole.EDITOR)
    # Org admins are implied project admins: they cannot grant or revoke ownership.
    await fails(gql, "FORBIDDEN", UPDATE_PM, await _pm_vars(project, member, role="OWNER"),
                admin.token)
    await fails(gql, "FORBIDDEN", UPDATE_PM, await _pm_vars(project, owner, role="ADMIN"),
                admin.token)
    await fails(gql, "FORBIDDEN", UPDATE_PM, await _pm_vars(project, owner, role="VIEWER"),
                member.token)
    error = await fails(gql, "CONFLICT", UPDATE_PM, await _pm_vars(project, owner, role="ADMIN"),
                        owner.token)
    assert error["extensions"]["reason"] == "LAST_OWNER"

    await gql.ok(UPDATE_PM, await _pm_vars(project, member, role="OWNER"), owner.token)
    await gql.ok(UPDATE_PM, await _pm_vars(project, owner, role="ADMIN"), owner.token)
    assert (await project_membership(project, owner)).role is ProjectRole.ADMIN


# -- removeProjectMember ------------------------------------------------------------------------


async def test_project_admin_removes_a_member(gql, acme, factory):
    org, owner, admin, member = acme
    project = await factory.project(org, owner, "Web")
    await factory.project_member(project, member, ProjectRole.EDITOR)
    pm = await project_membership(project, member)
    data = await call(gql, REMOVE_PM, await _pm_vars(project, member), admin.token, "req-rpm-1")
    assert data["removeProjectMember"]["removedMemberId"] == gid("ProjectMember", pm.id)
    assert not await ProjectMember.exists(id=pm.id)
    # Still a member of the organization.
    assert await OrganizationMember.exists(organization_id=org.id, user_id=member.user.id)

    entry = await only_audit("project_member.remove")
    assert_audit(entry, actor=admin, org_id=org.id, request_id="req-rpm-1")
    assert entry.before == {"id": pm.id, "projectId": project.id, "userId": member.user.id,
                            "role": "editor"}
    assert entry.after is None
    [event] = await events(project.id)
    assert event.type == "MemberRemoved"
    assert event.payload == {"memberId": pm.id, "userId": member.user.id, "role": "editor"}


async def test_remove_project_member_rules(gql, acme, factory):
    org, owner, admin, member = acme
    project = await factory.project(org, owner, "Web")
    viewer = await factory.user("Viewer")
    await factory.org_member(org, viewer, OrgRole.MEMBER)
    await factory.project_member(project, viewer, ProjectRole.VIEWER)
    await factory.project_member(project, member, ProjectRole.EDITOR)

    await fails(gql, "FORBIDDEN", REMOVE_PM, await _pm_vars(project, viewer), member.token)
    await fails(gql, "FORBIDDEN", REMOVE_PM, await _pm_vars(project, owner), admin.token)
    error = await fails(gql, "CONFLICT", REMOVE_PM, await _pm_vars(project, owner), owner.token)
    assert error["extensions"]["reason"] == "LAST_OWNER"

    # Anyone may leave: the viewer-role member removes themself and loses sight of the project.
    await gql.ok(REMOVE_PM, await _pm_vars(project, viewer), viewer.token)
    assert not await ProjectMember.exists(project_id=project.id, user_id=viewer.user.id)
    query = "query($p: ID!) { project(id: $p) { id } }"
    assert (await gql.ok(query, {"p": gid("Project", project.id)}, viewer.token))["project"] is None



async def test_membership_changes_nudge_the_users_open_streams(gql, acme, app):
    """Org-level changes emit no board event for implied access: the user's channel is told."""
    org, owner, admin, _ = acme
    async with app.state.broadcast.subscribe(access_channel(admin.user.id)) as sub:
        await gql.ok(UPDATE_ROLE, await _role_vars(org, admin, "MEMBER"), owner.token)
        assert (await asyncio.wait_for(sub.get(), 2)).channel == access_channel(admin.user.id)
        await gql.ok(REMOVE, await _member_vars(org, admin), owner.token)
        assert (await asyncio.wait_for(sub.get(), 2)).channel == access_channel(admin.user.id)
