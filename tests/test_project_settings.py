"""updateProject and archiveProject."""



from models import (
    Project,
    ProjectRole,
)
from tests.conftest import gid
from tests.membership_helpers import (
    assert_audit,
    call,
    db_state,
    events,
    fails,
    only_audit,
)

UPDATE_PROJECT = """
mutation($i: UpdateProjectInput!) {
  updateProject(input: $i) { project { id name description updatedAt } }
}"""
ARCHIVE = """
mutation($i: ArchiveProjectInput!) { archiveProject(input: $i) { project { id archivedAt } } }"""








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
