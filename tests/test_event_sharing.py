"""Subscription answers are shared only between subscribers whose answers cannot differ.

Over a real uvicorn and real websockets: subscribers who differ in one fact about themselves
get the answer they would get alone (the same selection asked over HTTP), and the field
declarations of schema/sharing.py are checked against the schema itself, so that a field
added later is either declared or not shared.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import strawberry
from graphql import (
    FragmentDefinitionNode,
    GraphQLObjectType,
    OperationDefinitionNode,
    get_named_type,
    is_abstract_type,
    parse,
)
from strawberry.types import Info

from models import OrgRole, ProjectRole
from schema import sharing
from schema.event import EVENT_TYPES, ResyncRequired, TaskCreated
from schema.identity import User
from schema.nora import NORA_EVENT_TYPES, NoraResyncRequired
from schema.root import Query, Subscription
from schema.root import schema as app_schema
from tests.conftest import gid
from tests.wsclient import GraphQLWS

CREATE = "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }"
UPDATE = "mutation($i: UpdateTaskInput!) { updateTask(input: $i) { task { id } } }"
ORG_PROJECTS = "project { organization { projects { nodes { name tasks { nodes { title } } } } } }"
SECRET_PROJECT, SECRET_TASK = "Secret launch", "Unannounced partner"


@pytest.fixture
async def world(factory):
    """An org with an owner, the board P1, and P2 with a task only some members may see."""
    owner = await factory.user("Olga")
    org = await factory.org(owner)
    p1 = await factory.project(org, owner, "Board")
    p2 = await factory.project(org, owner, SECRET_PROJECT)
    return {"owner": owner, "org": org, "p1": p1, "p2": p2}


async def make_viewer(factory, world, name: str, org_role: OrgRole, p1: ProjectRole | None,
                      p2: ProjectRole | None = None):
    actor = await factory.user(name)
    await factory.org_member(world["org"], actor, org_role)
    for project, role in ((world["p1"], p1), (world["p2"], p2)):
        if role is not None:
            await factory.project_member(project, actor, role)
    return actor


async def create_task(gql, world, project, title: str) -> str:
    data = await gql.ok(CREATE, {"i": {"projectId": gid("Project", project.id), "title": title}},
                        token=world["owner"].token)
    return data["createTask"]["task"]["id"]


class Executions:
    """Counts the executions that went through the sharing path (instrumentation only)."""

    def __init__(self, monkeypatch) -> None:
        self.count = 0
        original = sharing.execute_shared

        def counting(executor, execute, serially):
            def counted(s):
                self.count += 1
                return execute(s)
            return original(executor, counted, serially)

        monkeypatch.setattr(sharing, "execute_shared", counting)


async def connect_all(live, actors) -> list[GraphQLWS]:
    return [await GraphQLWS.connect(f"ws://{live}/graphql", token=a.token) for a in actors]


async def close_all(sockets) -> None:
    for ws in sockets:
        await ws.close()


# -- the regression: Organization.projects depends on each subscriber's memberships --------------


@pytest.mark.parametrize("operation", ["boardEvents", "taskChanged"])
async def test_org_projects_are_never_shared_across_memberships(live, gql, world, factory, operation):
    """Two plain org members, both editors of P1, only one of them in P2: same document, same
    variables, same (project role, org role) signature. The one outside P2 never receives
    P2's name or tasks, and the one in P2 gets them."""
    await create_task(gql, world, world["p2"], SECRET_TASK)
    outsider = await make_viewer(factory, world, "Ann", OrgRole.MEMBER, ProjectRole.EDITOR)
    insider = await make_viewer(factory, world, "Ben", OrgRole.MEMBER, ProjectRole.EDITOR, ProjectRole.EDITOR)
    if operation == "boardEvents":
        query = f"""subscription($v: ID!) {{ boardEvents(projectId: $v) {{ seq
          ... on TaskCreated {{ task {{ {ORG_PROJECTS} }} }} }} }}"""
        variables = {"v": gid("Project", world["p1"].id)}
    else:
        task_id = await create_task(gql, world, world["p1"], "Draft")
        query = f"""subscription($v: ID!) {{ taskChanged(id: $v) {{ seq
          ... on TaskUpdated {{ task {{ {ORG_PROJECTS} }} }} }} }}"""
        variables = {"v": task_id}
    # Both orders of first execution, on one event.
    sockets = await connect_all(live, [insider, outsider, outsider, insider])
    try:
        for ws in sockets:
            await ws.subscribe(query, variables)
        await asyncio.sleep(0.2)
        if operation == "boardEvents":
            await create_task(gql, world, world["p1"], "Watched")
        else:
            await gql.ok(UPDATE, {"i": {"id": variables["v"], "title": "Watched"}}, token=world["owner"].token)
        payloads = [await ws.next_data() for ws in sockets]
    finally:
        await close_all(sockets)

    def projects(payload):
        return payload["data"][operation]["task"]["project"]["organization"]["projects"]["nodes"]

    board = {"name": "Board", "tasks": {"nodes": [{"title": "Watched"}]}}
    secret = {"name": SECRET_PROJECT, "tasks": {"nodes": [{"title": SECRET_TASK}]}}
    assert [projects(p) for p in payloads] == [[board, secret], [board], [board], [board, secret]]
    for payload in payloads[1:3]:
        text = json.dumps(payload)
        assert SECRET_PROJECT not in text and SECRET_TASK not in text


