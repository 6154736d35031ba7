"""Tenant isolation, tested from the outside: a user of org B holding the global IDs of every
org-A object learns nothing that a made-up ID would not also answer."""

from __future__ import annotations

import pytest

from models import (
    CustomFieldDefinition,
    CustomFieldType,
    Label,
    OrgRole,
    ProjectRole,
    Task,
    TaskComment,
    TaskLabel,
)
from models.enums import TaskStatus
from tests.conftest import gid

MISSING = 987_654


@pytest.fixture
async def world(factory):
    """Org A (alice owner, mallory member without project access), org B (bob owner)."""
    alice = await factory.user("Alice")
    mallory = await factory.user("Mallory")
    bob = await factory.user("Bob")
    org_a = await factory.org(alice, slug="org-a")
    await factory.org_member(org_a, mallory, OrgRole.MEMBER)
    org_b = await factory.org(bob, slug="org-b")
    project = await factory.project(org_a, alice, "Secret plan")
    other = await factory.project(org_b, bob, "B's project")
    label = await Label.create(project=project, name="secret", color="#ff0000")
    field = await CustomFieldDefinition.create(
        project=project, key="budget", name="Budget", type=CustomFieldType.NUMBER
    )
    task = await Task.create(
        project=project, title="Acquire B", position="a0", created_by=alice.user,
        assignee=alice.user, status=TaskStatus.TODO,
    )
    sub = await Task.create(
        project=project, title="Sub", position="a1", created_by=alice.user, parent=task
    )
    await TaskLabel.create(task=task, label=label)
    comment = await TaskComment.create(task=task, author=alice.user, body="hush")
    from models import OrganizationMember, ProjectMember

    org_member = await OrganizationMember.get(organization=org_a, user=alice.user)
    project_member = await ProjectMember.get(project=project, user=alice.user)
    ids = {
        "Organization": gid("Organization", org_a.id),
        "Project": gid("Project", project.id),
        "Task": gid("Task", task.id),
        "Subtask": gid("Task", sub.id),
        "Comment": gid("Comment", comment.id),
        "Label": gid("Label", label.id),
        "CustomFieldDefinition": gid("CustomFieldDefinition", field.id),
        "OrganizationMember": gid("OrganizationMember", org_member.id),
        "ProjectMember": gid("ProjectMember", project_member.id),
        "User": alice.gid,
    }
    return {
        "alice": alice, "bob": bob, "mallory": mallory, "ids": ids, "project": project,
        "task": task, "other_project": other, "org_a": org_a,
    }


def missing_id(global_id: str) -> str:
    from resolvers.ids import parse_global_id

    type_name, _ = parse_global_id(global_id)
    return gid(type_name, MISSING)


NODE = "query($id: ID!) { node(id: $id) { id __typename } }"


async def test_node_answers_like_a_missing_id(gql, world):
    bob = world["bob"]
    for name, global_id in world["ids"].items():
        seen = await gql.raw(NODE, {"id": global_id}, token=bob.token)
        missing = await gql.raw(NODE, {"id": missing_id(global_id)}, token=bob.token)
        assert seen == missing == {"data": {"node": None}}, name


async def test_nodes_answers_like_missing_ids(gql, world):
    bob = world["bob"]
    ids = list(world["ids"].values())
    data = await gql.ok("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids}, token=bob.token)
    assert data["nodes"] == [None] * len(ids)


async def test_owner_sees_every_node(gql, world):
    """The positive control: the same IDs do resolve for someone allowed to see them."""
    alice = world["alice"]
    ids = list(world["ids"].values())
    data = await gql.ok(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id __typename } }", {"ids": ids}, token=alice.token
    )
    assert [n["id"] for n in data["nodes"]] == ids


async def test_typed_fields_answer_like_missing(gql, world):
    bob, ids = world["bob"], world["ids"]
    for query, variables in [
        ("query($id: ID!) { project(id: $id) { id name } }", {"id": ids["Project"]}),
        ("query($id: ID!) { task(id: $id) { id title } }", {"id": ids["Task"]}),
        ("query($id: ID!) { task(id: $id) { id title } }", {"id": ids["Subtask"]}),
    ]:
        seen = await gql.raw(query, variables, token=bob.token)
        missing = await gql.raw(query, {"id": missing_id(variables["id"])}, token=bob.token)
        assert seen == missing
        assert list(seen["data"].values()) == [None]
    assert (await gql.ok('{ organization(slug: "org-a") { id } }', token=bob.token)) == {
        "organization": None
    }


