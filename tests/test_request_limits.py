"""Every per-document limit: just under passes, just over is refused with its code, and a
refused document runs no SQL statement at all (not even the credential lookup)."""

from __future__ import annotations

import pytest

from models import AuditEntry, BoardEvent, Task
from tests.querycount import count_statements


async def _refused(gql, query, variables=None, token=None) -> dict:
    with count_statements() as log:
        body = await gql.raw(query, variables, token)
    assert body.get("data") is None, body
    assert len(body["errors"]) == 1, body
    assert log.count == 0, log.report()
    return body["errors"][0]


def _aliases(n: int) -> str:
    return "{ viewer { " + " ".join(f"a{i}: user {{ id }}" for i in range(n)) + " } }"


def _nested_depth(levels: int) -> str:
    """`task { parent { parent ... { id } } }` with `levels` fields that have selections."""
    inner = "id"
    for _ in range(levels - 1):
        inner = f"parent {{ {inner} }}"
    return f'{{ task(id: "VGFzazox") {{ {inner} }} }}'


async def test_depth_just_under_passes_and_just_over_is_refused(gql, factory):
    owner = await factory.user()
    assert "errors" not in await gql.raw(_nested_depth(12), token=owner.token)
    error = await _refused(gql, _nested_depth(13), token=owner.token)
    assert error["extensions"] == {"code": "DEPTH_LIMIT_EXCEEDED", "depth": 13, "maxDepth": 12}


async def test_aliases_per_selection_set_count_fragments_once_merged(gql, factory):
    owner = await factory.user()
    assert "errors" not in await gql.raw(_aliases(15), token=owner.token)
    error = await _refused(gql, _aliases(16), token=owner.token)
    assert error["extensions"] == {"code": "ALIAS_LIMIT_EXCEEDED", "aliases": 16, "maxAliases": 15}
    # Aliases brought into a selection set by a fragment count with the set's own.
    spread = "fragment F on Viewer { " + " ".join(f"f{i}: user {{ id }}" for i in range(8)) + " }"
    query = spread + " { viewer { ...F " + " ".join(f"a{i}: user {{ id }}" for i in range(8)) + " } }"
    assert (await _refused(gql, query, token=owner.token))["extensions"]["aliases"] == 16


@pytest.mark.limits(max_aliases=100)
async def test_root_fields(gql, factory):
    owner = await factory.user()
    ok = "{ " + " ".join(f"f{i}: __typename" for i in range(20)) + " }"
    assert "errors" not in await gql.raw(ok, token=owner.token)
    over = "{ " + " ".join(f"f{i}: __typename" for i in range(21)) + " }"
    error = await _refused(gql, over, token=owner.token)
    assert error["extensions"]["code"] == "ROOT_FIELD_LIMIT_EXCEEDED"


async def test_directives(gql, factory):
    owner = await factory.user()
    fields = lambda n: " ".join("id @include(if: true)" for _ in range(n))  # noqa: E731
    assert "errors" not in await gql.raw("{ viewer { user { " + fields(50) + " } } }", token=owner.token)
    error = await _refused(gql, "{ viewer { user { " + fields(51) + " } } }", token=owner.token)
    assert error["extensions"] == {"code": "DIRECTIVE_LIMIT_EXCEEDED", "directives": 51, "maxDirectives": 50}


async def test_token_limit_refuses_a_megabyte_of_fields_before_parsing_it_all(gql, factory):
    owner = await factory.user()
    def document(statuses: int) -> str:
        # 24 tokens around the list (graphql-core's lexer counts them), one per status
        return ('{ project(id: "UHJvamVjdDox") { tasks(filter: { status: [' + "TODO " * statuses
                + "] }) { totalCount } } }")

    assert (await gql.raw(document(5_000 - 24), token=owner.token)) == {
        "data": {"project": None}, "extensions": {"cost": {"requested": 3, "maxCost": 10_000}}
    }
    error = await _refused(gql, document(5_001 - 24), token=owner.token)
    assert error["extensions"]["code"] == "TOKEN_LIMIT_EXCEEDED"
    huge = "{ viewer { " + "id " * 90_000 + "} }"  # ~270 KB, under the body limit
    error = await _refused(gql, huge, token=owner.token)
    assert error["extensions"]["code"] == "TOKEN_LIMIT_EXCEEDED"


BOARD_TASKS = """
query($p: ID!, $n: Int) {
  project(id: $p) { tasks(first: $n) { nodes { id title assignee { id } labels { id } } } }
}
"""


async def test_cost_counts_pages_through_variables_and_is_reported(gql, factory):
    owner = await factory.user()
    org = await factory.org(owner)
    project = await factory.project(org, owner)
    body = await gql.raw(BOARD_TASKS, {"p": project_gid(project), "n": 100}, token=owner.token)
    # project 1 + tasks connection 1 + 100 tasks × (1 + assignee 1 + 10 labels)
    assert body["extensions"]["cost"] == {"requested": 1_202, "maxCost": 10_000}


@pytest.mark.limits(max_cost=1_202)
async def test_cost_just_under_passes_and_just_over_is_refused(gql, factory):
    owner = await factory.user()
    org = await factory.org(owner)
    project = await factory.project(org, owner)
    variables = {"p": project_gid(project), "n": 100}
    assert "errors" not in await gql.raw(BOARD_TASKS, variables, token=owner.token)
    error = await _refused(gql, BOARD_TASKS.replace("title", "title parent { id }"), variables,
                           token=owner.token)
    assert error["extensions"] == {"code": "MAX_COST_EXCEEDED", "cost": 1_302, "maxCost": 1_202}


