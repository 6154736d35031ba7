"""Live board over real websockets to a real uvicorn: both subprotocols, auth, gap-free resume."""

from __future__ import annotations

import asyncio

import pytest

from models import BoardEvent, OrgRole, ProjectRole
from resolvers.identity.auth import issue_access_token
from tests.conftest import SECRET, gid
from tests.wsclient import LEGACY_WS, TRANSPORT_WS, Closed, GraphQLWS

BOARD = """subscription($p: ID!, $after: String) {
  boardEvents(projectId: $p, after: $after) {
    __typename cursor seq occurredAt actor { name }
    ... on TaskCreated { task { id title status } }
    ... on TaskUpdated { changedFields task { title version } }
    ... on TaskMoved { fromStatus toStatus position task { id status } }
    ... on CommentAdded { taskId comment { body author { name } } }
    ... on MemberRemoved { role user { name } }
  }
}"""
CREATE = "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id version } } }"
UPDATE = "mutation($i: UpdateTaskInput!) { updateTask(input: $i) { task { id version } } }"
MOVE = "mutation($i: MoveTaskInput!) { moveTask(input: $i) { task { id } } }"


@pytest.fixture
async def team(factory):
    owner = await factory.user("Olga")
    org = await factory.org(owner)
    project = await factory.project(org, owner, "Live")
    return {"owner": owner, "org": org, "project": project, "pid": gid("Project", project.id)}


async def create_task(gql, team, title: str) -> dict:
    data = await gql.ok(CREATE, {"i": {"projectId": team["pid"], "title": title}}, token=team["owner"].token)
    return data["createTask"]["task"]


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_subscribe_then_mutate_over_http(live, gql, team, protocol):
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", protocol, token=team["owner"].token)
    try:
        await ws.subscribe(BOARD, {"p": team["pid"]})
        await asyncio.sleep(0.1)  # let the subscription reach its broadcast subscribe
        task = await create_task(gql, team, "Ship it")
        created = (await ws.next_data())["data"]["boardEvents"]
        assert created["__typename"] == "TaskCreated"
        assert created["task"] == {"id": task["id"], "title": "Ship it", "status": "TODO"}
        assert created["seq"] == 1 and created["actor"] == {"name": "Olga"}

        await gql.ok(UPDATE, {"i": {"id": task["id"], "title": "Ship it now", "expectedVersion": 1}},
                     token=team["owner"].token)
        updated = (await ws.next_data())["data"]["boardEvents"]
        assert updated["__typename"] == "TaskUpdated"
        assert updated["changedFields"] == ["title"]
        assert updated["task"] == {"title": "Ship it now", "version": 2}

        await gql.ok(MOVE, {"i": {"id": task["id"], "status": "DONE"}}, token=team["owner"].token)
        moved = (await ws.next_data())["data"]["boardEvents"]
        assert moved["__typename"] == "TaskMoved"
        assert (moved["fromStatus"], moved["toStatus"], moved["task"]["status"]) == ("TODO", "DONE", "DONE")
        assert [created["seq"], updated["seq"], moved["seq"]] == [1, 2, 3]
    finally:
        await ws.close()


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
@pytest.mark.parametrize("credential", ["none", "garbage", "expired", "revoked-key"])
async def test_bad_credentials_close_with_4403(live, team, factory, protocol, credential):
    payload = {}
    if credential == "garbage":
        payload = {"authorization": "Bearer not-a-token"}
    elif credential == "expired":
        token, _ = issue_access_token(team["owner"].user, SECRET, -10)
        payload = {"authorization": f"Bearer {token}"}
    elif credential == "revoked-key":
        from datetime import UTC, datetime

        from models import ApiKey
        from resolvers.identity.auth import new_api_key

        key, prefix, digest = new_api_key()
        await ApiKey.create(organization=team["org"], created_by=team["owner"].user, name="k", prefix=prefix,
                            key_hash=digest, role=OrgRole.ADMIN, revoked_at=datetime.now(UTC))
        payload = {"authorization": f"Bearer {key}"}
    with pytest.raises(Closed) as closed:
        await GraphQLWS.connect(f"ws://{live}/graphql", protocol, payload=payload)
    assert closed.value.code == 4403


async def test_api_key_authenticates_a_socket(live, gql, team):
    data = await gql.ok(
        "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key } }",
        {"i": {"organizationId": gid("Organization", team["org"].id), "name": "bot", "role": "ADMIN"}},
        token=team["owner"].token,
    )
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", payload={"authorization": data["createApiKey"]["key"]})
    try:
        await ws.subscribe(BOARD, {"p": team["pid"]})
        await asyncio.sleep(0.1)
        await create_task(gql, team, "via key")
        assert (await ws.next_data())["data"]["boardEvents"]["task"]["title"] == "via key"
    finally:
        await ws.close()


