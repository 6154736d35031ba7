"""Client input the database cannot hold is a coded client error, never INTERNAL_SERVER_ERROR:
global IDs beyond their column's range, access tokens with an impossible `sub`, cursors holding
values of the wrong type, and custom property numbers JSON cannot carry exactly.

PostgreSQL is the strict one (an int4 column refuses 2**31, a timestamptz refuses a string);
SQLite takes almost anything. Each test runs on both, and each checks that nothing was logged
as "unexpected error" (what the server masks as INTERNAL_SERVER_ERROR).
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta

import jwt
import orjson
import pytest

from models import CustomFieldDefinition, CustomFieldType, NoraConversation, NoraMessage, Task
from models.nora import NoraMessageStatus, NoraRole
from tests.api_catalog import MUTATIONS, arrange, with_id
from tests.conftest import SECRET, gid
from tests.tasks_support import UPDATE, make_task, team, tid
from tests.wsclient import TRANSPORT_WS, Closed, GraphQLWS

pytestmark = pytest.mark.both_databases

INT4_MAX = 2_147_483_647
INT8_MAX = 9_223_372_036_854_775_807


@pytest.fixture
def unexpected():
    """Records of the pcg.errors logger: one per error masked as INTERNAL_SERVER_ERROR."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    logger = logging.getLogger("pcg.errors")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def raw_id(text: str) -> str:
    """A global ID of any text, encoded as ours are (urlsafe base64, no padding)."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def codes(body: dict) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


# -- global IDs beyond the key space ------------------------------------------------------------

# pk 0, just past int4, far past int8, 18 digits (within int8, not int4), and digits that
# str.isdigit() accepts but int() refuses or reads as another number.
OUT_OF_RANGE = {
    "zero": lambda t: gid(t, 0),
    "int4+1": lambda t: gid(t, INT4_MAX + 1),
    "18 digits": lambda t: gid(t, 10**18 - 1),
    "leading zeros": lambda t: raw_id(f"{t}:0001"),
    "superscript": lambda t: raw_id(f"{t}:\u00b2"),
    "fullwidth": lambda t: raw_id(f"{t}:\uff11"),
}


def _malformed(body: dict, where: str) -> None:
    assert codes(body) == ["BAD_USER_INPUT"], f"{where}: {body}"
    assert body["errors"][0]["message"] == "Malformed ID", where


async def test_node_nodes_and_typed_lookups_refuse_ids_beyond_the_key_space(
    gql, factory, unexpected
):
    t = await team(factory)
    task = await make_task(t.project, t.owner)
    token = t.owner.token
    lookups = {
        "node": ("query($id: ID!) { node(id: $id) { id } }", "Task"),
        "task": ("query($id: ID!) { task(id: $id) { id } }", "Task"),
        "project": ("query($id: ID!) { project(id: $id) { id } }", "Project"),
        "noraConversation": ("query($id: ID!) { noraConversation(id: $id) { id } }",
                             "NoraConversation"),
        "noraConversations": (
            "query($id: ID!) { noraConversations(organizationId: $id) { totalCount } }",
            "Organization",
        ),
        "noraUsage": ("query($id: ID!) { noraUsage(organizationId: $id) { __typename } }",
                      "Organization"),
        "tasks(filter: assignee)": (
            "query($p: ID!, $id: ID!) { project(id: $p) { tasks(filter: {assignee: [$id]})"
            " { totalCount } } }", "User",
        ),
        "tasks(filter: label)": (
            "query($p: ID!, $id: ID!) { project(id: $p) { tasks(filter: {label: [$id]})"
            " { totalCount } } }", "Label",
        ),
    }
    for name, (query, type_name) in lookups.items():
        for case, make in OUT_OF_RANGE.items():
            variables = {"id": make(type_name), "p": t.project_gid}
            if "$p" not in query:
                variables.pop("p")
            _malformed(await gql.raw(query, variables, token), f"{name} {case}")
    # nodes: one bad ID among good ones fails the list, as any malformed ID does.
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
    for case, make in OUT_OF_RANGE.items():
        body = await gql.raw(query, {"ids": [tid(task), make("Task")]}, token)
        _malformed(body, f"nodes {case}")
    # The largest key of each column is well-formed, and answers as a missing object.
    assert await gql.ok(lookups["node"][0], {"id": gid("Task", INT4_MAX)}, token) == {"node": None}
    assert await gql.ok(lookups["node"][0], {"id": gid("NoraMessage", INT8_MAX)}, token) == {
        "node": None
    }
    _malformed(await gql.raw(lookups["node"][0], {"id": gid("NoraMessage", INT8_MAX + 1)}, token),
               "NoraMessage int8+1")
    assert unexpected == []


NORA_MUTATIONS = {
    "startNoraConversation": (
        "mutation($input: StartNoraConversationInput!) "
        "{ startNoraConversation(input: $input) { __typename } }",
        {"organizationId": "Organization", "projectId": "Project"},
    ),
    "sendNoraMessage": (
        "mutation($input: SendNoraMessageInput!) { sendNoraMessage(input: $input) { __typename } }",
        {"conversationId": "NoraConversation"},
    ),
    "cancelNoraMessage": (
        "mutation($input: CancelNoraMessageInput!) "
        "{ cancelNoraMessage(input: $input) { __typename } }",
        {"messageId": "NoraMessage"},
    ),
}


async def test_every_mutation_input_id_beyond_the_key_space_is_malformed(gql, factory, unexpected):
    world = await arrange(factory)
    token = world.owner.token
    for name, mutation in MUTATIONS.items():
        base = mutation.build(world)
        for field_name, type_name in mutation.id_fields.items():
            for case in ("zero", "int4+1", "18 digits"):
                value = with_id(base, field_name, OUT_OF_RANGE[case](type_name))
                body = await gql.raw(mutation.document, {"input": value}, token)
                _malformed(body, f"{name}.{field_name} {case}")
    conversation = await NoraConversation.create(
        organization=world.org, user=world.owner.user, title="Ideas"
    )
    filled = {"organizationId": gid("Organization", world.org.id),
              "conversationId": gid("NoraConversation", conversation.id),
              "messageId": gid("NoraMessage", 1), "content": "hello"}
    for name, (document, id_fields) in NORA_MUTATIONS.items():
        for field_name, type_name in id_fields.items():
            value = {k: v for k, v in filled.items() if k in id_fields or k == "content"}
            if name != "sendNoraMessage":
                value.pop("content")
            value[field_name] = gid(type_name, INT8_MAX + 1 if type_name == "NoraMessage"
                                    else INT4_MAX + 1)
            _malformed(await gql.raw(document, {"input": value}, token), f"{name}.{field_name}")
    assert unexpected == []


async def test_a_subscription_to_an_id_beyond_the_key_space_is_malformed(live, factory,
                                                                         unexpected):
    t = await team(factory)
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", TRANSPORT_WS, token=t.owner.token)
    try:
        for query, type_name in [
            ("subscription($id: ID!) { boardEvents(projectId: $id) { seq } }", "Project"),
            ("subscription($id: ID!) { taskChanged(id: $id) { seq } }", "Task"),
            ("subscription($id: ID!) { noraEvents(conversationId: $id) { __typename } }",
             "NoraConversation"),
        ]:
            await ws.subscribe(query, {"id": gid(type_name, INT4_MAX + 1)})
            result = await ws.next_data()
            _malformed(result, query)
            await ws.expect_complete()
    finally:
        await ws.close()
    assert unexpected == []


# -- access tokens whose subject cannot be a user -----------------------------------------------

BAD_SUBJECTS = ["2147483648", "9" * 30, "0", "0001", "-1", " 1", "\u00b2", "\uff11", "1e3", ""]


def _token(sub: str) -> str:
    now = datetime.now(UTC)
    claims = {"sub": sub, "iat": int(now.timestamp()),
              "exp": int((now + timedelta(hours=1)).timestamp()), "typ": "access"}
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def test_a_signed_token_with_an_impossible_subject_is_invalid_over_http(
    gql, factory, unexpected
):
    await factory.user("Alice")  # user 1 exists: "0001" and "１" must not reach it
    for sub in BAD_SUBJECTS:
        error = await gql.error("{ viewer { user { id } } }", token=_token(sub))
        assert error["extensions"] == {"code": "UNAUTHENTICATED", "reason": "TOKEN_INVALID"}, sub
    assert unexpected == []


async def test_a_signed_token_with_an_impossible_subject_is_refused_by_the_socket(
    live, factory, unexpected
):
    await factory.user("Alice")
    for sub in BAD_SUBJECTS:
        with pytest.raises(Closed) as closed:
            await GraphQLWS.connect(f"ws://{live}/graphql", TRANSPORT_WS, token=_token(sub))
        assert closed.value.code == 4403, sub
    assert unexpected == []


# -- cursors holding values of the wrong type ---------------------------------------------------

# Values no sort field can hold whatever its type (no sort field is nullable).
NEVER = [None, True, [1], {}, {"x": 1}, 1.5, 2**31, -(2**31) - 1, 2**63, 2**70, -(2**70)]
_NOT_INTS = ["1", "x", {"dt": "2030-01-01T00:00:00+00:00"}, None, True, [1], {}, 1.0, 1.5]
INT2, INT8 = "smallint", "bigint"  # int alone stands for int4
WRONG = {
    int: [*_NOT_INTS, 2**31, -(2**31) - 1, 2**63, 2**70],
    INT2: [*_NOT_INTS, 2**15, -(2**15) - 1, 2**31],
    INT8: [*_NOT_INTS, 2**63, -(2**63) - 1, 2**70],
    str: [1, "a\x00b", "x" * 10_000, {"d": "2030-01-01"}, {"dt": 5}, *NEVER],
    datetime: [
        "2030-01-01T00:00:00+00:00", 5, {"dt": 5}, {"dt": "nope"}, {"dt": None},
        {"d": "2030-01-01"}, {"dt": "2030-01-01T00:00:00+00:00", "d": "x"},
        {"dt": "0001-01-01T00:00:00+05:00"}, {"dt": "9999-12-31T23:59:59-05:00"},
        {"dt": "2030-01-01T00:00:00"}, *NEVER,
    ],
}
# Whole cursors that are ill-formed for any list.
SHAPES = [["x", {"dt": 5}], [[1]], [{"d": "nope"}], [], {"a": 1}, "x", 5, None]

CONNECTIONS = {
    # name: (query with $after/$before/$first/$last, path to the connection, value types)
    "projects": ("query($a: String, $b: String, $f: Int, $l: Int) "
                 "{ projects(after: $a, before: $b, first: $f, last: $l) { ...P } }",
                 ["projects"], [str, int]),
    "organization.projects": (
        "query($a: String, $b: String, $f: Int, $l: Int) { organization(slug: $slug) "
        "{ projects(after: $a, before: $b, first: $f, last: $l) { ...P } } }",
        ["organization", "projects"], [str, int]),
    "organization.members": (
        "query($a: String, $b: String, $f: Int, $l: Int) { organization(slug: $slug) "
        "{ members(after: $a, before: $b, first: $f, last: $l) { ...P } } }",
        ["organization", "members"], [datetime, int]),
    "organization.invites": (
        "query($a: String, $b: String, $f: Int, $l: Int) { organization(slug: $slug) "
        "{ invites(after: $a, before: $b, first: $f, last: $l) { ...P } } }",
        ["organization", "invites"], [datetime, int]),
    "organization.apiKeys": (
        "query($a: String, $b: String, $f: Int, $l: Int) { organization(slug: $slug) "
        "{ apiKeys(after: $a, before: $b, first: $f, last: $l) { ...P } } }",
        ["organization", "apiKeys"], [datetime, int]),
    "project.members": (
        "query($a: String, $b: String, $f: Int, $l: Int) { project(id: $project) "
        "{ members(after: $a, before: $b, first: $f, last: $l) { ...P } } }",
        ["project", "members"], [datetime, int]),
    "board column": (
        "query($a: String, $b: String, $f: Int, $l: Int) { project(id: $project) "
        "{ board { columns { tasks(after: $a, before: $b, first: $f, last: $l) { ...P } } } } }",
        ["project", "board", "columns", 0, "tasks"], [str, int]),
    **{
        f"project.tasks {order}": (
            "query($a: String, $b: String, $f: Int, $l: Int) { project(id: $project) "
            f"{{ tasks(orderBy: {{field: {order}}}, after: $a, before: $b, first: $f, last: $l)"
            " { ...P } } }",
            ["project", "tasks"], [kind, int])
        for order, kind in [("POSITION", str), ("CREATED_AT", datetime),
                            ("UPDATED_AT", datetime), ("PRIORITY", INT2), ("TITLE", str)]
    },
    "task.subtasks": (
        "query($a: String, $b: String, $f: Int, $l: Int) { task(id: $task) "
        "{ subtasks(after: $a, before: $b, first: $f, last: $l) { ...P } } }",
        ["task", "subtasks"], [datetime, int]),
    "task.comments": (
        "query($a: String, $b: String, $f: Int, $l: Int) { task(id: $task) "
        "{ comments(after: $a, before: $b, first: $f, last: $l) { ...P } } }",
        ["task", "comments"], [datetime, int]),
    "noraConversations": (
        "query($a: String, $b: String, $f: Int, $l: Int) { noraConversations("
        "organizationId: $org, after: $a, before: $b, first: $f, last: $l) { ...P } }",
        ["noraConversations"], [datetime, int]),
    "noraConversation.messages": (
        "query($a: String, $b: String, $f: Int, $l: Int) { noraConversation(id: $conversation) "
        "{ messages(after: $a, before: $b, first: $f, last: $l) { ...P } } }",
        ["noraConversation", "messages"], [INT8]),
}


def _cursor(values) -> str:
    # json, not orjson: orjson refuses integers beyond 64 bits, and a client may send them.
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _bad_cursors(valid: list, kinds: list[type]) -> list[list]:
    """The valid cursor with one value at a time swapped for one of the wrong type."""
    out = [list(s) if isinstance(s, list) else s for s in SHAPES]
    for i, kind in enumerate(kinds):
        for wrong in WRONG[kind]:
            out.append([*valid[:i], wrong, *valid[i + 1:]])
    return out


async def _cursor_world(factory):
    world = await arrange(factory, slug="cursors")
    await NoraConversation.create(organization=world.org, user=world.owner.user, title="A")
    conversation = await NoraConversation.create(
        organization=world.org, user=world.owner.user, title="B"
    )
    for content in ("hi", "there"):
        await NoraMessage.create(conversation=conversation, role=NoraRole.USER, content=content,
                             status=NoraMessageStatus.COMPLETE)
    substitutions = {
        "$slug": '"cursors"',
        "$project": f'"{gid("Project", world.project.id)}"',
        "$task": f'"{gid("Task", world.task.id)}"',
        "$org": f'"{gid("Organization", world.org.id)}"',
        "$conversation": f'"{gid("NoraConversation", conversation.id)}"',
    }
    return world, substitutions


async def test_cursors_holding_the_wrong_types_are_malformed(gql, factory, unexpected):
    world, substitutions = await _cursor_world(factory)
    token = world.owner.token
    for name, (query, path, kinds) in CONNECTIONS.items():
        document = query.replace(
            "{ ...P }", "{ edges { cursor } pageInfo { endCursor } }"
        )
        for var, value in substitutions.items():
            document = document.replace(var, value)
        data = await gql.ok(document, {"f": 1}, token)
        node = data
        for step in path:
            node = node[step]
        valid_cursor = node["pageInfo"]["endCursor"]
        assert valid_cursor, f"{name}: arrange a row in this list"
        raw = base64.urlsafe_b64decode(valid_cursor + "=" * (-len(valid_cursor) % 4))
        valid = orjson.loads(raw)
        assert len(valid) == len(kinds), name
        for value, kind in zip(valid, kinds):
            expected = {datetime: dict, str: str}.get(kind, int)
            assert isinstance(value, expected), (name, valid)
        # The control: the cursor we issued works both ways.
        await gql.ok(document, {"a": valid_cursor, "f": 5}, token)
        await gql.ok(document, {"b": valid_cursor, "l": 5}, token)
        for bad in _bad_cursors(valid, kinds):
            for arg, variables in (("after", {"a": _cursor(bad), "f": 5}),
                                   ("before", {"b": _cursor(bad), "l": 5})):
                body = await gql.raw(document, variables, token)
                where = f"{name} {arg}={bad!r:.80}"
                assert codes(body) == ["BAD_USER_INPUT"], f"{where}: {body}"
                assert body["errors"][0]["extensions"]["field"] == arg, where
    assert unexpected == []


# -- custom property numbers --------------------------------------------------------------------


async def _number_field(factory):
    t = await team(factory)
    await CustomFieldDefinition.create(
        project=t.project, key="estimate", name="Estimate", type=CustomFieldType.NUMBER
    )
    return t, await make_task(t.project, t.owner)


# As JSON text in the variables. The body is read by orjson: NaN, Infinity and numbers beyond
# float64 (1e400, 10**400) are not JSON it accepts (400 BAD_REQUEST before any GraphQL); integers
# of 64 bits stay integers (and are range-checked here); longer ones become float64, as in
# JavaScript (2**64 is then exactly the float 1.8446744073709552e19, a number in range).
JSON_OUT_OF_RANGE = ["9007199254740993", "-9007199254740993", "18446744073709551615"]
JSON_NOT_JSON = ["1" + "0" * 400, "1e400", "-1e400", "NaN", "Infinity", "-Infinity"]
# As GraphQL literals inside the JSON scalar.
LITERAL_OUT_OF_RANGE = ["18446744073709551616", "-9007199254740993", "1e400", "-1e400"]
# The documented range: finite float64, integers within +-2**53 (exact in every JSON reader).
IN_RANGE = ["9007199254740992", "-9007199254740992", "0", "-0.0", "1.5e308", "-1.5e308",
            "5e-324", "0.1"]


async def _update_with_json(gql, task, token: str, number: str) -> dict:
    body = (
        '{"query": ' + orjson.dumps(UPDATE).decode()
        + ', "variables": {"i": {"id": "' + tid(task) + '", "customProperties": {"estimate": '
        + number + "}}}}"
    )
    response = await gql.http.post(
        "/graphql", content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status_code in (200, 400), response.text
    return response.json()


async def test_custom_property_numbers_outside_the_documented_range(gql, factory, unexpected):
    t, task = await _number_field(factory)
    token = t.editor.token
    for number in JSON_OUT_OF_RANGE:
        answer = await _update_with_json(gql, task, token, number)
        assert codes(answer) == ["BAD_USER_INPUT"], (number, answer)
        assert answer["errors"][0]["extensions"]["field"] == "customProperties.estimate", number
    for number in JSON_NOT_JSON:
        assert codes(await _update_with_json(gql, task, token, number)) == ["BAD_REQUEST"], number
    for literal in LITERAL_OUT_OF_RANGE:
        document = (
            'mutation { updateTask(input: {id: "' + tid(task) + '", '
            "customProperties: {estimate: " + literal + "}}) { task { id } } }"
        )
        error = await gql.error(document, token=token)
        assert error["extensions"]["code"] == "BAD_USER_INPUT", (literal, error)
        assert error["extensions"]["field"] == "customProperties.estimate", literal
    assert (await Task.get(id=task.id)).custom_properties == {}
    # The bounds themselves are accepted, stored and read back unchanged.
    for number in IN_RANGE:
        answer = await _update_with_json(gql, task, token, number)
        assert not answer.get("errors"), (number, answer)
        expected = {"estimate": orjson.loads(number)}
        assert answer["data"]["updateTask"]["task"]["customProperties"] == expected, number
        read = await gql.ok("query($id: ID!) { task(id: $id) { customProperties } }",
                            {"id": tid(task)}, token=token)
        assert read["task"]["customProperties"] == expected, number
    assert unexpected == []