async def test_multiplying_connections_are_refused_without_a_statement(gql, factory):
    owner = await factory.user()
    query = """{ projects(first: 100) { nodes { tasks(first: 100) { nodes { project {
        tasks(first: 100) { nodes { title } } } } } } } }"""
    error = await _refused(gql, query, token=owner.token)
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert error["extensions"]["cost"] > 1_000_000


async def test_the_fragment_dag_is_refused_in_linear_time(gql, factory):
    """Each fragment spreads the next twice: 2^40 expansions if walked naively."""
    owner = await factory.user()
    fragments = [f"fragment F{i} on Viewer {{ ...F{i + 1} ...F{i + 1} }}" for i in range(40)]
    fragments.append("fragment F40 on Viewer { organizations { organization { name } } }")
    query = "{ viewer { ...F0 } } " + " ".join(fragments)
    error = await _refused(gql, query, token=owner.token)
    # Counted as written (spreads are not merged): 2^40 copies of 20 × 2 objects.
    assert error["extensions"] == {"code": "MAX_COST_EXCEEDED", "cost": 2**40 * 40 + 1, "maxCost": 10_000}


async def test_alias_bomb_of_boards_is_refused(gql, factory):
    owner = await factory.user()
    board = "board { columns { tasks(first: 100) { nodes { id title assignee { id } labels { id } } } } }"

    def boards(n: int) -> str:
        return "query($p: ID!) { " + " ".join(f"b{i}: project(id: $p) {{ {board} }}" for i in range(n)) + " }"

    error = await _refused(gql, boards(16), {"p": "UHJvamVjdDox"}, token=owner.token)
    assert error["extensions"]["code"] == "ALIAS_LIMIT_EXCEEDED"
    # Within the alias cap, two full boards are already over the cost cap.
    assert "errors" not in await gql.raw(boards(1), {"p": "UHJvamVjdDox"}, token=owner.token)
    error = await _refused(gql, boards(2), {"p": "UHJvamVjdDox"}, token=owner.token)
    # each: project 1 + board 1 + 5 columns × (1 + connection 1 + 100 × (1 + assignee + 10 labels))
    assert error["extensions"] == {"code": "MAX_COST_EXCEEDED", "cost": 12_024, "maxCost": 10_000}


async def test_introspection_is_counted(gql):
    from graphql import get_introspection_query

    one = get_introspection_query(descriptions=True)
    body = await gql.raw(one)
    assert "errors" not in body and 1_000 < body["extensions"]["cost"]["requested"] < 10_000
    # Four aliased full introspections, anonymous: refused by cost, not by the alias cap.
    inner = one[one.index("__schema"):one.index("fragment FullType")].rsplit("}", 1)[0]
    fragments = one[one.index("fragment FullType"):]
    query = "query { " + " ".join(f"s{i}: {inner}" for i in range(4)) + " } " + fragments
    error = await _refused(gql, query)
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED"


@pytest.mark.parametrize("page", [{"first": 101}, {"last": 101}, {"first": -1}, {"first": 1, "last": 1}])
async def test_page_sizes_are_refused_before_a_mutation_commits(gql, factory, page):
    """createTask with a bad page size in its payload used to commit and then answer null."""
    owner = await factory.user()
    org = await factory.org(owner)
    project = await factory.project(org, owner)
    args = ", ".join(f"{k}: {v}" for k, v in page.items())
    query = (
        "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id "
        f"subtasks({args}) {{ totalCount }} }} }} }}"
    )
    error = await _refused(gql, query, {"i": {"projectId": project_gid(project), "title": "t"}},
                           token=owner.token)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] in ("first", "last")
    assert not await Task.exists() and not await AuditEntry.exists() and not await BoardEvent.exists()


async def test_page_size_from_a_variable_is_checked_too(gql, factory):
    owner = await factory.user()
    query = "query($n: Int) { projects(first: $n) { nodes { id } } }"
    assert "errors" not in await gql.raw(query, {"n": 100}, token=owner.token)
    error = await _refused(gql, query, {"n": 101}, token=owner.token)
    assert (error["extensions"]["code"], error["extensions"]["field"]) == ("BAD_USER_INPUT", "first")


async def test_nodes_takes_at_most_100_ids_before_execution(gql, factory):
    owner = await factory.user()
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
    assert "errors" not in await gql.raw(query, {"ids": ["VGFzazox"] * 100}, token=owner.token)
    error = await _refused(gql, query, {"ids": ["VGFzazox"] * 101}, token=owner.token)
    assert (error["extensions"]["code"], error["extensions"]["field"]) == ("BAD_USER_INPUT", "ids")


@pytest.mark.both_databases
@pytest.mark.parametrize("where", ["variable", "literal"])
async def test_nul_characters_are_refused_in_any_string(gql, factory, where):
    owner = await factory.user()
    if where == "variable":
        query, variables = "query($s: String!) { organization(slug: $s) { id } }", {"s": "a\x00b"}
    else:
        query, variables = '{ projects(search: "a\\u0000b") { nodes { id } } }', None
    error = await _refused(gql, query, variables, token=owner.token)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] in ("slug", "s", "search")


async def test_unknown_fragment_is_a_validation_error(gql, factory):
    owner = await factory.user()
    error = await _refused(gql, "{ viewer { ...Nope } }", token=owner.token)
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_a_subscription_over_http_is_refused(gql):
    error = await _refused(gql, 'subscription { boardEvents(projectId: "UHJvamVjdDox") { seq } }')
    assert error["extensions"]["code"] == "BAD_REQUEST"


def project_gid(project) -> str:
    from resolvers.ids import to_global_id

    return to_global_id("Project", project.id)