async def test_other_orgs_project_errors_like_a_missing_one(live, team, factory):
    stranger = await factory.user("Stranger")
    await factory.org(stranger)
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=stranger.token)
    try:
        await ws.subscribe(BOARD, {"p": team["pid"]})
        seen = await ws.next_data()
        await ws.expect_complete()
        await ws.subscribe(BOARD, {"p": gid("Project", 987654)})
        missing = await ws.next_data()
        await ws.expect_complete()
        assert seen["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        strip = lambda r: [{k: v for k, v in e.items() if k != "locations"} for e in r["errors"]]  # noqa: E731
        assert strip(seen) == strip(missing)
    finally:
        await ws.close()


async def test_access_removed_mid_stream_ends_with_forbidden(live, gql, team, factory):
    editor = await factory.user("Eddie")
    await factory.org_member(team["org"], editor, OrgRole.MEMBER)
    await factory.project_member(team["project"], editor, ProjectRole.EDITOR)
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=editor.token)
    try:
        await ws.subscribe(BOARD, {"p": team["pid"]})
        await asyncio.sleep(0.1)
        await create_task(gql, team, "before")
        assert (await ws.next_data())["data"]["boardEvents"]["__typename"] == "TaskCreated"
        members = await gql.ok(
            "query($p: ID!) { project(id: $p) { members { nodes { id user { name } } } } }",
            {"p": team["pid"]}, token=team["owner"].token,
        )
        eddie = next(m for m in members["project"]["members"]["nodes"] if m["user"]["name"] == "Eddie")
        await gql.ok(
            "mutation($i: RemoveProjectMemberInput!) { removeProjectMember(input: $i) { removedMemberId } }",
            {"i": {"memberId": eddie["id"]}}, token=team["owner"].token,
        )
        result = await ws.next_data()
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        await ws.expect_complete()
        await create_task(gql, team, "after")
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.5)
    finally:
        await ws.close()


async def test_org_removal_signals_access_even_without_board_event(live, gql, team, factory):
    """An org admin sees the project through the org role only: demotion emits no board
    event, so the access channel must end the stream."""
    admin = await factory.user("Ada")
    await factory.org_member(team["org"], admin, OrgRole.ADMIN)
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=admin.token)
    try:
        await ws.subscribe(BOARD, {"p": team["pid"]})
        await asyncio.sleep(0.1)
        from models import OrganizationMember

        member = await OrganizationMember.get(organization=team["org"], user=admin.user)
        await gql.ok(
            "mutation($i: UpdateMemberRoleInput!) { updateMemberRole(input: $i) { member { role } } }",
            {"i": {"memberId": gid("OrganizationMember", member.id), "role": "MEMBER"}},
            token=team["owner"].token,
        )
        result = await ws.next_data()
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        await ws.expect_complete()
    finally:
        await ws.close()


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_reconnect_with_cursor_misses_nothing(live, gql, team, protocol):
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", protocol, token=team["owner"].token)
    await ws.subscribe(BOARD, {"p": team["pid"]})
    await asyncio.sleep(0.1)
    await create_task(gql, team, "seen")
    last = (await ws.next_data())["data"]["boardEvents"]
    await ws.close()

    for i in range(50):
        await create_task(gql, team, f"missed {i}")

    ws = await GraphQLWS.connect(f"ws://{live}/graphql", protocol, token=team["owner"].token)
    try:
        await ws.subscribe(BOARD, {"p": team["pid"], "after": last["cursor"]})
        replayed = [(await ws.next_data())["data"]["boardEvents"] for _ in range(50)]
        assert [e["task"]["title"] for e in replayed] == [f"missed {i}" for i in range(50)]
        assert [e["seq"] for e in replayed] == list(range(last["seq"] + 1, last["seq"] + 51))
        # ...and then it is live.
        await create_task(gql, team, "live again")
        live_event = (await ws.next_data())["data"]["boardEvents"]
        assert (live_event["seq"], live_event["task"]["title"]) == (last["seq"] + 51, "live again")
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.3)  # no duplicate
    finally:
        await ws.close()


async def test_subscribing_while_events_are_written_has_no_gap_or_duplicate(live, gql, team):
    total = 60

    async def writer():
        for i in range(total):
            await create_task(gql, team, f"t{i}")

    writing = asyncio.create_task(writer())
    await asyncio.sleep(0.05)  # some events exist before the subscription starts
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=team["owner"].token)
    try:
        await ws.subscribe(BOARD, {"p": team["pid"], "after": None})
        await writing
        seqs = []
        first = (await ws.next_data())["data"]["boardEvents"]["seq"]
        seqs.append(first)
        while seqs[-1] < total:
            seqs.append((await ws.next_data())["data"]["boardEvents"]["seq"])
        assert seqs == list(range(first, total + 1))
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.3)
    finally:
        await ws.close()