async def test_lists_do_not_leak(gql, world):
    bob = world["bob"]
    data = await gql.ok(
        """{ projects { totalCount nodes { name } }
             viewer { organizations { organization { slug projects { nodes { name } } members { nodes { user { name } } } } } } }""",
        token=bob.token,
    )
    assert data["projects"] == {"totalCount": 1, "nodes": [{"name": "B's project"}]}
    orgs = data["viewer"]["organizations"]
    assert [o["organization"]["slug"] for o in orgs] == ["org-b"]
    assert orgs[0]["organization"]["members"]["nodes"] == [{"user": {"name": "Bob"}}]


async def test_org_member_without_project_membership_sees_no_project(gql, world):
    """A project the caller is not a member of answers as a missing one, even in their org."""
    mallory, ids = world["mallory"], world["ids"]
    for name in ("Project", "Task", "Comment", "Label", "CustomFieldDefinition", "ProjectMember"):
        seen = await gql.raw(NODE, {"id": ids[name]}, token=mallory.token)
        assert seen == {"data": {"node": None}}, name
    data = await gql.ok(
        '{ projects { totalCount } organization(slug: "org-a") { viewerRole projects { totalCount } } }',
        token=mallory.token,
    )
    assert data == {
        "projects": {"totalCount": 0},
        "organization": {"viewerRole": "MEMBER", "projects": {"totalCount": 0}},
    }
    # ...but her own org and its people are visible to her.
    assert (await gql.raw(NODE, {"id": ids["Organization"]}, token=mallory.token))["data"]["node"]
    assert (await gql.raw(NODE, {"id": ids["User"]}, token=mallory.token))["data"]["node"]


async def test_org_admin_sees_every_project(gql, world, factory):
    admin = await factory.user("Admin")
    await factory.org_member(world["org_a"], admin, OrgRole.ADMIN)
    data = await gql.ok(
        "query($id: ID!) { project(id: $id) { name viewerRole board { columns { tasks { nodes { title } } } } } }",
        {"id": world["ids"]["Project"]},
        token=admin.token,
    )
    assert data["project"]["name"] == "Secret plan"
    assert data["project"]["viewerRole"] == "ADMIN"


async def test_project_membership_gives_access(gql, world, factory):
    mallory = world["mallory"]
    await factory.project_member(world["project"], mallory, ProjectRole.VIEWER)
    data = await gql.ok(
        "query($id: ID!) { task(id: $id) { title labels { name } comments { nodes { body author { name } } } subtasks { nodes { title } } parent { id } } }",
        {"id": world["ids"]["Task"]},
        token=mallory.token,
    )
    assert data["task"] == {
        "title": "Acquire B",
        "labels": [{"name": "secret"}],
        "comments": {"nodes": [{"body": "hush", "author": {"name": "Alice"}}]},
        "subtasks": {"nodes": [{"title": "Sub"}]},
        "parent": None,
    }


async def test_cross_org_references_in_own_project_are_rejected_like_missing(gql, world):
    """Bob cannot attach org-A objects (assignee, label, parent) to his own tasks."""
    bob, ids = world["bob"], world["ids"]
    project_b = gid("Project", world["other_project"].id)
    query = "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }"
    before = await Task.all().count()
    for key, type_key in [("assigneeId", "User"), ("parentId", "Task"), ("labelIds", "Label")]:
        foreign = ids[type_key]
        value = [foreign] if key == "labelIds" else foreign
        missing_value = [missing_id(foreign)] if key == "labelIds" else missing_id(foreign)
        seen = await gql.error(query, {"i": {"projectId": project_b, "title": "t", key: value}}, token=bob.token)
        missing = await gql.error(
            query, {"i": {"projectId": project_b, "title": "t", key: missing_value}}, token=bob.token
        )
        assert seen["extensions"]["code"] == "BAD_USER_INPUT"
        assert (seen["message"], seen["extensions"]) == (missing["message"], missing["extensions"])
    assert await Task.all().count() == before


async def test_writes_into_other_org_answer_like_missing(gql, world):
    bob, ids = world["bob"], world["ids"]
    query = "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }"
    before = await Task.all().count()
    seen = await gql.error(query, {"i": {"projectId": ids["Project"], "title": "x"}}, token=bob.token)
    missing = await gql.error(
        query, {"i": {"projectId": missing_id(ids["Project"]), "title": "x"}}, token=bob.token
    )
    assert seen["extensions"]["code"] == "NOT_FOUND"
    assert (seen["message"], seen["extensions"]) == (missing["message"], missing["extensions"])
    query = "mutation($i: CreateProjectInput!) { createProject(input: $i) { project { id } } }"
    seen = await gql.error(query, {"i": {"organizationId": ids["Organization"], "name": "x"}}, token=bob.token)
    missing = await gql.error(
        query, {"i": {"organizationId": missing_id(ids["Organization"]), "name": "x"}}, token=bob.token
    )
    assert seen["extensions"]["code"] == "NOT_FOUND"
    assert (seen["message"], seen["extensions"]) == (missing["message"], missing["extensions"])
    assert await Task.all().count() == before
