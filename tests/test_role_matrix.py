"""Who may do what: every mutation against every role, over HTTP.

The tables below are the rules, readable as documentation: each mutation (or a variant of it
that touches ownership) maps to the least role allowed to run it. Every cell runs the mutation
in a freshly arranged organization (tests/api_catalog.py) and checks, for an allowed cell, the
exact rows it changed plus its audit entry and board event; for a denied one, FORBIDDEN and
not a single row changed anywhere (every table, audit log and event log included).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from models import AuditEntry, BoardEvent, OrgRole, ProjectRole
from resolvers.access import OrgPermission, Permission
from resolvers.ids import parse_global_id
from schema.permissions import declared
from schema.root import schema
from tests.api_catalog import MUTATIONS, World, arrange, db_changes, db_snapshot, gid
from tests.membership_helpers import make_key

# -- the rules ---------------------------------------------------------------------------------

PROJECT_ROLES = ["viewer", "editor", "admin", "owner"]


def _declared(kind: type) -> dict[str, str]:
    """Mutation → least role, as declared where the mutation is defined (schema/permissions.py)
    and written into its description."""
    rules = {}
    for field in schema.get_type_by_name("Mutation").fields:
        requires = declared(field)
        if requires is not None and isinstance(requires.right, kind):
            rules[schema.config.name_converter.get_graphql_name(field)] = requires.least_role.value
    return rules


# Covered by their own suites rather than this matrix: members are the least org role, so the
# matrix would only repeat tests/test_nora_*.py.
NOT_IN_MATRIX = {"startNoraConversation"}

# Project-scoped mutation → least project role allowed: each mutation's declaration, plus the
# ownership rules their declarations state in words ("only project owners ...").
PROJECT_RULES = _declared(Permission) | {
    # Only project owners make, change or remove project owners.
    "addProjectMember(role: OWNER)": "owner",
    "updateProjectMemberRole(role: OWNER)": "owner",
    "updateProjectMemberRole(of an owner)": "owner",
    "removeProjectMember(of an owner)": "owner",
}

# Org owners and admins hold a project role in every project of their organization without
# an explicit membership; a plain org member holds none (the project is invisible to them).
IMPLIED_PROJECT_ROLE = {"owner": "owner", "admin": "admin", "member": None}

ORG_ROLES = ["member", "admin", "owner"]

# Organization-scoped mutation → least organization role allowed (declared), plus the rules
# their declarations state in words.
ORG_RULES = {k: v for k, v in _declared(OrgPermission).items() if k not in NOT_IN_MATRIX} | {
    "createApiKey(role: ADMIN)": "admin",
    # Only org owners make, change or remove owners; a key's role cannot exceed its creator's.
    "inviteMember(role: OWNER)": "owner",
    "updateMemberRole(role: OWNER)": "owner",
    "updateMemberRole(of an owner)": "owner",
    "removeMember(of an owner)": "owner",
    "revokeInvite(of an OWNER invite)": "owner",
    "createApiKey(role: OWNER)": "owner",
}

# API keys act as their creator with the org role capped at the key's role, and cannot mint
# keys (a leaked key must not outlive its revocation).
KEYS_NEVER_ALLOWED = {"createApiKey", "createApiKey(role: ADMIN)", "createApiKey(role: OWNER)"}


# -- the cases: a mutation and the input that exercises its rule -----------------------------


def _variant(base: str, **changes: Callable[[World], object]) -> tuple[str, Callable]:
    def build(w: World) -> dict:
        return MUTATIONS[base].build(w) | {k: f(w) for k, f in changes.items()}

    return base, build


CASES: dict[str, tuple[str, Callable[[World], dict]]] = {
    name: (name, m.build) for name, m in MUTATIONS.items()
} | {
    "addProjectMember(role: OWNER)": _variant("addProjectMember", role=lambda w: "OWNER"),
    "updateProjectMemberRole(role: OWNER)": _variant(
        "updateProjectMemberRole", role=lambda w: "OWNER"
    ),
    "updateProjectMemberRole(of an owner)": _variant(
        "updateProjectMemberRole",
        memberId=lambda w: gid("ProjectMember", w.project_rows["co_owner"].id),
        role=lambda w: "ADMIN",
    ),
    "removeProjectMember(of an owner)": _variant(
        "removeProjectMember",
        memberId=lambda w: gid("ProjectMember", w.project_rows["co_owner"].id),
    ),
    "inviteMember(role: OWNER)": _variant("inviteMember", role=lambda w: "OWNER"),
    "updateMemberRole(role: OWNER)": _variant("updateMemberRole", role=lambda w: "OWNER"),
    "updateMemberRole(of an owner)": _variant(
        "updateMemberRole",
        memberId=lambda w: gid("OrganizationMember", w.org_rows["co_owner"].id),
        role=lambda w: "ADMIN",
    ),
    "removeMember(of an owner)": _variant(
        "removeMember",
        memberId=lambda w: gid("OrganizationMember", w.org_rows["co_owner"].id),
    ),
    "createApiKey(role: ADMIN)": _variant("createApiKey", role=lambda w: "ADMIN"),
    "createApiKey(role: OWNER)": _variant("createApiKey", role=lambda w: "OWNER"),
    "revokeInvite(of an OWNER invite)": _variant(
        "revokeInvite", inviteId=lambda w: gid("Invite", w.owner_invite.id)
    ),
}

# What an allowed call writes: (audit action, board event type or None, changed rows).
# Every allowed call also adds exactly one audit entry, and one board event when it has a type.
_ins = {"inserted": 1}
EFFECTS: dict[str, tuple[str, str | None, Callable[[World], dict]]] = {
    "createTask": ("task.create", "TaskCreated", lambda w: {"task": _ins}),
    "updateTask": ("task.update", "TaskUpdated", lambda w: {"task": {"updated": [w.task.id]}}),
    "moveTask": ("task.move", "TaskMoved", lambda w: {"task": {"updated": [w.task.id]}}),
    "archiveTask": ("task.archive", "TaskArchived", lambda w: {"task": {"updated": [w.task.id]}}),
    "unarchiveTask": (
        "task.unarchive", "TaskUnarchived", lambda w: {"task": {"updated": [w.archived.id]}}
    ),
    "deleteTask": (
        "task.delete",
        "TaskDeleted",
        lambda w: {
            # The subtask loses its parent (and its version moves on).
            "task": {"updated": [w.subtask.id], "deleted": [w.task.id]},
            "task_comment": {"deleted": [w.comment.id]},
            "task_label": {"deleted": [w.task_label.id]},
        },
    ),
    "addComment": ("comment.create", "CommentAdded", lambda w: {"task_comment": _ins}),
    "createLabel": ("label.create", "LabelCreated", lambda w: {"label": _ins}),
    "defineCustomField": (
        "custom_field.create", "CustomFieldDefined", lambda w: {"custom_field_definition": _ins}
    ),
    "updateProject": (
        "project.update", "ProjectUpdated", lambda w: {"project": {"updated": [w.project.id]}}
    ),
    "archiveProject": (
        "project.archive", "ProjectArchived", lambda w: {"project": {"updated": [w.project.id]}}
    ),
    "addProjectMember": ("project_member.add", "MemberAdded", lambda w: {"project_member": _ins}),
    "updateProjectMemberRole": (
        "project_member.update_role",
        "MemberRoleChanged",
        lambda w: {"project_member": {"updated": [w.project_rows["member"].id]}},
    ),
    "updateProjectMemberRole(of an owner)": (
        "project_member.update_role",
        "MemberRoleChanged",
        lambda w: {"project_member": {"updated": [w.project_rows["co_owner"].id]}},
    ),
    "removeProjectMember": (
        "project_member.remove",
        "MemberRemoved",
        lambda w: {"project_member": {"deleted": [w.project_rows["member"].id]}},
    ),
    "removeProjectMember(of an owner)": (
        "project_member.remove",
        "MemberRemoved",
        lambda w: {"project_member": {"deleted": [w.project_rows["co_owner"].id]}},
    ),
    # The creator becomes the new project's owner; nothing is on a board yet.
    "createProject": ("project.create", None, lambda w: {"project": _ins, "project_member": _ins}),
    # The invitation is emailed: one message queued in the outbox with the invite.
    "inviteMember": ("invite.create", None, lambda w: {"invite": _ins, "email_outbox": _ins}),
    "updateMemberRole": (
        "member.update_role",
        None,
        lambda w: {"organization_member": {"updated": [w.org_rows["member"].id]}},
    ),
    "updateMemberRole(of an owner)": (
        "member.update_role",
        None,
        lambda w: {"organization_member": {"updated": [w.org_rows["co_owner"].id]}},
    ),
    # Removal from the org takes the person's project memberships with it.
    "removeMember": (
        "member.remove",
        "MemberRemoved",
        lambda w: {
            "organization_member": {"deleted": [w.org_rows["member"].id]},
            "project_member": {"deleted": [w.project_rows["member"].id]},
        },
    ),
    "removeMember(of an owner)": (
        "member.remove",
        "MemberRemoved",
        lambda w: {
            "organization_member": {"deleted": [w.org_rows["co_owner"].id]},
            "project_member": {"deleted": [w.project_rows["co_owner"].id]},
        },
    ),
    "createApiKey": ("api_key.create", None, lambda w: {"api_key": _ins}),
    "revokeApiKey": ("api_key.revoke", None, lambda w: {"api_key": {"updated": [w.api_key.id]}}),
    "revokeInvite": ("invite.revoke", None, lambda w: {"invite": {"updated": [w.invite.id]}}),
    "setOrganizationPlan": (
        "organization.set_plan", None, lambda w: {"organization": {"updated": [w.org.id]}}
    ),
    "revokeInvite(of an OWNER invite)": (
        "invite.revoke", None, lambda w: {"invite": {"updated": [w.owner_invite.id]}}
    ),
}
# A variant without an entry of its own writes what its base mutation writes.
for _key, (_base, _) in CASES.items():
    EFFECTS.setdefault(_key, EFFECTS[_base])

# The event counter on the project row moves with every board event, which is checked as such.
_IGNORED_COLUMNS = {"project": {"event_seq"}}


def _allowed(role: str | None, least: str, order: list[str]) -> bool:
    return role is not None and order.index(role) >= order.index(least)


# -- running one cell --------------------------------------------------------------------------


async def run_cell(
    gql, world: World, case: str, token: str, expect: str, actor_id: int, api_key_id=None
) -> list[str]:
    """Run `case` with `token`; return what differs from `expect` ("allowed" or a code)."""
    base, build = CASES[case]
    mutation = MUTATIONS[base]
    before = await db_snapshot()
    body = await gql.raw(mutation.document, {"input": build(world)}, token=token)
    after = await db_snapshot()
    changes = db_changes(before, after, _IGNORED_COLUMNS)
    problems = []
    if expect != "allowed":
        errors = body.get("errors") or [{}]
        code = errors[0].get("extensions", {}).get("code")
        if code != expect or body.get("data"):
            problems.append(f"{case}: expected {expect}, got {body}")
        if changes:
            problems.append(f"{case}: denied, yet rows changed: {changes}")
        return problems
    if body.get("errors"):
        return [f"{case}: expected success, got {body['errors']}"]
    action, event_type, rows = EFFECTS[case]
    expected = rows(world) | {"audit_entry": _ins}
    if event_type:
        expected["board_event"] = _ins
    if changes != dict(sorted(expected.items())):
        problems.append(f"{case}: rows changed {changes}, expected {expected}")
    audit = await AuditEntry.filter(id__in=_new(before, after, "audit_entry")).first()
    if audit is None or (audit.action, audit.actor_id, audit.api_key_id) != (
        action, actor_id, api_key_id
    ):
        got = audit and (audit.action, audit.actor_id, audit.api_key_id)
        problems.append(f"{case}: audit {got}, expected {(action, actor_id, api_key_id)}")
    if event_type:
        event = await BoardEvent.filter(id__in=_new(before, after, "board_event")).first()
        if event is None or (event.type, event.project_id, event.actor_id) != (
            event_type, world.project.id, actor_id
        ):
            got = event and (event.type, event.project_id, event.actor_id)
            problems.append(f"{case}: event {got}, expected {event_type} on the project")
    return problems


def _new(before: dict, after: dict, table: str) -> list:
    return list(after[table].keys() - before[table].keys()) or [0]


async def _actor(factory, world: World, org_role: OrgRole, project_role: ProjectRole | None):
    actor = await factory.user("Actor")
    await factory.org_member(world.org, actor, org_role)
    if project_role is not None:
        await factory.project_member(world.project, actor, project_role)
    return actor


def _cells(rules: dict, roles: list[str]) -> list:
    return [pytest.param(case, role, id=f"{case}-{role}") for case in rules for role in roles]


# -- project-scoped mutations × project roles ------------------------------------------------

PROJECT_ACTORS = {
    "viewer": (OrgRole.MEMBER, ProjectRole.VIEWER),
    "editor": (OrgRole.MEMBER, ProjectRole.EDITOR),
    "admin": (OrgRole.MEMBER, ProjectRole.ADMIN),
    "owner": (OrgRole.MEMBER, ProjectRole.OWNER),
    "org admin": (OrgRole.ADMIN, None),
    "org owner": (OrgRole.OWNER, None),
}


def _effective_project_role(actor: str) -> str:
    if actor.startswith("org "):
        return IMPLIED_PROJECT_ROLE[actor.removeprefix("org ")]
    return actor


@pytest.mark.parametrize("case,actor_kind", _cells(PROJECT_RULES, list(PROJECT_ACTORS)))
async def test_project_mutation_by_role(gql, factory, case, actor_kind):
    world = await arrange(factory)
    actor = await _actor(factory, world, *PROJECT_ACTORS[actor_kind])
    role = _effective_project_role(actor_kind)
    expect = "allowed" if _allowed(role, PROJECT_RULES[case], PROJECT_ROLES) else "FORBIDDEN"
    assert await run_cell(gql, world, case, actor.token, expect, actor.user.id) == []


@pytest.mark.parametrize("case", [c for c in PROJECT_RULES if c in MUTATIONS])
async def test_org_member_outside_the_project_gets_not_found(gql, factory, case):
    """The project is invisible to an org member without membership: NOT_FOUND, not FORBIDDEN."""
    world = await arrange(factory)
    actor = await _actor(factory, world, OrgRole.MEMBER, None)
    assert await run_cell(gql, world, case, actor.token, "NOT_FOUND", actor.user.id) == []
    # ...word for word what an ID that never existed gets.
    mutation = MUTATIONS[case]
    target = next(iter(mutation.id_fields))
    real = mutation.build(world)
    made_up = real | {target: gid(parse_global_id(real[target])[0], 987_654)}
    seen = await gql.error(mutation.document, {"input": real}, actor.token)
    missing = await gql.error(mutation.document, {"input": made_up}, actor.token)
    assert seen == missing


# -- organization-scoped mutations × org roles -----------------------------------------------


@pytest.mark.parametrize("case,role", _cells(ORG_RULES, ORG_ROLES))
async def test_org_mutation_by_role(gql, factory, case, role):
    world = await arrange(factory)
    actor = await _actor(factory, world, OrgRole(role), None)
    expect = "allowed" if _allowed(role, ORG_RULES[case], ORG_ROLES) else "FORBIDDEN"
    assert await run_cell(gql, world, case, actor.token, expect, actor.user.id) == []


def test_the_tables_cover_every_mutation_with_an_org_owned_id():
    scopes = {name: m.scope for name, m in MUTATIONS.items()}
    assert {c for c in PROJECT_RULES if c in MUTATIONS} == {
        n for n, s in scopes.items() if s == "project"
    }
    assert {c for c in ORG_RULES if c in MUTATIONS} == {n for n, s in scopes.items() if s == "org"}
    assert set(PROJECT_RULES) | set(ORG_RULES) == set(CASES)


# -- API keys ----------------------------------------------------------------------------------


def _key_expectation(case: str, key_role: str) -> str:
    if case in PROJECT_RULES:
        implied = IMPLIED_PROJECT_ROLE[key_role]
        if implied is None:
            return "NOT_FOUND"
        return "allowed" if _allowed(implied, PROJECT_RULES[case], PROJECT_ROLES) else "FORBIDDEN"
    if case in KEYS_NEVER_ALLOWED:
        return "FORBIDDEN"
    return "allowed" if _allowed(key_role, ORG_RULES[case], ORG_ROLES) else "FORBIDDEN"


@pytest.mark.parametrize("key_role", ORG_ROLES)
async def test_an_owners_api_key_acts_at_the_keys_role(gql, factory, key_role):
    """A key created by an org owner (no project memberships) acts as an org member of the
    key's role: a member key sees no project and manages nothing; an admin key is an org
    admin (project admin everywhere); none may mint keys. Every case, each on a fresh world."""
    problems = []
    for case in [*PROJECT_RULES, *ORG_RULES]:
        world = await arrange(factory)
        boss = await _actor(factory, world, OrgRole.OWNER, None)
        key, secret = await make_key(world.org, boss, OrgRole(key_role))
        expect = _key_expectation(case, key_role)
        problems += await run_cell(gql, world, case, secret, expect, boss.user.id, key.id)
    assert problems == []


async def test_a_key_keeps_its_creators_explicit_project_role(gql, factory):
    """A key acts as its creator: a member key of a project editor edits tasks there, and is
    still refused what an editor is refused."""
    world = await arrange(factory)
    editor = await _actor(factory, world, OrgRole.MEMBER, ProjectRole.EDITOR)
    key, secret = await make_key(world.org, editor, OrgRole.MEMBER)
    assert await run_cell(gql, world, "updateTask", secret, "allowed", editor.user.id, key.id) == []
    assert await run_cell(gql, world, "deleteTask", secret, "FORBIDDEN", editor.user.id) == []


async def test_a_member_key_cannot_remove_its_owner_creator(gql, factory):
    """Removing an owner is an owner's act: a key capped at member may not do it, not even to
    the person it acts for (joining an org needs the person too, see acceptInvite)."""
    world = await arrange(factory)
    _, secret = await make_key(world.org, world.owner, OrgRole.MEMBER)
    mutation = MUTATIONS["removeMember"]
    own_row = gid("OrganizationMember", world.org_rows["owner"].id)
    before = await db_snapshot()
    error = await gql.error(mutation.document, {"input": {"memberId": own_row}}, secret)
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert db_changes(before, await db_snapshot()) == {}


def test_every_right_is_its_own_member():
    """Rights held by the same role used to alias each other (list(Permission) had 4 members
    and Permission.COMMENT.name was "WRITE_TASKS")."""
    assert len(list(Permission)) == 8 and Permission.COMMENT.name == "COMMENT"
    assert len(list(OrgPermission)) == 8 and OrgPermission.USE_NORA.name == "USE_NORA"
    assert OrgPermission.READ_AUDIT_LOG.role is OrgPermission.MANAGE_MEMBERS.role
    assert Permission.COMMENT.role is Permission.WRITE_TASKS.role


def test_every_mutation_declares_who_may_call_it():
    """Each mutation's rule is declared once where it is defined and its description says it."""
    for field in schema.get_type_by_name("Mutation").fields:
        requires = declared(field)
        assert requires is not None, field.python_name
        assert field.description.endswith(requires.sentence()), field.python_name


def test_the_matrix_covers_every_declared_role():
    declared_names = set(_declared(Permission)) | set(_declared(OrgPermission))
    assert declared_names - NOT_IN_MATRIX <= set(PROJECT_RULES) | set(ORG_RULES)
    assert declared_names - NOT_IN_MATRIX <= set(MUTATIONS)
