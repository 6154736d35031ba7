"""Every mutation of the API with a valid input for an arranged organization, and a snapshot
of every table: shared by the role matrix and the tenant-isolation suite.

`arrange()` builds one organization with one object of every kind, by direct model writes
(cheap). `MUTATIONS[name].build(world)` is an input the world's owner may send and that
succeeds; the role matrix varies who sends it, the isolation suite swaps one ID for another
organization's.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tortoise import Tortoise

from models import (
    ApiKey,
    AuditEntry,
    Comment,
    CustomFieldDefinition,
    CustomFieldType,
    Invite,
    Label,
    Organization,
    OrganizationMember,
    OrgRole,
    Project,
    ProjectMember,
    ProjectRole,
    Task,
    TaskLabel,
    TaskStatus,
)
from resolvers.identity.auth import hash_secret, new_api_key
from resolvers.ids import to_global_id
from tests.conftest import Actor, Factory

_serial = itertools.count(1)

# The world's USER custom field: a task property that holds a User ID.
USER_FIELD = "reviewer"


@dataclass
class World:
    org: Organization
    owner: Actor  # org owner and explicit project owner
    co_owner: Actor  # a second owner of both, so that an owner may be demoted or removed
    member: Actor  # org member and project viewer: the target of role changes and removals
    newcomer: Actor  # org member outside the project: the one addProjectMember adds
    project: Project
    task: Task  # open, TODO, labelled, commented, parent of `subtask`
    neighbour: Task  # open, TODO, below `task`
    archived: Task
    subtask: Task
    label: Label
    task_label: TaskLabel
    field: CustomFieldDefinition  # USER type, key USER_FIELD
    comment: Comment
    invite: Invite  # pending, role MEMBER
    owner_invite: Invite  # pending, role OWNER
    api_key: ApiKey  # role MEMBER, created by `owner`
    audit_entry: AuditEntry  # written by `owner` through `api_key`
    org_rows: dict[str, OrganizationMember] = field(default_factory=dict)  # by actor name
    project_rows: dict[str, ProjectMember] = field(default_factory=dict)

    def users(self) -> dict[str, Actor]:
        return {
            "owner": self.owner,
            "co_owner": self.co_owner,
            "member": self.member,
            "newcomer": self.newcomer,
        }

    def global_ids(self) -> dict[str, str]:
        """Every object of the organization, by a readable name, as global IDs."""
        ids = {
            "organization": to_global_id("Organization", self.org.id),
            "project": to_global_id("Project", self.project.id),
            "task": to_global_id("Task", self.task.id),
            "neighbour": to_global_id("Task", self.neighbour.id),
            "archived": to_global_id("Task", self.archived.id),
            "subtask": to_global_id("Task", self.subtask.id),
            "comment": to_global_id("Comment", self.comment.id),
            "label": to_global_id("Label", self.label.id),
            "field": to_global_id("CustomFieldDefinition", self.field.id),
            "invite": to_global_id("Invite", self.invite.id),
            "owner_invite": to_global_id("Invite", self.owner_invite.id),
            "api_key": to_global_id("ApiKey", self.api_key.id),
            "audit_entry": to_global_id("AuditEntry", self.audit_entry.id),
        }
        for name, actor in self.users().items():
            ids[f"user:{name}"] = actor.gid
        for name, row in self.org_rows.items():
            ids[f"org_member:{name}"] = to_global_id("OrganizationMember", row.id)
        for name, row in self.project_rows.items():
            ids[f"project_member:{name}"] = to_global_id("ProjectMember", row.id)
        return ids


async def arrange(
    factory: Factory, slug: str | None = None, project_name: str = "Roadmap"
) -> World:
    n = next(_serial)
    owner = await factory.user("Owner")
    co_owner = await factory.user("CoOwner")
    member = await factory.user("Member")
    newcomer = await factory.user("Newcomer")
    org = await factory.org(owner, slug or f"world-{n}")
    await factory.org_member(org, co_owner, OrgRole.OWNER)
    await factory.org_member(org, member, OrgRole.MEMBER)
    await factory.org_member(org, newcomer, OrgRole.MEMBER)
    project = await factory.project(org, owner, project_name)
    await factory.project_member(project, co_owner, ProjectRole.OWNER)
    await factory.project_member(project, member, ProjectRole.VIEWER)
    label = await Label.create(project=project, name="urgent", color="#ff0000")
    user_field = await CustomFieldDefinition.create(
        project=project, key=USER_FIELD, name="Reviewer", type=CustomFieldType.USER
    )

    async def task(title: str, position: str, **extra) -> Task:
        return await Task.create(
            project=project, title=title, position=position, created_by=owner.user,
            status=TaskStatus.TODO, **extra,
        )

    main = await task("Ship it", "a0", assignee=member.user)
    neighbour = await task("Test it", "a1")
    archived = await task("Old idea", "a2", archived_at=datetime.now(UTC))
    subtask = await task("Write notes", "a3", parent=main)
    task_label = await TaskLabel.create(task=main, label=label)
    comment = await Comment.create(task=main, author=owner.user, body="on it")
    invite = await _invite(org, owner, f"invitee{n}@example.test", OrgRole.MEMBER)
    owner_invite = await _invite(org, owner, f"heir{n}@example.test", OrgRole.OWNER)
    _, prefix, key_hash = new_api_key()
    api_key = await ApiKey.create(
        organization=org, created_by=owner.user, name="deploys", prefix=prefix,
        key_hash=key_hash, role=OrgRole.MEMBER,
    )
    audit_entry = await AuditEntry.create(
        organization=org, actor=owner.user, api_key=api_key, action="task.update",
        resource_type="Task", resource_id=str(main.id), before={"title": "Ship"},
        after={"title": "Ship it"}, ip="198.51.100.1", request_id="arranged",
    )
    world = World(
        org=org, owner=owner, co_owner=co_owner, member=member, newcomer=newcomer,
        project=project, task=main, neighbour=neighbour, archived=archived, subtask=subtask,
        label=label, task_label=task_label, field=user_field, comment=comment, invite=invite,
        owner_invite=owner_invite, api_key=api_key, audit_entry=audit_entry,
    )
    for name, actor in world.users().items():
        world.org_rows[name] = await OrganizationMember.get(organization=org, user=actor.user)
        row = await ProjectMember.get_or_none(project=project, user=actor.user)
        if row is not None:
            world.project_rows[name] = row
    return world


async def _invite(org: Organization, inviter: Actor, email: str, role: OrgRole) -> Invite:
    return await Invite.create(
        organization=org, email=email, role=role, token_hash=hash_secret(f"token-{email}"),
        invited_by=inviter.user, expires_at=datetime.now(UTC) + timedelta(days=7),
    )


def gid(type_name: str, pk: int) -> str:
    return to_global_id(type_name, pk)


# -- the mutations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutation:
    name: str
    selection: str
    build: Callable[[World], dict]
    # Every input field that carries a global ID → the node type it expects. `labelIds` is a
    # list and `customProperties` holds the ID as the value of the world's USER field.
    id_fields: dict[str, str]
    scope: str  # "project" or "org"

    @property
    def document(self) -> str:
        input_type = self.name[0].upper() + self.name[1:] + "Input"
        return (
            f"mutation($input: {input_type}!) "
            f"{{ {self.name}(input: $input) {{ {self.selection} }} }}"
        )


def with_id(input: dict, field_name: str, global_id: str) -> dict:
    """`input` with `field_name` set to `global_id`, shaped as that field wants it."""
    value: object = global_id
    if field_name == "labelIds":
        value = [global_id]
    elif field_name == "customProperties":
        value = {USER_FIELD: global_id}
    return {**input, field_name: value}


_TASK = "task { id version }"
_MEMBER = "member { id role }"

_LIST = [
    Mutation(
        "createTask", _TASK,
        lambda w: {"projectId": gid("Project", w.project.id), "title": "New task"},
        {"projectId": "Project", "assigneeId": "User", "parentId": "Task", "labelIds": "Label",
         "customProperties": "User"},
        "project",
    ),
    Mutation(
        "updateTask", _TASK,
        lambda w: {"id": gid("Task", w.task.id), "title": "Renamed"},
        {"id": "Task", "assigneeId": "User", "parentId": "Task", "labelIds": "Label",
         "customProperties": "User"},
        "project",
    ),
    Mutation(
        "moveTask", _TASK,
        # Below its neighbour, in the same column.
        lambda w: {"id": gid("Task", w.task.id), "status": "TODO",
                   "afterId": gid("Task", w.neighbour.id)},
        {"id": "Task", "afterId": "Task", "beforeId": "Task"},
        "project",
    ),
    Mutation(
        "archiveTask", _TASK, lambda w: {"id": gid("Task", w.task.id)}, {"id": "Task"}, "project"
    ),
    Mutation(
        "unarchiveTask", _TASK, lambda w: {"id": gid("Task", w.archived.id)}, {"id": "Task"},
        "project",
    ),
    Mutation(
        "deleteTask", "deletedTaskId", lambda w: {"id": gid("Task", w.task.id)}, {"id": "Task"},
        "project",
    ),
    Mutation(
        "addComment", "comment { id } task { id }",
        lambda w: {"taskId": gid("Task", w.task.id), "body": "Looks good"},
        {"taskId": "Task"},
        "project",
    ),
    Mutation(
        "createLabel", "label { id }",
        lambda w: {"projectId": gid("Project", w.project.id), "name": "later", "color": "#00ff00"},
        {"projectId": "Project"},
        "project",
    ),
    Mutation(
        "defineCustomField", "field { id }",
        lambda w: {"projectId": gid("Project", w.project.id), "key": "estimate",
                   "name": "Estimate", "type": "NUMBER"},
        {"projectId": "Project"},
        "project",
    ),
    Mutation(
        "updateProject", "project { id name }",
        lambda w: {"projectId": gid("Project", w.project.id), "name": "Renamed project"},
        {"projectId": "Project"},
        "project",
    ),
    Mutation(
        "archiveProject", "project { id archivedAt }",
        lambda w: {"projectId": gid("Project", w.project.id)},
        {"projectId": "Project"},
        "project",
    ),
    Mutation(
        "addProjectMember", _MEMBER,
        lambda w: {"projectId": gid("Project", w.project.id), "userId": w.newcomer.gid,
                   "role": "EDITOR"},
        {"projectId": "Project", "userId": "User"},
        "project",
    ),
    Mutation(
        "updateProjectMemberRole", _MEMBER,
        lambda w: {"memberId": gid("ProjectMember", w.project_rows["member"].id), "role": "EDITOR"},
        {"memberId": "ProjectMember"},
        "project",
    ),
    Mutation(
        "removeProjectMember", "removedMemberId",
        lambda w: {"memberId": gid("ProjectMember", w.project_rows["member"].id)},
        {"memberId": "ProjectMember"},
        "project",
    ),
    Mutation(
        "createProject", "project { id }",
        lambda w: {"organizationId": gid("Organization", w.org.id), "name": "Side quest"},
        {"organizationId": "Organization"},
        "org",
    ),
    Mutation(
        "inviteMember", "invite { id role }",
        lambda w: {"organizationId": gid("Organization", w.org.id),
                   "email": f"new{w.org.id}@example.test", "role": "MEMBER"},
        {"organizationId": "Organization"},
        "org",
    ),
    Mutation(
        "updateMemberRole", _MEMBER,
        lambda w: {"memberId": gid("OrganizationMember", w.org_rows["member"].id), "role": "ADMIN"},
        {"memberId": "OrganizationMember"},
        "org",
    ),
    Mutation(
        "removeMember", "removedMemberId",
        lambda w: {"memberId": gid("OrganizationMember", w.org_rows["member"].id)},
        {"memberId": "OrganizationMember"},
        "org",
    ),
    Mutation(
        "createApiKey", "apiKey { id role }",
        lambda w: {"organizationId": gid("Organization", w.org.id), "name": "ci",
                   "role": "MEMBER"},
        {"organizationId": "Organization"},
        "org",
    ),
    Mutation(
        "revokeApiKey", "apiKey { id revokedAt }",
        lambda w: {"apiKeyId": gid("ApiKey", w.api_key.id)},
        {"apiKeyId": "ApiKey"},
        "org",
    ),
    Mutation(
        "setOrganizationPlan", "organization { id plan }",
        # The world's organization is on ENTERPRISE (tests/conftest.py Factory.org).
        lambda w: {"organizationId": gid("Organization", w.org.id), "plan": "PRO"},
        {"organizationId": "Organization"},
        "org",
    ),
    Mutation(
        "revokeInvite", "invite { id revokedAt }",
        lambda w: {"inviteId": gid("Invite", w.invite.id)},
        {"inviteId": "Invite"},
        "org",
    ),
]

MUTATIONS: dict[str, Mutation] = {m.name: m for m in _LIST}

# Mutations that take no organization-owned ID, and why they are not in MUTATIONS.
NOT_ID_BEARING = {
    "signUp": "no ID",
    "logIn": "no ID",
    "createOrganization": "no ID",
    "acceptInvite": "takes a secret token, not a global ID",
    "verifyEmail": "takes a secret token, not a global ID",
    "resendVerificationEmail": "no input: the viewer's own address",
    "requestPasswordReset": "takes an email address, not a global ID",
    "resetPassword": "takes a secret token, not a global ID",
}


# -- the database, every row of every table ---------------------------------------------------


# Written by authentication (resolvers/identity/key_usage.py) when a key is used, whatever the call
# then does: bookkeeping of the credential, not a write of the call under test.
_NOT_WRITES_OF_THE_CALL = {"api_key": ("last_used_at",)}


async def db_snapshot() -> dict[str, dict]:
    """table → {pk: row}: every column of every row, so inserts, deletes and updates show
    (but for _NOT_WRITES_OF_THE_CALL)."""
    state = {}
    for model in Tortoise.apps.get_models_iterable():
        rows = await model.all().values()
        for column in _NOT_WRITES_OF_THE_CALL.get(model._meta.db_table, ()):
            for row in rows:
                row.pop(column)
        state[model._meta.db_table] = {row[model._meta.pk_attr]: row for row in rows}
    return state


def db_changes(before: dict, after: dict, ignore: dict[str, set[str]] | None = None) -> dict:
    """What changed, per table: {"inserted": count, "updated": [pks], "deleted": [pks]}.

    `ignore` names columns whose change alone does not count (e.g. a counter).
    """
    ignore = ignore or {}
    changes = {}
    for table in sorted(set(before) | set(after)):
        old, new = before.get(table, {}), after.get(table, {})
        skip = ignore.get(table, set())
        entry = {}
        if inserted := len(new.keys() - old.keys()):
            entry["inserted"] = inserted
        updated = sorted(
            pk for pk in old.keys() & new.keys()
            if {k: v for k, v in old[pk].items() if k not in skip}
            != {k: v for k, v in new[pk].items() if k not in skip}
        )
        if updated:
            entry["updated"] = updated
        if deleted := sorted(old.keys() - new.keys()):
            entry["deleted"] = deleted
        if entry:
            changes[table] = entry
    return changes
