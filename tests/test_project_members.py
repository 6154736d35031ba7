"""Project memberships (add, change role, remove) and the nudge that makes open streams re-check access."""

import asyncio

from models import (
    OrganizationMember,
    OrgRole,
    ProjectMember,
    ProjectRole,
)
from resolvers.event.log import access_channel
from tests.conftest import gid
from tests.membership_helpers import (
    assert_audit,
    call,
    events,
    fails,
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


async def _role_vars(org, actor, role):
    return {"i": {"memberId": gid("OrganizationMember", (await membership(org, actor)).id),
                  "role": role}}


async def _member_vars(org, actor):
    return {"i": {"memberId": gid("OrganizationMember", (await membership(org, actor)).id)}}


async def _pm_vars(project, actor, **extra):
    pm = await project_membership(project, actor)
    return {"i": {"memberId": gid("ProjectMember", pm.id), **extra}}


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