# -- one fact at a time: a table of field classes and the viewer facts they may read ------------

# (viewer A, viewer B): (org role, role on P1, role on P2). Each pair differs in one fact.
PROJECT_ROLE = ((OrgRole.MEMBER, ProjectRole.EDITOR, None), (OrgRole.MEMBER, ProjectRole.VIEWER, None))
ORG_ROLE = ((OrgRole.MEMBER, ProjectRole.ADMIN, None), (OrgRole.ADMIN, None, None))
OTHER_PROJECT = ((OrgRole.MEMBER, ProjectRole.EDITOR, None), (OrgRole.MEMBER, ProjectRole.EDITOR, ProjectRole.VIEWER))

FACTS = {
    # field class: (selection under the event's task, viewers, whether their answers differ)
    "ROLES Project.viewerRole / project role": ("project { viewerRole }", PROJECT_ROLE, True),
    "ROLES Organization.viewerRole / org role": (
        "project { viewerRole organization { viewerRole } }", ORG_ROLE, True),
    "ROLES Organization.invites (admins only) / org role": (
        "project { organization { invites { totalCount } } }", ORG_ROLE, True),
    "VIEWER Organization.projects / other memberships": (
        "project { organization { projects { nodes { name } totalCount } } }", OTHER_PROJECT, True),
    # Shared: what differs is not what the selection reads.
    "EVENT task, project lists / project role": (
        "title status createdBy { name } project { name taskCount members { totalCount nodes "
        "{ role user { name } } } board { columns { status tasks { nodes { title } } } } }",
        PROJECT_ROLE, False),
    "EVENT task / org role": ("title project { name labels { name } }", ORG_ROLE, False),
    "ROLES Project.viewerRole / other memberships": ("project { viewerRole }", OTHER_PROJECT, False),
}


@pytest.mark.parametrize("case", list(FACTS))
async def test_viewers_differing_in_one_fact(live, gql, world, factory, monkeypatch, case):
    selection, (spec_a, spec_b), differ = FACTS[case]
    await create_task(gql, world, world["p2"], SECRET_TASK)
    a = await make_viewer(factory, world, "Ann", *spec_a)
    b = await make_viewer(factory, world, "Ben", *spec_b)
    executions = Executions(monkeypatch)
    query = f"""subscription($p: ID!) {{ boardEvents(projectId: $p) {{
      ... on TaskCreated {{ task {{ {selection} }} }} }} }}"""
    sockets = await connect_all(live, [a, b, a, b])
    try:
        for ws in sockets:
            await ws.subscribe(query, {"p": gid("Project", world["p1"].id)})
        await asyncio.sleep(0.2)
        task_id = await create_task(gql, world, world["p1"], "Shared or not")
        answers = [answer(await ws.next_data(), "boardEvents") for ws in sockets]
    finally:
        await close_all(sockets)

    # Each gets exactly what it would get alone: the same selection, over HTTP.
    alone = {}
    for actor in (a, b):
        body = await gql.raw(f"query($id: ID!) {{ task(id: $id) {{ {selection} }} }}", {"id": task_id},
                             token=actor.token)
        alone[actor.user.id] = answer(body, "task")
    assert answers == [alone[a.user.id], alone[b.user.id], alone[a.user.id], alone[b.user.id]]
    if differ:
        assert alone[a.user.id] != alone[b.user.id]
    else:
        assert alone[a.user.id] == alone[b.user.id]
        assert executions.count == 1


def answer(payload: dict, root: str):
    """The task of a result, or the codes of its errors."""
    if payload.get("errors"):
        return ("errors", sorted(e["extensions"]["code"] for e in payload["errors"]))
    value = payload["data"][root]
    return value["task"] if root == "boardEvents" else value


async def test_common_board_selection_is_one_execution_for_many_roles(live, gql, world, factory, monkeypatch):
    """The fan-out case: the board's usual selection reads nothing of the viewer."""
    viewers = [
        world["owner"],
        await make_viewer(factory, world, "Ed", OrgRole.MEMBER, ProjectRole.EDITOR),
        await make_viewer(factory, world, "Vi", OrgRole.MEMBER, ProjectRole.VIEWER, ProjectRole.EDITOR),
        await make_viewer(factory, world, "Ad", OrgRole.ADMIN, None),
    ]
    executions = Executions(monkeypatch)
    query = """subscription($p: ID!) { boardEvents(projectId: $p) { __typename cursor seq occurredAt
      actor { name } ... on TaskCreated { task { id title status position assignee { name } labels { name } } } } }"""
    sockets = await connect_all(live, viewers)
    try:
        for ws in sockets:
            await ws.subscribe(query, {"p": gid("Project", world["p1"].id)})
        await asyncio.sleep(0.2)
        await create_task(gql, world, world["p1"], "Fan out")
        titles = [(await ws.next_data())["data"]["boardEvents"]["task"]["title"] for ws in sockets]
    finally:
        await close_all(sockets)
    assert titles == ["Fan out"] * 4
    assert executions.count == 1


