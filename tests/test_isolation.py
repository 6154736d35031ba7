"""Tenant isolation, tested from the outside: a user of org B holding the global IDs of every
org-A object learns nothing that a made-up ID would not also answer."""

from __future__ import annotations

import pytest

from models import (
    Comment,
    CustomFieldDefinition,
    CustomFieldType,
    Label,
    OrganizationMember,
    OrgRole,
    ProjectRole,
    Task,
    TaskLabel,
    TaskStatus,
)
from resolvers.ids import parse_global_id
from tests.api_catalog import MUTATIONS, arrange, db_changes, db_snapshot, with_id
from tests.conftest import gid
from tests.membership_helpers import make_key

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
    comment = await Comment.create(task=task, author=alice.user, body="hush")
    from models import ProjectMember

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
    type_name, _ = parse_global_id(global_id)
    return gid(type_name, MISSING)


NODE = "query($id: ID!) { node(id: $id) { id __typename } }"


def _data_only(body: dict):
    """The answer's data, asserting it carries no error (extensions.cost is the same for a
    hidden and a missing object, so whole bodies are compared first)."""
    assert "errors" not in body, body
    return body["data"]


async def test_node_answers_like_a_missing_id(gql, world):
    bob = world["bob"]
    for name, global_id in world["ids"].items():
        seen = await gql.raw(NODE, {"id": global_id}, token=bob.token)
        missing = await gql.raw(NODE, {"id": missing_id(global_id)}, token=bob.token)
        assert seen == missing and _data_only(seen) == {"node": None}, name


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
        assert _data_only(seen) == {"node": None}, name
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


# -- every mutation, every ID-bearing field, every org-A object --------------------------------
#
# Org A ("alpha") and org B ("beta") are arranged alike (tests/api_catalog.py). Two attackers
# hold the global IDs of every alpha object: beta's owner, and an API key of beta whose creator
# is also an admin of alpha (a key acts inside its own organization only).

# Optional ID fields, filled with beta's own objects: with these the input succeeds, so a
# probe differs from a success by exactly the one ID it swaps.
OWN_OPTIONAL_IDS = {
    "createTask": {"assigneeId": "user:member", "parentId": "task", "labelIds": "label",
                   "customProperties": "user:member"},
    "updateTask": {"assigneeId": "user:newcomer", "parentId": "neighbour", "labelIds": "label",
                   "customProperties": "user:member"},
    "moveTask": {"beforeId": "subtask"},
}
ATTACKERS = ["beta owner", "beta key of an alpha admin"]


@pytest.fixture
async def tenants(factory):
    alpha = await arrange(factory, slug="alpha", project_name="Secret plan")
    beta = await arrange(factory, slug="beta", project_name="Beta board")
    double = await factory.user("Double")
    await factory.org_member(alpha.org, double, OrgRole.ADMIN)
    await factory.org_member(beta.org, double, OrgRole.OWNER)
    _, key = await make_key(beta.org, double, OrgRole.OWNER)
    alpha_ids = alpha.global_ids()
    double_row = await OrganizationMember.get(organization=alpha.org, user=double.user)
    alpha_ids["org_member:double"] = gid("OrganizationMember", double_row.id)
    return {
        "alpha": alpha, "beta": beta, "alpha_ids": alpha_ids, "double": double,
        "tokens": {"beta owner": beta.owner.token, "beta key of an alpha admin": key},
    }


def own_input(mutation, beta) -> dict:
    ids = beta.global_ids()
    value = mutation.build(beta)
    for field_name, name in OWN_OPTIONAL_IDS.get(mutation.name, {}).items():
        value = with_id(value, field_name, ids[name])
    return value


def _normalize(body: dict, global_id: str) -> dict:
    """The answer with what its errors' extensions may echo of the ID given blanked out."""
    _, pk = parse_global_id(global_id)

    def blank(value):
        if isinstance(value, dict):
            return {k: blank(v) for k, v in value.items()}
        if isinstance(value, list):
            return [blank(v) for v in value]
        if value == global_id:
            return "<id>"
        if isinstance(value, int) and not isinstance(value, bool) and value == pk:
            return "<pk>"
        return value

    errors = [e | {"extensions": blank(e.get("extensions"))} for e in body.get("errors", [])]
    return body | {"errors": errors}


def _probes(mutation, alpha_ids: dict) -> list[tuple[str, str, str]]:
    """(field, alpha object name, its ID) for every alpha object of the type the field takes."""
    return [
        (field_name, name, global_id)
        for field_name, type_name in mutation.id_fields.items()
        for name, global_id in alpha_ids.items()
        if parse_global_id(global_id)[0] == type_name
    ]


