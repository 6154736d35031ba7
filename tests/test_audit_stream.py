"""The live audit log (`subscription auditEntries`) over real websockets to a real uvicorn:
both subprotocols, who may watch, losing access mid-stream, gap-free resume, the resync
marker, and the user agent each entry records."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from models import AuditEntry, Organization, OrganizationMember, OrgRole
from resolvers.audit.stream import encode_cursor
from resolvers.event.streams import encode_cursor as board_cursor
from tests.conftest import PASSWORD, gid
from tests.wsclient import LEGACY_WS, TRANSPORT_WS, GraphQLWS

AUDIT = """subscription($o: ID!, $after: String) {
  auditEntries(organizationId: $o, after: $after) {
    __typename cursor seq occurredAt
    ... on AuditEntryAdded { entry { id seq action resourceType resourceId ip userAgent requestId
                                     actor { name } after } }
    ... on AuditResyncRequired { reason }
  }
}"""
CREATE = "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }"
ROLE = "mutation($i: UpdateMemberRoleInput!) { updateMemberRole(input: $i) { member { role } } }"
REMOVE = "mutation($i: RemoveMemberInput!) { removeMember(input: $i) { removedMemberId } }"


@pytest.fixture
async def team(factory, acme):
    org, owner, admin, member = acme
    project = await factory.project(org, owner, "Audited")
    return {"org": org, "owner": owner, "admin": admin, "member": member,
            "oid": gid("Organization", org.id), "pid": gid("Project", project.id)}


async def create_task(live: str, token: str, pid: str, title: str, user_agent: str = "pcg-tests/1.0") -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"http://{live}/graphql", json={"query": CREATE, "variables": {"i": {"projectId": pid, "title": title}}},
            headers={"authorization": f"Bearer {token}", "user-agent": user_agent},
        )
    assert not response.json().get("errors"), response.text


async def post(live: str, token: str | None, query: str, variables: dict) -> dict:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"http://{live}/graphql", json={"query": query, "variables": variables},
                                   headers={"authorization": f"Bearer {token}"} if token else {})
    return response.json()


async def next_event(ws: GraphQLWS, timeout: float = 5.0) -> dict:
    payload = await ws.next_data(timeout)
    assert not payload.get("errors"), payload
    return payload["data"]["auditEntries"]


async def subscribe(live: str, token: str, oid: str, after: str | None = None, protocol: str = TRANSPORT_WS):
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", protocol, token=token)
    await ws.subscribe(AUDIT, {"o": oid, "after": after})
    await asyncio.sleep(0.1)  # let the generator reach its broadcast subscribe
    return ws


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_entries_arrive_in_seq_order_with_their_request(live, team, protocol):
    ws = await subscribe(live, team["admin"].token, team["oid"], protocol=protocol)
    try:
        for i in range(3):
            await create_task(live, team["owner"].token, team["pid"], f"t{i}", user_agent=f"agent/{i}")
        events = [await next_event(ws) for _ in range(3)]
    finally:
        await ws.close()
    assert [e["__typename"] for e in events] == ["AuditEntryAdded"] * 3
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert [e["entry"]["seq"] for e in events] == [1, 2, 3]
    assert [e["entry"]["action"] for e in events] == ["task.create"] * 3
    assert [e["entry"]["after"]["title"] for e in events] == ["t0", "t1", "t2"]
    assert [e["entry"]["userAgent"] for e in events] == ["agent/0", "agent/1", "agent/2"]
    assert {e["entry"]["ip"] for e in events} == {"127.0.0.1"}
    assert {e["entry"]["actor"]["name"] for e in events} == {"Owner"}
    stored = await AuditEntry.filter(organization_id=team["org"].id).order_by("seq")
    assert [gid("AuditEntry", s.id) for s in stored] == [e["entry"]["id"] for e in events]
    assert [e["cursor"] for e in events] == [encode_cursor(team["org"].id, n) for n in (1, 2, 3)]
    assert (await Organization.get(id=team["org"].id)).audit_seq == 3


async def test_a_write_over_the_socket_records_the_handshakes_user_agent(live, team):
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=team["owner"].token,
                                 user_agent="Mozilla/5.0 (socket)")
    try:
        await ws.subscribe(CREATE, {"i": {"projectId": team["pid"], "title": "over the socket"}})
        assert not (await ws.next_data()).get("errors")
        await ws.expect_complete()
    finally:
        await ws.close()
    entry = await AuditEntry.get(action="task.create")
    assert entry.user_agent == "Mozilla/5.0 (socket)"


@pytest.mark.both_databases
async def test_a_hostile_user_agent_is_kept_printable_and_cut_to_the_column(live, team):
    """Header bytes outside ASCII arrive as latin-1 text; a tab is not printable; 2,000
    characters are cut to 512. The write succeeds on both databases."""
    raw = b"\xe9vil\tagent " + b"A" * 2_000
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"http://{live}/graphql",
            json={"query": CREATE, "variables": {"i": {"projectId": team["pid"], "title": "ua"}}},
            headers=[(b"authorization", f"Bearer {team['owner'].token}".encode()), (b"user-agent", raw)],
        )
    assert not response.json().get("errors"), response.text
    entry = await AuditEntry.get(action="task.create")
    assert entry.user_agent == ("\u00e9vilagent " + "A" * 2_000)[:512]
    assert len(entry.user_agent) == 512


@pytest.mark.parametrize("who,code", [("member", "FORBIDDEN"), ("stranger", "NOT_FOUND")])
async def test_who_may_watch(live, team, factory, who, code):
    actor = team["member"] if who == "member" else await factory.user("Stranger")
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=actor.token)
    try:
        await ws.subscribe(AUDIT, {"o": team["oid"]})
        seen = await ws.next_data()
        await ws.expect_complete()
        await ws.subscribe(AUDIT, {"o": gid("Organization", 987_654)})
        missing = await ws.next_data()
        await ws.expect_complete()
        await ws.subscribe(AUDIT, {"o": "not an id"})
        malformed = await ws.next_data()
        await ws.expect_complete()
    finally:
        await ws.close()
    assert seen["errors"][0]["extensions"]["code"] == code
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert malformed["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    if who == "stranger":
        strip = lambda r: [{k: v for k, v in e.items() if k != "locations"} for e in r["errors"]]  # noqa: E731
        assert strip(seen) == strip(missing)


async def test_an_admin_api_key_may_watch_a_member_key_may_not(live, team):
    from tests.membership_helpers import make_key

    _, admin_key = await make_key(team["org"], team["owner"], OrgRole.ADMIN)
    _, member_key = await make_key(team["org"], team["owner"], OrgRole.MEMBER)
    refused = await GraphQLWS.connect(f"ws://{live}/graphql", payload={"authorization": member_key})
    try:
        await refused.subscribe(AUDIT, {"o": team["oid"]})
        assert (await refused.next_data())["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    finally:
        await refused.close()
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", payload={"authorization": admin_key})
    try:
        await ws.subscribe(AUDIT, {"o": team["oid"]})
        await asyncio.sleep(0.1)
        await create_task(live, team["owner"].token, team["pid"], "seen by the key")
        assert (await next_event(ws))["entry"]["after"]["title"] == "seen by the key"
    finally:
        await ws.close()


@pytest.mark.parametrize("change", ["demoted", "removed"])
async def test_losing_admin_ends_the_stream_without_the_entry_that_did_it(live, team, change):
    ws = await subscribe(live, team["admin"].token, team["oid"])
    try:
        await create_task(live, team["owner"].token, team["pid"], "before")
        assert (await next_event(ws))["entry"]["action"] == "task.create"
        row = await OrganizationMember.get(organization_id=team["org"].id, user_id=team["admin"].user.id)
        member_id = gid("OrganizationMember", row.id)
        if change == "demoted":
            body = await post(live, team["owner"].token, ROLE, {"i": {"memberId": member_id, "role": "MEMBER"}})
        else:
            body = await post(live, team["owner"].token, REMOVE, {"i": {"memberId": member_id}})
        assert not body.get("errors"), body
        result = await ws.next_data()
        assert result.get("errors"), f"the {change} admin received {result}"
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        await ws.expect_complete()
        await create_task(live, team["owner"].token, team["pid"], "after")
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.5)
    finally:
        await ws.close()


async def test_an_owner_keeps_watching_through_other_peoples_role_changes(live, team):
    ws = await subscribe(live, team["owner"].token, team["oid"])
    try:
        row = await OrganizationMember.get(organization_id=team["org"].id, user_id=team["member"].user.id)
        body = await post(live, team["owner"].token, ROLE,
                          {"i": {"memberId": gid("OrganizationMember", row.id), "role": "ADMIN"}})
        assert not body.get("errors"), body
        event = await next_event(ws)
        assert (event["entry"]["action"], event["entry"]["resourceId"]) == ("member.update_role", str(row.id))
    finally:
        await ws.close()


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_resume_with_the_last_cursor_replays_what_was_missed(live, team, protocol):
    ws = await subscribe(live, team["owner"].token, team["oid"], protocol=protocol)
    await create_task(live, team["owner"].token, team["pid"], "seen")
    last = await next_event(ws)
    await ws.close()
    for i in range(30):
        await create_task(live, team["owner"].token, team["pid"], f"missed {i}")
    ws = await subscribe(live, team["owner"].token, team["oid"], after=last["cursor"], protocol=protocol)
    try:
        replayed = [await next_event(ws) for _ in range(30)]
        assert [e["entry"]["after"]["title"] for e in replayed] == [f"missed {i}" for i in range(30)]
        assert [e["seq"] for e in replayed] == list(range(last["seq"] + 1, last["seq"] + 31))
        await create_task(live, team["owner"].token, team["pid"], "live again")
        assert (await next_event(ws))["seq"] == last["seq"] + 31
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.3)  # no duplicate
    finally:
        await ws.close()


async def test_the_audit_cursor_read_with_the_log_makes_the_subscription_gap_free(live, team):
    await create_task(live, team["owner"].token, team["pid"], "already there")
    body = await post(live, team["admin"].token,
                      "query($o: ID!) { node(id: $o) { ... on Organization { auditCursor "
                      "auditEntries(first: 5) { nodes { seq action } } } } }", {"o": team["oid"]})
    org = body["data"]["node"]
    assert org["auditEntries"]["nodes"] == [{"seq": 1, "action": "task.create"}]
    assert org["auditCursor"] == encode_cursor(team["org"].id, 1)
    await create_task(live, team["owner"].token, team["pid"], "between read and subscribe")
    ws = await subscribe(live, team["admin"].token, team["oid"], after=org["auditCursor"])
    try:
        event = await next_event(ws)
        assert (event["seq"], event["entry"]["after"]["title"]) == (2, "between read and subscribe")
    finally:
        await ws.close()
    member = await post(live, team["member"].token, "query($o: ID!) { node(id: $o) { ... on Organization { auditCursor } } }",
                        {"o": team["oid"]})
    assert member["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_subscribing_while_entries_are_written_has_no_gap_or_duplicate(live, team):
    total = 40

    async def writer():
        for i in range(total):
            await create_task(live, team["owner"].token, team["pid"], f"t{i}")

    writing = asyncio.create_task(writer())
    await asyncio.sleep(0.05)
    ws = await subscribe(live, team["owner"].token, team["oid"], after=encode_cursor(team["org"].id, 0))
    try:
        seqs = [(await next_event(ws))["seq"] for _ in range(total)]
        await writing
        assert seqs == list(range(1, total + 1))
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.3)
    finally:
        await ws.close()


async def test_a_cursor_older_than_the_kept_log_gets_audit_resync_required(live, team):
    for i in range(5):
        await create_task(live, team["owner"].token, team["pid"], f"old {i}")
    await AuditEntry.filter(organization_id=team["org"].id, seq__lte=3).delete()  # pruned
    ws = await subscribe(live, team["owner"].token, team["oid"], after=encode_cursor(team["org"].id, 1))
    try:
        first = await next_event(ws)
        assert first["__typename"] == "AuditResyncRequired" and first["seq"] == 5
        assert first["cursor"] == encode_cursor(team["org"].id, 5)
        await create_task(live, team["owner"].token, team["pid"], "new")
        nxt = await next_event(ws)
        assert (nxt["seq"], nxt["entry"]["after"]["title"]) == (6, "new")
    finally:
        await ws.close()
    # A cursor right before the oldest kept entry is not a gap.
    ws = await subscribe(live, team["owner"].token, team["oid"], after=encode_cursor(team["org"].id, 3))
    try:
        assert [(await next_event(ws))["seq"] for _ in range(3)] == [4, 5, 6]
    finally:
        await ws.close()


async def test_malformed_foreign_or_future_cursors_are_bad_input(live, team, factory):
    other = await factory.org(team["owner"], "other")
    cursors = ["%%%", encode_cursor(other.id, 0), board_cursor(team["org"].id, 0),
               encode_cursor(team["org"].id, 99), "x" * 10_000]
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=team["owner"].token)
    try:
        for cursor in cursors:
            await ws.subscribe(AUDIT, {"o": team["oid"], "after": cursor})
            result = await ws.next_data()
            assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", cursor[:20]
            await ws.expect_complete()
    finally:
        await ws.close()


async def test_entries_of_another_organization_or_of_none_are_not_streamed(live, team, factory):
    other = await factory.org(team["owner"], "elsewhere")
    other_project = await factory.project(other, team["owner"], "Elsewhere")
    ws = await subscribe(live, team["owner"].token, team["oid"])
    try:
        await create_task(live, team["owner"].token, gid("Project", other_project.id), "not here")
        body = await post(live, None, "mutation($i: SignUpInput!) { signUp(input: $i) { ok } }",
                          {"i": {"email": "new@example.test", "name": "New", "password": "long enough password"}})
        assert not body.get("errors"), body
        body = await post(live, None, "mutation($i: LogInInput!) { logIn(input: $i) { accessToken } }",
                          {"i": {"email": team["owner"].user.email, "password": PASSWORD}})
        assert not body.get("errors"), body
        await create_task(live, team["owner"].token, team["pid"], "here")
        event = await next_event(ws)
        assert (event["seq"], event["entry"]["after"]["title"]) == (1, "here")
    finally:
        await ws.close()
    for action in ("user.sign_up", "user.log_in"):
        entry = await AuditEntry.get(action=action)
        assert entry.organization_id is None and entry.seq is None


async def test_a_large_entry_travels_as_a_stub_and_is_read_from_the_log(live, team):
    """Messages over the wire limit go out without the entry; subscribers read it back."""
    ws = await subscribe(live, team["owner"].token, team["oid"])
    try:
        await create_task(live, team["owner"].token, team["pid"], "x" * 500)
        description = "d" * 9_000
        body = await post(live, team["owner"].token,
                          "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }",
                          {"i": {"projectId": team["pid"], "title": "big", "description": description}})
        assert not body.get("errors"), body
        small, big = await next_event(ws), await next_event(ws)
        assert (small["seq"], big["seq"]) == (1, 2)
        assert big["entry"]["after"]["description"] == description
    finally:
        await ws.close()


# -- sharing one execution between subscribers (schema/sharing.py) ------------------------------


async def test_subscribers_whose_answers_may_differ_get_their_own(live, team, factory):
    """Owner and admin select role-dependent fields of the same entry (written with an API
    key): each gets what it would get alone over HTTP, in either order of first execution."""
    from tests.membership_helpers import make_key

    _, key = await make_key(team["org"], team["owner"], OrgRole.ADMIN)
    query = """subscription($o: ID!) { auditEntries(organizationId: $o) { seq
      ... on AuditEntryAdded { entry { id apiKey { name organization { viewerRole } } } } } }"""
    actors = [team["owner"], team["admin"], team["owner"], team["admin"]]
    sockets = [await GraphQLWS.connect(f"ws://{live}/graphql", token=a.token) for a in actors]
    try:
        for ws in sockets:
            await ws.subscribe(query, {"o": team["oid"]})
        await asyncio.sleep(0.2)
        await create_task(live, key, team["pid"], "by the key")
        answers = [(await ws.next_data())["data"]["auditEntries"]["entry"] for ws in sockets]
    finally:
        for ws in sockets:
            await ws.close()
    alone = {}
    for actor in (team["owner"], team["admin"]):
        body = await post(live, actor.token, "query($id: ID!) { node(id: $id) { ... on AuditEntry { id "
                          "apiKey { name organization { viewerRole } } } } }", {"id": answers[0]["id"]})
        alone[actor.user.id] = body["data"]["node"]
    assert alone[team["owner"].user.id] != alone[team["admin"].user.id]
    assert answers == [alone[a.user.id] for a in actors]


async def test_one_execution_per_entry_for_subscribers_who_share_an_answer(live, team, factory, monkeypatch):
    from schema import sharing

    second_admin = await factory.user("Ada")
    await factory.org_member(team["org"], second_admin, OrgRole.ADMIN)
    executions = []
    original = sharing.execute_shared

    def counting(executor, execute, serially):
        def counted(s):
            executions.append(1)
            return execute(s)
        return original(executor, counted, serially)

    monkeypatch.setattr(sharing, "execute_shared", counting)
    actors = [team["owner"], team["admin"], second_admin, team["admin"]]
    sockets = [await GraphQLWS.connect(f"ws://{live}/graphql", token=a.token) for a in actors]
    try:
        for ws in sockets:
            await ws.subscribe(AUDIT, {"o": team["oid"], "after": None})
        await asyncio.sleep(0.2)
        await create_task(live, team["owner"].token, team["pid"], "once")
        events = [await next_event(ws) for ws in sockets]
    finally:
        for ws in sockets:
            await ws.close()
    assert {e["entry"]["after"]["title"] for e in events} == {"once"} and len(events) == 4
    assert len(executions) == 1