# -- the declarations, checked against the schema ----------------------------------------------


def reachable_fields(schema) -> set[tuple[GraphQLObjectType, str]]:
    """Every (object type, field) a subscription can select: from the Subscription root
    through every field's type, interfaces and unions expanded to their object types."""
    graphql_schema = schema._schema
    found: set[tuple[GraphQLObjectType, str]] = set()
    seen: set[str] = set()
    todo = [graphql_schema.subscription_type]
    while todo:
        named = todo.pop()
        if named.name in seen or not hasattr(named, "fields"):
            continue
        seen.add(named.name)
        if is_abstract_type(named):
            todo.extend(graphql_schema.get_possible_types(named))
            continue
        for name, field in named.fields.items():
            found.add((named, name))
            todo.append(get_named_type(field.type))
    return found


def undeclared(schema) -> list[str]:
    return sorted(
        f"{t.name}.{name} (declare {sharing.declared_at(t, name)})"
        for t, name in reachable_fields(schema)
        if sharing.declared_at(t, name) not in sharing.DECLARED
    )


def test_every_field_a_subscription_can_reach_is_declared():
    fields = reachable_fields(app_schema)
    assert len(fields) > 300  # every event type, what they reach, and NORA's
    assert undeclared(app_schema) == []


def test_every_declaration_is_of_a_field_the_schema_has():
    used = {sharing.declared_at(t, name) for t, name in reachable_fields(app_schema)}
    assert sorted(set(sharing.DECLARED) - used) == []


def test_the_regression_fields_are_classified_as_they_must_be():
    graphql_schema = app_schema._schema
    cls = {f"{t}.{f}": sharing.field_depends(graphql_schema.type_map[t], f) for t, f in [
        ("Organization", "projects"), ("Organization", "members"), ("Project", "viewerRole"),
        ("Organization", "viewerRole"), ("Organization", "invites"), ("Organization", "apiKeys"),
        ("Task", "title"), ("TaskCreated", "actor"), ("MemberAdded", "user"),
    ]}
    assert cls == {
        "Organization.projects": sharing.VIEWER, "Organization.members": sharing.VIEWER,
        "Project.viewerRole": sharing.ROLES, "Organization.viewerRole": sharing.ROLES,
        "Organization.invites": sharing.ROLES, "Organization.apiKeys": sharing.ROLES,
        "Task.title": sharing.EVENT, "TaskCreated.actor": sharing.EVENT, "MemberAdded.user": sharing.EVENT,
    }


@strawberry.type
class TaskCreatedWithNote(TaskCreated):
    """An event type added later: one new field, one override of an inherited field."""

    @strawberry.field
    def note(self) -> str:
        return ""

    @strawberry.field
    async def actor(self, info: Info) -> User | None:
        return None


def depends(schema, document: str):
    doc = parse(document)
    operation = next(d for d in doc.definitions if isinstance(d, OperationDefinitionNode))
    fragments = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}
    return sharing.operation_depends(schema._schema, operation, fragments)


def test_a_field_added_later_is_unshared_until_declared():
    extended = strawberry.Schema(
        query=Query,
        subscription=Subscription,
        types=[*EVENT_TYPES.values(), ResyncRequired, *NORA_EVENT_TYPES.values(), NoraResyncRequired,
               TaskCreatedWithNote],
    )
    assert undeclared(extended) == [
        "TaskCreatedWithNote.actor (declare TaskCreatedWithNote.actor)",
        "TaskCreatedWithNote.note (declare TaskCreatedWithNote.note)",
    ]
    board = 'subscription { boardEvents(projectId: "x") { %s } }'
    assert depends(extended, board % "... on TaskCreatedWithNote { note }") is sharing.VIEWER
    # Inherited declared fields stay declared...
    assert depends(extended, board % "... on TaskCreatedWithNote { seq task { title } }") is sharing.EVENT
    # ...and an interface selection counts every type it may turn out to be.
    assert depends(extended, board % "actor { name }") is sharing.VIEWER
    assert depends(app_schema, board % "actor { name }") is sharing.EVENT


def test_a_selection_is_classified_through_fragments_and_interfaces():
    board = 'subscription { boardEvents(projectId: "x") { %s } } %s'
    projects = "fragment P on Project { organization { projects { nodes { name } } } }"
    role = "fragment P on Project { viewerRole }"
    assert depends(app_schema, board % ("... on TaskCreated { task { project { ...P } } }", projects)) is sharing.VIEWER
    assert depends(app_schema, board % ("... on TaskCreated { task { project { ...P } } }", role)) is sharing.ROLES
    assert depends(app_schema, board % ("... on Node { id } ... on MemberEvent { user { name } }", "")) is sharing.EVENT
    # A fragment whose type the selection can never be is never executed.
    assert depends(app_schema, board % ("... on TaskDeleted { ... on TaskCreated { task { project { ...P } } } }",
                                        projects)) is sharing.EVENT
