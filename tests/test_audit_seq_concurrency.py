"""The audit seq under concurrent writers of one organization: dense (1..N, each once, in
commit order) whatever the mix of writes, and no two writes wait for each other crosswise
(a deadlock would surface as an INTERNAL error on PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest

from models import AuditEntry, Organization, OrganizationMember, OrgRole, ProjectRole
from tests.conftest import gid

CREATE = "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }"
ROLE = "mutation($i: UpdateMemberRoleInput!) { updateMemberRole(input: $i) { member { role } } }"
REMOVE = "mutation($i: RemoveMemberInput!) { removeMember(input: $i) { removedMemberId } }"
INVITE = "mutation($i: InviteMemberInput!) { inviteMember(input: $i) { invite { id } } }"


@pytest.mark.both_databases
async def test_concurrent_writes_of_one_organization_get_dense_seqs_and_never_deadlock(gql, factory):
    owner = await factory.user("Owner")
    org = await factory.org(owner)
    projects = [await factory.project(org, owner, f"P{i}") for i in range(3)]
    # Owners with a membership in every project: removing or demoting one locks the
    # organization (last-owner rule) and appends board events on every project.
    others = []
    for i in range(4):
        other = await factory.user(f"Co{i}")
        await factory.org_member(org, other, OrgRole.OWNER)
        for project in projects:
            await factory.project_member(project, other, ProjectRole.EDITOR)
        others.append(other)
    rows = {o.user.id: await OrganizationMember.get(organization=org, user=o.user) for o in others}

    def task_writes(project, n):
        return [gql.raw(CREATE, {"i": {"projectId": gid("Project", project.id), "title": f"t{k}"}},
                        token=owner.token) for k in range(n)]

    member_writes = [
        gql.raw(REMOVE, {"i": {"memberId": gid("OrganizationMember", rows[others[0].user.id].id)}}, token=owner.token),
        gql.raw(ROLE, {"i": {"memberId": gid("OrganizationMember", rows[others[1].user.id].id), "role": "MEMBER"}},
                token=owner.token),
        gql.raw(REMOVE, {"i": {"memberId": gid("OrganizationMember", rows[others[2].user.id].id)}}, token=owner.token),
        gql.raw(INVITE, {"i": {"organizationId": gid("Organization", org.id), "email": "x@example.test",
                               "role": "MEMBER"}}, token=owner.token),
    ]
    calls = [*member_writes]
    for project in projects:
        calls += task_writes(project, 8)
    results = await asyncio.gather(*calls)
    errors = [r["errors"] for r in results if r.get("errors")]
    assert errors == []
    seqs = await AuditEntry.filter(organization_id=org.id).order_by("seq").values_list("seq", flat=True)
    assert seqs == list(range(1, len(calls) + 1))
    assert (await Organization.get(id=org.id)).audit_seq == len(calls)
    # Commit order: a later seq never has an earlier id among entries of one writer's kind
    # (ids are taken by the INSERT right after the seq, under the same lock).
    ordered = await AuditEntry.filter(organization_id=org.id).order_by("seq").values_list("id", flat=True)
    assert ordered == sorted(ordered)
