"""A value loaded once and awaited by several fields survives one of them being cancelled.

When a non-null field fails, graphql-core cancels the sibling fields still running (its
gather_with_cancel) and the error stops at the nearest nullable parent. A sibling that was
awaiting a loader's future cancelled that future itself, which every other field of the
request waiting for the same key shares: they then raised CancelledError, which is not an
error GraphQL handles, and the whole request died (found by the differential test of the
compiled executor, with both executors).
"""

from __future__ import annotations

import pytest

from models import Label, OrgRole, ProjectRole, Task
from tests.conftest import gid

pytestmark = pytest.mark.both_databases

QUERY = """
query($ids: [ID!]!) {
  nodes(ids: $ids) {
    __typename
    ... on Label { project { memberCount tasks(after: "not-a-cursor") { totalCount } } }
    ... on Project { memberCount }
    ... on Task { project { memberCount } }
  }
}
"""


@pytest.mark.parametrize("executor", [
    pytest.param("compiled", marks=pytest.mark.settings(compiled_execution=True)),
    pytest.param("graphql-core", marks=pytest.mark.settings(compiled_execution=False)),
])
async def test_a_failing_sibling_does_not_cancel_a_shared_load(gql, factory, executor):
    owner = await factory.user()
    org = await factory.org(owner)
    project = await factory.project(org, owner)
    other = await factory.user()
    await factory.org_member(org, other, OrgRole.MEMBER)
    await factory.project_member(project, other, ProjectRole.VIEWER)
    label = await Label.create(project=project, name="bug", color="#d73a4a")
    task = await Task.create(project=project, title="t", position="a0", created_by=owner.user)
    ids = [gid("Label", label.id), gid("Project", project.id), gid("Task", task.id)]
    body = await gql.raw(QUERY, {"ids": ids}, token=owner.token)
    assert body["data"]["nodes"][0] is None
    assert body["data"]["nodes"][1] == {"__typename": "Project", "memberCount": 2}
    assert body["data"]["nodes"][2] == {"__typename": "Task", "project": {"memberCount": 2}}
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["nodes", 0, "project", "tasks"], "BAD_USER_INPUT")
    ]