async def test_replay_from_zero_while_writing(live, gql, team):
    """Resume from the very start (cursor of seq 0) during a write loop: every seq once."""
    from resolvers.event.streams import encode_cursor

    total = 40

    async def writer():
        for i in range(total):
            await create_task(gql, team, f"t{i}")

    writing = asyncio.create_task(writer())
    await asyncio.sleep(0.05)
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=team["owner"].token)
    try:
        await ws.subscribe(BOARD, {"p": team["pid"], "after": encode_cursor(team["project"].id, 0)})
        seqs = [(await ws.next_data())["data"]["boardEvents"]["seq"] for _ in range(total)]
        await writing
        assert seqs == list(range(1, total + 1))
    finally:
        await ws.close()


async def test_cursor_older_than_the_log_gets_resync_required(live, gql, team):
    from resolvers.event.streams import encode_cursor

    for i in range(5):
        await create_task(gql, team, f"old {i}")
    await BoardEvent.filter(project_id=team["project"].id, seq__lte=3).delete()  # pruned
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=team["owner"].token)
    try:
        await ws.subscribe(BOARD, {"p": team["pid"], "after": encode_cursor(team["project"].id, 1)})
        first = (await ws.next_data())["data"]["boardEvents"]
        assert first["__typename"] == "ResyncRequired"
        assert first["seq"] == 5
        await asyncio.sleep(0.05)
        await create_task(gql, team, "new")
        nxt = (await ws.next_data())["data"]["boardEvents"]
        assert (nxt["seq"], nxt["task"]["title"]) == (6, "new")
    finally:
        await ws.close()


async def test_malformed_or_foreign_cursor(live, team, factory):
    from resolvers.event.streams import encode_cursor

    ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=team["owner"].token)
    try:
        for cursor in ["%%%", encode_cursor(team["project"].id + 1, 3), encode_cursor(team["project"].id, 99)]:
            await ws.subscribe(BOARD, {"p": team["pid"], "after": cursor})
            result = await ws.next_data()
            assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", cursor
            await ws.expect_complete()
    finally:
        await ws.close()


async def test_task_changed_follows_one_task(live, gql, team):
    a = await create_task(gql, team, "A")
    b = await create_task(gql, team, "B")
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=team["owner"].token)
    try:
        await ws.subscribe(
            "subscription($id: ID!) { taskChanged(id: $id) { __typename seq ... on TaskUpdated { task { title } } ... on CommentAdded { comment { body } } } }",
            {"id": a["id"]},
        )
        await asyncio.sleep(0.1)
        await gql.ok(UPDATE, {"i": {"id": b["id"], "title": "B2"}}, token=team["owner"].token)
        await gql.ok(UPDATE, {"i": {"id": a["id"], "title": "A2"}}, token=team["owner"].token)
        await gql.ok("mutation($i: AddCommentInput!) { addComment(input: $i) { comment { id } } }",
                     {"i": {"taskId": a["id"], "body": "nice"}}, token=team["owner"].token)
        first = (await ws.next_data())["data"]["taskChanged"]
        second = (await ws.next_data())["data"]["taskChanged"]
        assert first == {"__typename": "TaskUpdated", "seq": 4, "task": {"title": "A2"}}
        assert second == {"__typename": "CommentAdded", "seq": 5, "comment": {"body": "nice"}}
    finally:
        await ws.close()


async def test_socket_closes_when_the_token_expires(live, team):
    # exp is whole seconds: a 2 s lifetime leaves at least 1 s to connect and subscribe.
    token, _ = issue_access_token(team["owner"].user, SECRET, 2)
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=token)
    await ws.subscribe(BOARD, {"p": team["pid"]})
    with pytest.raises(Closed) as closed:
        await ws.receive(timeout=5)
    assert closed.value.code == 4403
    assert closed.value.reason == "Token expired"