@pytest.mark.parametrize("attacker", ATTACKERS)
@pytest.mark.parametrize("name", list(MUTATIONS))
async def test_every_mutation_answers_foreign_ids_like_missing_ones(gql, tenants, name, attacker):
    mutation = MUTATIONS[name]
    token = tenants["tokens"][attacker]
    base = own_input(mutation, tenants["beta"])
    probes = _probes(mutation, tenants["alpha_ids"])
    assert {f for f, _, _ in probes} == set(mutation.id_fields), "a field went untested"
    before = await db_snapshot()
    answers_to_missing: dict[str, dict] = {}
    for field_name, object_name, foreign in probes:
        seen = await _swapped(gql, mutation, base, field_name, foreign, token)
        missing_id = missing_id_of(foreign)
        if field_name not in answers_to_missing:
            answers_to_missing[field_name] = await _swapped(
                gql, mutation, base, field_name, missing_id, token
            )
        missing = answers_to_missing[field_name]
        where = f"{name}.{field_name} = alpha's {object_name}"
        assert seen.get("errors"), f"{where} succeeded: {seen}"
        assert seen["data"] is None, where
        assert _normalize(seen, foreign) == _normalize(missing, missing_id), where
    assert await db_snapshot() == before, f"{name}: a refused call changed the database"
    # The control: the same input with beta's own IDs goes through.
    control = await gql.raw(mutation.document, {"input": base}, token)
    if name == "createApiKey" and attacker != "beta owner":
        assert control["errors"][0]["extensions"]["code"] == "FORBIDDEN"  # keys cannot mint keys
        return
    assert not control.get("errors"), control
    assert db_changes(before, await db_snapshot()), f"{name}: the control wrote nothing"


async def _swapped(gql, mutation, base: dict, field_name: str, global_id: str, token: str):
    value = with_id(base, field_name, global_id)
    return await gql.raw(mutation.document, {"input": value}, token)


def missing_id_of(global_id: str) -> str:
    type_name, _ = parse_global_id(global_id)
    return gid(type_name, MISSING)


# -- reads: every typed entry point --------------------------------------------------------------


@pytest.mark.parametrize("attacker", ATTACKERS)
async def test_node_of_every_alpha_object_is_null_like_a_missing_one(gql, tenants, attacker):
    token = tenants["tokens"][attacker]
    query = "query($id: ID!) { node(id: $id) { id __typename } }"
    for name, foreign in tenants["alpha_ids"].items():
        seen = await gql.raw(query, {"id": foreign}, token)
        missing = await gql.raw(query, {"id": missing_id_of(foreign)}, token)
        assert seen == missing and _data_only(seen) == {"node": None}, name


