"""SQL statements per request stay constant in the length of every list, on both databases.

Each test arranges a small and a large data set (bulk inserts, before counting starts), runs
the same query over each through the real ASGI app and asserts that both cost exactly the
pinned number of statements. A change that raises a number must change the test on purpose.

Every request begins with the same two statements:
  1. authentication: the token's user;
  2. the viewer's organization and project memberships (one UNION statement).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from fractional_indexing import generate_n_keys_between

from models import (
    ApiKey,
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
    User,
)
from tests.conftest import Actor, gid
from tests.querycount import count_statements

STATUSES = list(TaskStatus)
_batches = itertools.count(1)
COLUMN_PAGE = 100


async def _people(factory, owner: Actor, org: Organization, n: int) -> list[User]:
    """`n` users (the owner first), all members of `org`."""
    stamp = next(_batches)
    await User.bulk_create(
        [
            User(email=f"p{stamp}-{i}@example.test", name=f"Person {i}", password_hash="x")
            for i in range(n - 1)
        ]
    )
    others = await User.filter(email__startswith=f"p{stamp}-").order_by("id")
    await OrganizationMember.bulk_create(
        [OrganizationMember(organization=org, user=u, role=OrgRole.MEMBER) for u in others]
    )
    return [owner.user, *others]


async def _board(project: Project, people: list[User], n_tasks: int) -> list[Task]:
    """`n_tasks` open tasks spread over the five columns: every 5th a subtask of the one before,
    0-3 labels and comments each, assignees among `people` (some unassigned), a custom property."""
    await CustomFieldDefinition.create(
        project=project, key="estimate", name="Estimate", type=CustomFieldType.NUMBER
    )
    await Label.bulk_create(
        [Label(project=project, name=f"label-{i}", color="#1f6feb") for i in range(4)]
    )
    labels = await Label.filter(project=project).order_by("id")
    positions = generate_n_keys_between(None, None, n_tasks)
    parents = [i for i in range(n_tasks) if i % 5 != 4]
    children = [i for i in range(n_tasks) if i % 5 == 4]

    def task(i: int, parent_id: int | None = None) -> Task:
        return Task(
            project=project,
            title=f"Task {i}",
            status=STATUSES[i % 5],
            position=positions[i],
            assignee_id=None if i % 7 == 0 else people[i % len(people)].id,
            created_by_id=people[0].id,
            parent_id=parent_id,
            custom_properties={"estimate": i},
        )

    await Task.bulk_create([task(i) for i in parents])
    by_title = {t.title: t for t in await Task.filter(project=project)}
    await Task.bulk_create([task(i, by_title[f"Task {i - 1}"].id) for i in children])
    tasks = await Task.filter(project=project).order_by("id")
    index = {t.title: int(t.title.split()[1]) for t in tasks}
    await TaskLabel.bulk_create(
        [
            TaskLabel(task=t, label=labels[k])
            for t in tasks
            for k in range(index[t.title] % 4)
        ]
    )
    await Comment.bulk_create(
        [
            Comment(task=t, author=people[k % len(people)], body=f"c{k}")
            for t in tasks
            for k in range(index[t.title] % 4)
        ]
    )
    return tasks


BOARD = """
query($p: ID!, $first: Int) {
  project(id: $p) {
    name
    board {
      columns {
        status
        tasks(first: $first) {
          totalCount
          pageInfo { hasNextPage endCursor }
          nodes {
            id title position customProperties commentCount subtaskCount
            assignee { id name }
            labels { id name color }
          }
        }
      }
    }
  }
}
"""


async def _arrange_board(factory, n_tasks: int):
    owner = await factory.user()
    org = await factory.org(owner)
    project = await factory.project(org, owner)
    people = await _people(factory, owner, org, 20)
    await _board(project, people, n_tasks)
    return owner, project


async def _expected_column(project: Project, status: TaskStatus) -> list[dict]:
    """The column as the ORM sees it, one lookup at a time (slow, obviously right)."""
    rows = await Task.filter(
        project=project, status=status, archived_at__isnull=True
    ).order_by("position", "id")
    expected = []
    for t in rows:
        labels = await Label.filter(task_labels__task_id=t.id).order_by("name", "id")
        expected.append(
            {
                "id": gid("Task", t.id),
                "commentCount": await Comment.filter(task_id=t.id).count(),
                "subtaskCount": await Task.filter(parent_id=t.id, archived_at__isnull=True).count(),
                "assignee": t.assignee_id and gid("User", t.assignee_id),
                "labels": [gid("Label", label.id) for label in labels],
            }
        )
    return expected


def _seen(node: dict) -> dict:
    return {
        "id": node["id"],
        "commentCount": node["commentCount"],
        "subtaskCount": node["subtaskCount"],
        "assignee": node["assignee"] and node["assignee"]["id"],
        "labels": [label["id"] for label in node["labels"]],
    }


@pytest.mark.both_databases
async def test_board_costs_six_statements_for_10_or_500_tasks(gql, factory):
    small = await _arrange_board(factory, 10)
    large = await _arrange_board(factory, 500)
    counts = []
    for owner, project in (small, large):
        with count_statements() as log:
            data = await gql.ok(
                BOARD, {"p": gid("Project", project.id), "first": COLUMN_PAGE}, token=owner.token
            )
        counts.append(log.count)
        columns = data["project"]["board"]["columns"]
        for column, status in zip(columns, STATUSES):
            expected = await _expected_column(project, status)
            assert column["tasks"]["totalCount"] == len(expected)
            assert [_seen(n) for n in column["tasks"]["nodes"]] == expected[:COLUMN_PAGE]
            assert column["tasks"]["pageInfo"]["hasNextPage"] == (len(expected) > COLUMN_PAGE)
    # 1 user, 2 memberships, 3 the project, 4 every column's first page with totals, comment
    # and subtask counts (one windowed statement), 5 assignees, 6 labels (one JOIN).
    assert counts == [6, 6], log.report()


@pytest.mark.both_databases
async def test_board_page_continues_with_after_and_counts_stay_batched(gql, factory):
    owner, project = await _arrange_board(factory, 500)
    first = await gql.ok(BOARD, {"p": gid("Project", project.id), "first": 30}, token=owner.token)
    todo = first["project"]["board"]["columns"][0]["tasks"]
    assert todo["pageInfo"]["hasNextPage"] and len(todo["nodes"]) == 30
    query = """query($p: ID!, $after: String) { project(id: $p) { board { columns {
        tasks(first: 100, after: $after) { totalCount nodes { id commentCount } } } } } }"""
    with count_statements() as log:
        data = await gql.ok(
            query, {"p": gid("Project", project.id), "after": todo["pageInfo"]["endCursor"]},
            token=owner.token,
        )
    # A cursor makes each column query alone (5), but totals stay one grouped statement and
    # comment counts one batched statement: user, memberships, project, 5 pages, totals, counts.
    assert log.count == 10, log.report()
    rest = data["project"]["board"]["columns"][0]["tasks"]
    expected = await _expected_column(project, TaskStatus.TODO)
    assert [n["id"] for n in todo["nodes"] + rest["nodes"]] == [e["id"] for e in expected]
    assert [n["commentCount"] for n in rest["nodes"]] == [e["commentCount"] for e in expected[30:]]
    assert rest["totalCount"] == len(expected) == 100


ORG_PROJECTS = """
query($slug: String!) {
  organization(slug: $slug) {
    projects(first: 100) {
      totalCount
      nodes {
        id name taskCount memberCount
        members(first: 10) { totalCount nodes { role user { id name } } }
      }
    }
  }
}
"""


async def _arrange_projects(factory, n_projects: int):
    owner = await factory.user()
    org = await factory.org(owner)
    people = await _people(factory, owner, org, 6)
    await Project.bulk_create(
        [Project(organization=org, name=f"P{i:03d}", created_by=owner.user) for i in range(n_projects)]
    )
    projects = await Project.filter(organization=org).order_by("name")
    await ProjectMember.bulk_create(
        [
            ProjectMember(project=p, user=people[k], role=ProjectRole.EDITOR if k else ProjectRole.OWNER)
            for i, p in enumerate(projects)
            for k in range(1 + i % 4)
        ]
    )
    await Task.bulk_create(
        [
            Task(project=p, title="t", position=f"a{k}", created_by=owner.user)
            for i, p in enumerate(projects)
            for k in range(i % 3)
        ]
    )
    return owner, org, projects


@pytest.mark.both_databases
async def test_organization_projects_with_members_and_counts_for_3_or_60_projects(gql, factory):
    small = await _arrange_projects(factory, 3)
    large = await _arrange_projects(factory, 60)
    counts = []
    for owner, org, projects in (small, large):
        with count_statements() as log:
            data = await gql.ok(ORG_PROJECTS, {"slug": org.slug}, token=owner.token)
        counts.append(log.count)
        page = data["organization"]["projects"]
        assert page["totalCount"] == len(projects)
        for i, node in enumerate(page["nodes"]):
            assert node["name"] == f"P{i:03d}"
            assert node["taskCount"] == i % 3
            assert node["memberCount"] == node["members"]["totalCount"] == 1 + i % 4
            assert [m["role"] for m in node["members"]["nodes"]] == ["OWNER"] + ["EDITOR"] * (i % 4)
    # 1 user, 2 memberships, 3 the organization, 4 the projects page with its total, 5 task
    # counts, 6 member counts, 7 every project's members page with totals, 8 member users.
    assert counts == [8, 8], log.report()


TASK_COMMENTS = """
query($t: ID!) {
  task(id: $t) {
    title
    comments(first: 100) { totalCount nodes { id body author { id name } } }
  }
}
"""


async def _arrange_comments(factory, n_comments: int):
    owner = await factory.user()
    org = await factory.org(owner)
    project = await factory.project(org, owner)
    people = await _people(factory, owner, org, 20)
    task = await Task.create(project=project, title="t", position="a0", created_by=owner.user)
    await Comment.bulk_create(
        [Comment(task=task, author=people[i % 20], body=f"c{i}") for i in range(n_comments)]
    )
    return owner, task


@pytest.mark.both_databases
async def test_task_comments_with_authors_for_5_or_300_comments(gql, factory):
    small = await _arrange_comments(factory, 5)
    large = await _arrange_comments(factory, 300)
    counts = []
    for owner, task in (small, large):
        with count_statements() as log:
            data = await gql.ok(TASK_COMMENTS, {"t": gid("Task", task.id)}, token=owner.token)
        counts.append(log.count)
        comments = data["task"]["comments"]
        n = await Comment.filter(task=task).count()
        assert comments["totalCount"] == n
        assert [c["body"] for c in comments["nodes"]] == [f"c{i}" for i in range(min(n, 100))]
        assert all(c["author"]["name"] for c in comments["nodes"])
    # 1 user, 2 memberships, 3 the task (with its project), 4 the comments page with its
    # total, 5 authors.
    assert counts == [5, 5], log.report()


NODES = """
query($ids: [ID!]!) {
  nodes(ids: $ids) {
    id
    ... on Task { title commentCount assignee { name } labels { name } }
    ... on Comment { body author { name } }
    ... on User { name }
    ... on Project { name taskCount }
    ... on Label { name }
  }
}
"""


async def _arrange_nodes(factory, per_type: int) -> tuple[Actor, list[str]]:
    """`per_type` ids of each of five types, interleaved."""
    owner, project = await _arrange_board(factory, max(per_type, 10))
    others = [
        Project(organization_id=project.organization_id, name=f"N{i}", created_by=owner.user)
        for i in range(per_type - 1)
    ]
    await Project.bulk_create(others)
    projects = await Project.filter(organization_id=project.organization_id).order_by("id")
    tasks = await Task.filter(project=project).order_by("id").limit(per_type)
    comments = await Comment.filter(task__project=project).order_by("id").limit(per_type)
    labels = list(await Label.filter(project=project).order_by("id"))
    if len(labels) < per_type:
        await Label.bulk_create(
            [Label(project=project, name=f"x{i}", color="#000000") for i in range(per_type)]
        )
        labels = await Label.filter(project=project).order_by("id")
    users = await User.filter(org_memberships__organization_id=project.organization_id).order_by(
        "id"
    )
    groups = [
        [gid("Task", t.id) for t in tasks],
        [gid("Comment", c.id) for c in comments],
        [gid("User", u.id) for u in users[:per_type]],
        [gid("Project", p.id) for p in projects[:per_type]],
        [gid("Label", label.id) for label in labels[:per_type]],
    ]
    assert all(len(g) == per_type for g in groups)
    return owner, [g[i] for i in range(per_type) for g in groups]


@pytest.mark.both_databases
async def test_nodes_over_mixed_types_for_5_or_100_ids(gql, factory):
    # `nodes` takes at most 100 ids per call (resolvers/nodes.py), so the large set is 100.
    small = await _arrange_nodes(factory, 1)
    large = await _arrange_nodes(factory, 20)
    counts = []
    for owner, ids in (small, large):
        with count_statements() as log:
            data = await gql.ok(NODES, {"ids": ids}, token=owner.token)
        counts.append(log.count)
        assert [n["id"] for n in data["nodes"]] == ids
        assert all(n.get("title") or n.get("body") or n.get("name") for n in data["nodes"])
    # 1 user, 2 memberships, 3-7 one lookup per type (tasks, comments, users, projects,
    # labels), 8 comment counts, 9 assignees and comment authors, 10 task labels,
    # 11 task counts.
    assert counts == [11, 11], log.report()


NESTED = """
query {
  viewer {
    organizations {
      role
      organization {
        name
        projects {
          nodes {
            name
            board {
              columns {
                status
                tasks {
                  totalCount
                  nodes { title commentCount subtaskCount assignee { name } labels { name } }
                }
              }
            }
          }
        }
      }
    }
  }
}
"""


async def _arrange_nested(factory, n_orgs: int, n_projects: int, n_tasks: int):
    viewer = await factory.user()
    for _ in range(n_orgs):
        org = await factory.org(viewer)
        people = await _people(factory, viewer, org, 5)
        for _ in range(n_projects):
            project = await factory.project(org, viewer)
            await _board(project, people, n_tasks)
    return viewer


@pytest.mark.both_databases
# Every board of every project of every organization is what the default cost limit is there
# to refuse (about 3 million points as estimated); raised here to pin its statement count.
@pytest.mark.limits(max_cost=5_000_000)
async def test_viewer_organizations_projects_boards_nested(gql, factory):
    small = await _arrange_nested(factory, 1, 1, 5)
    large = await _arrange_nested(factory, 3, 4, 40)
    counts = []
    for viewer, n_boards, n_tasks in ((small, 1, 5), (large, 12, 40)):
        with count_statements() as log:
            data = await gql.ok(NESTED, token=viewer.token)
        counts.append(log.count)
        projects = [
            p for m in data["viewer"]["organizations"] for p in m["organization"]["projects"]["nodes"]
        ]
        assert len(projects) == n_boards
        for p in projects:
            columns = p["board"]["columns"]
            assert sum(c["tasks"]["totalCount"] for c in columns) == n_tasks
            assert sum(n["commentCount"] for c in columns for n in c["tasks"]["nodes"]) == sum(
                i % 4 for i in range(n_tasks)
            )
    # 1 user, 2 memberships, 3 the viewer's organization memberships, 4 their organizations,
    # 5 every organization's projects page, 6 every board's columns (one windowed statement
    # for all boards), 7 assignees, 8 labels.
    assert counts == [8, 8], log.report()


ORG_MEMBERS = """
query {
  viewer {
    organizations {
      organization {
        slug
        members { totalCount nodes { role user { name } } }
        invites { totalCount nodes { email } }
        apiKeys { totalCount nodes { name role } }
      }
    }
  }
}
"""


@pytest.mark.both_databases
async def test_viewer_organizations_members(gql, factory):
    async def arrange(n_orgs: int, n_people: int) -> Actor:
        viewer = await factory.user()
        for i in range(n_orgs):
            org = await factory.org(viewer)
            await _people(factory, viewer, org, n_people)
            await ApiKey.create(organization=org, created_by=viewer.user, name=f"key {i}",
                                prefix="pcg_x", key_hash=f"{org.id:064d}", role=OrgRole.ADMIN)
            await Invite.create(organization=org, email=f"new{i}@example.test", role=OrgRole.MEMBER,
                                token_hash=f"{org.id:064d}", invited_by=viewer.user,
                                expires_at=datetime.now(UTC) + timedelta(days=1))
        return viewer

    small, large = await arrange(1, 2), await arrange(6, 30)
    counts = []
    for viewer, n_orgs, n_people in ((small, 1, 2), (large, 6, 30)):
        with count_statements() as log:
            data = await gql.ok(ORG_MEMBERS, token=viewer.token)
        counts.append(log.count)
        orgs = data["viewer"]["organizations"]
        assert len(orgs) == n_orgs
        for m in orgs:
            members = m["organization"]["members"]
            assert members["totalCount"] == n_people == len(members["nodes"])
            assert m["organization"]["invites"]["totalCount"] == 1
            assert m["organization"]["apiKeys"]["nodes"][0]["role"] == "ADMIN"
    # 1 user, 2 memberships, 3 the viewer's organization memberships, 4 their organizations,
    # 5-7 every organization's first page of members, invites and API keys (one windowed
    # statement each, for all organizations), 8 the members' users.
    assert counts == [8, 8], log.report()


UPDATE_TWICE = """
mutation($a: UpdateTaskInput!, $b: UpdateTaskInput!) {
  a: updateTask(input: $a) { task { version assignee { id } labels { name } } }
  b: updateTask(input: $b) { task { version assignee { id } labels { name } } }
}
"""


@pytest.mark.both_databases
async def test_mutation_payload_never_shows_what_an_earlier_field_cached(gql, factory):
    owner, project = await _arrange_board(factory, 10)
    other = (await User.filter(org_memberships__organization_id=project.organization_id)
             .exclude(id=owner.user.id).order_by("id").first())
    await ProjectMember.create(project=project, user=other, role=ProjectRole.EDITOR)
    task = await Task.filter(project=project).order_by("id").first()
    first, second = await Label.filter(project=project).order_by("id").limit(2)
    data = await gql.ok(
        UPDATE_TWICE,
        {
            "a": {"id": gid("Task", task.id), "labelIds": [gid("Label", first.id)],
                  "assigneeId": gid("User", owner.user.id)},
            "b": {"id": gid("Task", task.id), "labelIds": [gid("Label", second.id)],
                  "assigneeId": gid("User", other.id)},
        },
        token=owner.token,
    )
    # `a` filled the labels and user loaders for this task; `b` must not be served from them.
    assert data["a"]["task"]["labels"] == [{"name": first.name}]
    assert data["a"]["task"]["assignee"] == {"id": gid("User", owner.user.id)}
    assert data["b"]["task"]["labels"] == [{"name": second.name}]
    assert data["b"]["task"]["assignee"] == {"id": gid("User", other.id)}
    assert data["b"]["task"]["version"] == data["a"]["task"]["version"] + 1
    assert await TaskLabel.filter(task=task).values_list("label_id", flat=True) == [second.id]


@pytest.mark.both_databases
async def test_comment_count_in_a_mutation_payload_is_fresh(gql, factory):
    owner, project = await _arrange_board(factory, 10)
    task = await Task.filter(project=project, title="Task 3").first()  # 3 comments
    query = """mutation($a: AddCommentInput!, $b: AddCommentInput!) {
        a: addComment(input: $a) { task { commentCount } }
        b: addComment(input: $b) { task { commentCount } } }"""
    i = {"taskId": gid("Task", task.id), "body": "more"}
    data = await gql.ok(query, {"a": i, "b": i}, token=owner.token)
    assert [data["a"]["task"]["commentCount"], data["b"]["task"]["commentCount"]] == [4, 5]
    assert await Comment.filter(task=task).count() == 5


DEEP = """query { viewer { organizations { organization { projects { nodes { board { columns {
  tasks { nodes { project { organization { projects { nodes { name } } } } } } } } } } } } } }"""


async def test_depth_limit_holds_on_every_request_with_the_validation_cache(gql, factory):
    # The depth rule is one class for the process so that validation results are cached;
    # a cached result must still carry the rejection.
    owner = await factory.user()
    for _ in range(2):
        error = await gql.error(DEEP, token=owner.token)
        assert "levels deep; at most 12" in error["message"]
        assert error["extensions"]["code"] == "DEPTH_LIMIT_EXCEEDED"


async def test_a_repeated_query_is_validated_once(gql, factory):
    from schema.runtime import validate_cached

    owner = await factory.user()
    query = "query RepeatedOnce { viewer { user { id name } } }"
    await gql.ok(query, token=owner.token)
    before = validate_cached.cache_info()
    await gql.ok(query, token=owner.token)
    after = validate_cached.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)


BOARD_EDGES = """
fragment Card on Task { id commentCount subtaskCount assignee { id } labels { id } }
query($p: ID!) {
  project(id: $p) {
    board { columns { tasks(first: 100) { totalCount edges { cursor node { ...Card } } } } }
  }
}
"""


@pytest.mark.both_databases
async def test_board_through_edges_and_fragments_costs_the_same(gql, factory):
    owner, project = await _arrange_board(factory, 60)
    with count_statements() as log:
        data = await gql.ok(BOARD_EDGES, {"p": gid("Project", project.id)}, token=owner.token)
    for column, status in zip(data["project"]["board"]["columns"], STATUSES):
        nodes = [_seen(edge["node"]) for edge in column["tasks"]["edges"]]
        assert nodes == await _expected_column(project, status)
    # The same six statements as with `nodes { ... }`: the relations asked inside the
    # fragment are loaded for the whole page at once.
    assert log.count == 6, log.report()