async def test_rolled_back_write_publishes_nothing(live, gql, team, monkeypatch):
    """A write that fails inside its transaction, after its row, audit entry and board event
    were written, commits none of them and publishes nothing."""
    from models import AuditEntry, BoardEvent, Task
    from resolvers.unit_of_work import UnitOfWork

    append = UnitOfWork.event

    async def append_then_fail(*args, **kwargs):
        await append(*args, **kwargs)  # the event row is written, in the transaction
        raise RuntimeError("injected failure after the event was appended")

    ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=team["owner"].token)
    try:
        await ws.subscribe(BOARD, {"p": team["pid"]})
        await asyncio.sleep(0.1)
        monkeypatch.setattr(UnitOfWork, "event", append_then_fail)
        error = await gql.error(CREATE, {"i": {"projectId": team["pid"], "title": "rolled back"}},
                                token=team["owner"].token)
        assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
        monkeypatch.setattr(UnitOfWork, "event", append)
        assert not await Task.filter(title="rolled back").exists()
        assert not await AuditEntry.filter(action="task.create").exists()
        assert not await BoardEvent.exists()
        # The next write is seq 1: nothing of the failed one reached the log or the socket.
        await create_task(gql, team, "ok")
        event = (await ws.next_data())["data"]["boardEvents"]
        assert (event["seq"], event["task"]["title"]) == (1, "ok")
    finally:
        await ws.close()


async def test_revoking_the_api_key_ends_its_streams(live, gql, team):
    data = await gql.ok(
        "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key apiKey { id } } }",
        {"i": {"organizationId": gid("Organization", team["org"].id), "name": "bot", "role": "ADMIN"}},
        token=team["owner"].token,
    )
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", payload={"authorization": data["createApiKey"]["key"]})
    try:
        await ws.subscribe(BOARD, {"p": team["pid"]})
        await asyncio.sleep(0.1)
        await gql.ok(
            "mutation($i: RevokeApiKeyInput!) { revokeApiKey(input: $i) { apiKey { revokedAt } } }",
            {"i": {"apiKeyId": data["createApiKey"]["apiKey"]["id"]}},
            token=team["owner"].token,
        )
        result = await ws.next_data()
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        await ws.expect_complete()
    finally:
        await ws.close()


async def test_event_cursor_read_with_the_board_makes_the_first_subscription_gap_free(live, gql, team):
    await create_task(gql, team, "already there")
    data = await gql.ok(
        "query($p: ID!) { project(id: $p) { eventCursor board { columns { tasks { nodes { title } } } } } }",
        {"p": team["pid"]}, token=team["owner"].token,
    )
    await create_task(gql, team, "between read and subscribe")
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=team["owner"].token)
    try:
        await ws.subscribe(BOARD, {"p": team["pid"], "after": data["project"]["eventCursor"]})
        event = (await ws.next_data())["data"]["boardEvents"]
        assert (event["seq"], event["task"]["title"]) == (2, "between read and subscribe")
    finally:
        await ws.close()


async def test_subscribers_with_different_roles_get_their_own_answers(live, gql, team, factory):
    """Executions are shared between subscribers of one event only when their answer cannot
    differ: here an editor and the owner select role-dependent fields of the same event."""
    editor = await factory.user("Eddie")
    await factory.org_member(team["org"], editor, OrgRole.MEMBER)
    await factory.project_member(team["project"], editor, ProjectRole.EDITOR)
    query = """subscription($p: ID!) { boardEvents(projectId: $p) {
      seq ... on TaskCreated { task { title project { viewerRole organization { viewerRole } } } } } }"""
    sockets = [
        await GraphQLWS.connect(f"ws://{live}/graphql", token=actor.token)
        for actor in (team["owner"], editor, team["owner"], editor)
    ]
    try:
        for ws in sockets:
            await ws.subscribe(query, {"p": team["pid"]})
        await asyncio.sleep(0.2)
        await create_task(gql, team, "shared")
        answers = [(await ws.next_data())["data"]["boardEvents"]["task"]["project"] for ws in sockets]
        owner = {"viewerRole": "OWNER", "organization": {"viewerRole": "OWNER"}}
        member = {"viewerRole": "EDITOR", "organization": {"viewerRole": "MEMBER"}}
        assert answers == [owner, member, owner, member]
    finally:
        for ws in sockets:
            await ws.close()


async def test_one_execution_per_event_for_subscribers_who_share_an_answer(live, gql, team, monkeypatch):
    from schema import sharing

    executions = []
    original = sharing.execute_shared

    def counting(executor, execute, serially):
        def counted(s):
            executions.append(1)
            return execute(s)
        return original(executor, counted, serially)

    monkeypatch.setattr(sharing, "execute_shared", counting)
    sockets = [await GraphQLWS.connect(f"ws://{live}/graphql", token=team["owner"].token) for _ in range(5)]
    try:
        for ws in sockets:
            await ws.subscribe(BOARD, {"p": team["pid"]})
        await asyncio.sleep(0.2)
        await create_task(gql, team, "once")
        titles = [(await ws.next_data())["data"]["boardEvents"]["task"]["title"] for ws in sockets]
        assert titles == ["once"] * 5
        assert len(executions) == 1
    finally:
        for ws in sockets:
            await ws.close()