@pytest.mark.parametrize("attacker", ATTACKERS)
async def test_nodes_mixing_alpha_missing_and_own_ids(gql, tenants, attacker):
    """Alpha's and made-up IDs answer null in place; the caller's own resolve around them."""
    token = tenants["tokens"][attacker]
    own = tenants["beta"].global_ids()
    ids, expected = [], []
    for i, (name, foreign) in enumerate(tenants["alpha_ids"].items()):
        type_name, _ = parse_global_id(foreign)
        ids += [foreign, gid(type_name, MISSING + i)]
        expected += [None, None]
        if name in own:
            ids.append(own[name])
            expected.append(own[name])
    data = await gql.ok("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids}, token)
    assert [n and n["id"] for n in data["nodes"]] == expected


@pytest.mark.parametrize("attacker", ATTACKERS)
async def test_typed_entry_points_do_not_reach_alpha(gql, tenants, attacker):
    token = tenants["tokens"][attacker]
    alpha, ids = tenants["alpha"], tenants["alpha_ids"]
    for field, _type_name, names in [
        ("project", "Project", ["project"]),
        ("task", "Task", ["task", "neighbour", "archived", "subtask"]),
    ]:
        query = f"query($id: ID!) {{ {field}(id: $id) {{ id }} }}"
        for name in names:
            seen = await gql.raw(query, {"id": ids[name]}, token)
            missing = await gql.raw(query, {"id": missing_id_of(ids[name])}, token)
            assert seen == missing and _data_only(seen) == {field: None}, name
    query = """query($id: ID!) { node(id: $id) { ... on Organization {
                 id invites { totalCount } apiKeys(includeRevoked: true) { totalCount }
                 auditEntries { totalCount } } } }"""
    seen = await gql.raw(query, {"id": ids["organization"]}, token)
    missing = await gql.raw(query, {"id": missing_id_of(ids["organization"])}, token)
    assert seen == missing and _data_only(seen) == {"node": None}
    query = "query($slug: String!) { organization(slug: $slug) { id } }"
    assert await gql.raw(query, {"slug": alpha.org.slug}, token) == await gql.raw(
        query, {"slug": "never-was"}, token
    )
    assert _data_only(await gql.raw(query, {"slug": "never-was"}, token)) == {"organization": None}
    data = await gql.ok(
        """query($search: String!) {
             projects(search: $search, includeArchived: true) { totalCount }
             all: projects(includeArchived: true) { nodes { id } }
             organization(slug: "beta") {
               projects(search: $search, includeArchived: true) { totalCount }
               all: projects(includeArchived: true) { nodes { id } }
               invites { nodes { id } }
               apiKeys(includeRevoked: true) { nodes { id } }
               auditEntries { nodes { id } }
               members { nodes { id } }
             }
           }""",
        {"search": "Secret plan"},
        token,
    )
    beta = tenants["beta"]
    own_project = [{"id": gid("Project", beta.project.id)}]
    assert data["projects"] == {"totalCount": 0}
    assert data["all"]["nodes"] == own_project
    org = data["organization"]
    assert org["projects"] == {"totalCount": 0}
    assert org["all"]["nodes"] == own_project
    reached = {n["id"] for key in ("invites", "apiKeys", "auditEntries", "members")
               for n in org[key]["nodes"]}
    assert reached and not reached & set(ids.values())
    invite_ids = {gid("Invite", beta.invite.id), gid("Invite", beta.owner_invite.id)}
    assert {n["id"] for n in org["invites"]["nodes"]} == invite_ids


@pytest.mark.parametrize("attacker", ATTACKERS)
async def test_task_filters_with_alpha_ids_match_nothing_like_missing_ones(gql, tenants, attacker):
    token = tenants["tokens"][attacker]
    ids = tenants["alpha_ids"]
    query = """query($id: ID!, $f: TaskFilter!) {
                 project(id: $id) { tasks(filter: $f) { totalCount nodes { id } } } }"""
    project = gid("Project", tenants["beta"].project.id)
    for key, name in [("assignee", "user:member"), ("label", "label")]:
        seen = await gql.raw(query, {"id": project, "f": {key: [ids[name]]}}, token)
        made_up = {key: [missing_id_of(ids[name])]}
        missing = await gql.raw(query, {"id": project, "f": made_up}, token)
        assert seen == missing and _data_only(seen) == {"project": {"tasks": {"totalCount": 0, "nodes": []}}}


def _ids_in(value) -> set[str]:
    if isinstance(value, dict):
        found = {value["id"]} if isinstance(value.get("id"), str) else set()
        return found.union(*(_ids_in(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_ids_in(v) for v in value))
    return set()


def _slugs_in(value) -> set[str]:
    if isinstance(value, dict):
        found = {value["slug"]} if "slug" in value else set()
        return found.union(*(_slugs_in(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_slugs_in(v) for v in value))
    return set()


RELATIONS = """
query($task: ID!, $comment: ID!, $label: ID!, $member: ID!) {
  viewer { user { id } organizations { id role organization { id slug } user { id } } }
  task(id: $task) {
    id assignee { id } createdBy { id } parent { id } labels { id project { id } }
    subtasks { nodes { id parent { id } } }
    comments { nodes { id author { id } task { id } } }
    project {
      id organization { id slug }
      members { nodes { id user { id } project { id organization { id slug } } } }
      labels { id } customFields { id }
      tasks(filter: { includeArchived: true }) { nodes { id project { id } parent { id } } }
      board { columns { tasks { nodes { id } } } }
    }
  }
  comment: node(id: $comment) {
    ... on Comment { id task { id project { organization { id slug } } } }
  }
  label: node(id: $label) { ... on Label { id project { organization { id slug } } } }
  member: node(id: $member) {
    ... on OrganizationMember { id user { id } organization { id slug } }
  }
  organization(slug: "beta") {
    id slug
    members { nodes { id user { id } organization { id slug } } }
    projects(includeArchived: true) { nodes { id organization { id slug } } }
    invites { nodes { id invitedBy { id } organization { id slug } } }
    apiKeys(includeRevoked: true) { nodes { id createdBy { id } organization { id slug } } }
    auditEntries { nodes { id actor { id } apiKey { id organization { id slug } } } }
  }
}"""


@pytest.mark.parametrize("attacker", ATTACKERS)
async def test_no_relation_leads_from_beta_to_alpha(gql, tenants, attacker):
    """Walk every relation out of beta's objects: only beta (and its people) is ever reached.
    The alpha admin who holds the key is a beta member too: their User is beta's to see."""
    beta = tenants["beta"]
    token = tenants["tokens"][attacker]
    variables = {
        "task": gid("Task", beta.task.id),
        "comment": gid("Comment", beta.comment.id),
        "label": gid("Label", beta.label.id),
        "member": gid("OrganizationMember", beta.org_rows["member"].id),
    }
    data = await gql.ok(RELATIONS, variables, token)
    reached = _ids_in(data)
    assert len(reached) > 20
    assert not reached & set(tenants["alpha_ids"].values())
    assert _slugs_in(data) == {"beta"}
    assert [m["organization"]["slug"] for m in data["viewer"]["organizations"]] == ["beta"]
    assert data["task"]["project"]["organization"]["slug"] == "beta"


async def test_errors_echo_ids_as_the_client_sent_them(gql, tenants):
    """An error may name the IDs it refuses, but as the opaque IDs the client sent: raw primary
    keys are internal (they count rows and would let a client forge IDs of other types)."""
    beta, foreign = tenants["beta"], tenants["alpha_ids"]["user:member"]
    mutation = MUTATIONS["createTask"]
    value = with_id(mutation.build(beta), "customProperties", foreign)
    error = await gql.error(mutation.document, {"input": value}, beta.owner.token)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"].get("userIds", [foreign]) == [foreign]
