"""The operations that matter most never leave the compiled executor (schema/execution): the
board, the task views, `nodes`, and the selections of subscription events (one per event per
subscriber). Anything that falls back to graphql-core is counted with its reason."""

from __future__ import annotations

import asyncio

from models import Comment, Label, Task
from schema import execution
from tests.conftest import gid
from tests.wsclient import GraphQLWS

BOARD = """query Board($id: ID!) { project(id: $id) { id name board { columns { status
  tasks(first: 100) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } }
    nodes { id title status priority position dueDate version customProperties commentCount
      subtaskCount assignee { id name } labels { id name color } } } } } } }"""
TASK = """query TaskView($id: ID!) { task(id: $id) { id title description status priority
  project { id name viewerRole } assignee { name } createdBy { name } parent { id }
  labels { name } subtasks(first: 20) { totalCount nodes { id title } }
  comments(first: 20) { totalCount nodes { id body author { name } createdAt } } } }"""
NODES = """query Nodes($ids: [ID!]!) { nodes(ids: $ids) { id __typename
  ... on Task { title } ... on Label { name } ... on Project { name } ... on Comment { body } } }"""
EVENTS = """subscription Events($p: ID!) { boardEvents(projectId: $p) { __typename seq occurredAt
  actor { name } ... on TaskCreated { task { id title status labels { name } } }
  ... on CommentAdded { taskId comment { body author { name } } } } }"""
CREATE = "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }"
COMMENT = "mutation($i: AddCommentInput!) { addComment(input: $i) { comment { id } } }"


async def test_board_task_views_nodes_and_events_run_compiled(live, gql, factory):
    owner = await factory.user("Olga")
    org = await factory.org(owner)
    project = await factory.project(org, owner, "Board")
    label = await Label.create(project=project, name="bug", color="#d73a4a")
    parent = await Task.create(project=project, title="Parent", position="a0", created_by=owner.user)
    child = await Task.create(project=project, title="Child", position="a1", created_by=owner.user,
                              parent=parent, assignee=owner.user)
    comment = await Comment.create(task=parent, author=owner.user, body="Looks good")
    before = execution.stats()

    board = await gql.ok(BOARD, {"id": gid("Project", project.id)}, token=owner.token)
    assert board["project"]["board"]["columns"][0]["tasks"]["totalCount"] == 2
    view = await gql.ok(TASK, {"id": gid("Task", parent.id)}, token=owner.token)
    assert view["task"]["subtasks"]["nodes"] == [{"id": gid("Task", child.id), "title": "Child"}]
    ids = [gid("Task", child.id), gid("Label", label.id), gid("Project", project.id), gid("Comment", comment.id)]
    nodes = await gql.ok(NODES, {"ids": ids}, token=owner.token)
    assert [n["__typename"] for n in nodes["nodes"]] == ["Task", "Label", "Project", "Comment"]

    ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=owner.token)
    try:
        await ws.subscribe(EVENTS, {"p": gid("Project", project.id)})
        await asyncio.sleep(0.1)  # the subscription reaches its broadcast subscribe
        created = await gql.ok(CREATE, {"i": {"projectId": gid("Project", project.id), "title": "Live",
                                              "labelIds": [gid("Label", label.id)]}}, token=owner.token)
        await gql.ok(COMMENT, {"i": {"taskId": created["createTask"]["task"]["id"], "body": "Hi"}},
                     token=owner.token)
        first = (await ws.next_data())["data"]["boardEvents"]
        second = (await ws.next_data())["data"]["boardEvents"]
    finally:
        await ws.close()
    assert first["task"]["labels"] == [{"name": "bug"}]
    assert second["comment"] == {"body": "Hi", "author": {"name": "Olga"}}

    after = execution.stats()
    assert after["fallback"] == before["fallback"], after["reasons"]
    # 3 queries, 2 mutations, 2 events (the subscription's start is graphql-core's subscribe).
    assert after["compiled"] - before["compiled"] >= 7
