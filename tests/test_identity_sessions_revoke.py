"""Ending sessions: viewer.sessions, revokeSession, logOut, logOutEverywhere and an owner's
endMemberSessions. An ended session's access tokens stop at once (no statement spent on
them), its refresh token stops, and its websockets close with 4403 as it ends. The
account's own log (viewer.securityLog) shows it all to the person, and to nobody else."""

from __future__ import annotations

import asyncio
import json

import httpx
import jwt
import pytest

from models import AuditEntry, OrgRole, Session, SessionEndReason
from tests.conftest import PASSWORD, SECRET, gid
from tests.membership_helpers import make_key
from tests.querycount import count_statements
from tests.wsclient import LEGACY_WS, TRANSPORT_WS, Closed, GraphQLWS, closed_within

VIEWER = "{ viewer { user { id } } }"
SESSIONS = """query($all: Boolean!) { viewer { sessions(includeEnded: $all) {
  totalCount nodes { id current active endReason revokedAt userAgent } } } }"""
REVOKE = "mutation($i: RevokeSessionInput!) { revokeSession(input: $i) { session { id active endReason current } } }"
LOG_OUT = "mutation { logOut { session { id endReason active } } }"
EVERYWHERE = "mutation($i: LogOutEverywhereInput) { logOutEverywhere(input: $i) { sessionsEnded } }"
END = "mutation($i: EndMemberSessionsInput!) { endMemberSessions(input: $i) { sessionsEnded } }"
LOG_IN = "mutation($i: LogInInput!) { logIn(input: $i) { accessToken refreshToken session { id } } }"
REFRESH = "mutation($i: RefreshTokenInput!) { refreshToken(input: $i) { accessToken } }"
SECURITY_LOG = """{ viewer { securityLog(first: 20) { totalCount nodes {
  id action resourceType resourceId ip after actor { id } } } } }"""
BOARD = "subscription($p: ID!) { boardEvents(projectId: $p) { __typename seq } }"


async def log_in(gql, actor) -> dict:
    return (await gql.ok(LOG_IN, {"i": {"email": actor.user.email, "password": PASSWORD}}))["logIn"]


def sid(token: str) -> int:
    return int(jwt.decode(token, SECRET, algorithms=["HS256"])["sid"])


async def refused(gql, token: str) -> str:
    error = await gql.error(VIEWER, token=token)
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    return error["extensions"]["reason"]


async def test_viewer_sessions_flags_the_current_one(gql, factory):
    ada = await factory.user("Ada")
    other = await log_in(gql, ada)
    data = await gql.ok(SESSIONS, {"all": False}, token=ada.token)
    nodes = data["viewer"]["sessions"]["nodes"]
    assert data["viewer"]["sessions"]["totalCount"] == 2
    assert [n["id"] for n in nodes] == [other["session"]["id"], gid("Session", ada.session_id)]  # newest first
    assert [n["current"] for n in nodes] == [False, True]
    assert all(n["active"] and n["endReason"] is None for n in nodes)
    # Seen from the other session, the other one is current.
    data = await gql.ok(SESSIONS, {"all": False}, token=other["accessToken"])
    assert [n["current"] for n in data["viewer"]["sessions"]["nodes"]] == [True, False]
    # Someone else's sessions are never listed.
    bob = await factory.user("Bob")
    data = await gql.ok(SESSIONS, {"all": True}, token=bob.token)
    assert [n["id"] for n in data["viewer"]["sessions"]["nodes"]] == [gid("Session", bob.session_id)]


async def test_revoke_another_session_stops_it_at_once(gql, factory):
    ada = await factory.user("Ada")
    laptop = await log_in(gql, ada)
    data = await gql.ok(REVOKE, {"i": {"sessionId": laptop["session"]["id"]}}, token=ada.token)
    assert data["revokeSession"]["session"] == {
        "id": laptop["session"]["id"], "active": False, "endReason": "REVOKED", "current": False}
    assert await refused(gql, laptop["accessToken"]) == "SESSION_REVOKED"
    body = await gql.raw(REFRESH, {"i": {"refreshToken": laptop["refreshToken"]}})
    assert body["errors"][0]["extensions"]["reason"] == "SESSION_REVOKED"
    await gql.ok(VIEWER, token=ada.token)  # the session that did it goes on
    # Twice: the same answer, nothing written.
    entries = await AuditEntry.all().count()
    again = await gql.ok(REVOKE, {"i": {"sessionId": laptop["session"]["id"]}}, token=ada.token)
    assert again["revokeSession"]["session"]["endReason"] == "REVOKED"
    assert await AuditEntry.all().count() == entries
    listed = await gql.ok(SESSIONS, {"all": True}, token=ada.token)
    assert [n["endReason"] for n in listed["viewer"]["sessions"]["nodes"]] == ["REVOKED", None]
    entry = await AuditEntry.get(action="session.revoke")
    assert (entry.actor_id, entry.organization_id, entry.resource_id) == (
        ada.user.id, None, str(sid(laptop["accessToken"])))
    assert entry.after["revokeReason"] == "revoked" and entry.before["revokeReason"] is None


async def test_another_persons_session_answers_like_a_missing_one(gql, factory):
    ada = await factory.user("Ada")
    bob = await factory.user("Bob")
    theirs = gid("Session", bob.session_id)
    missing = gid("Session", 987_654)
    seen = await gql.error(REVOKE, {"i": {"sessionId": theirs}}, token=ada.token)
    made_up = await gql.error(REVOKE, {"i": {"sessionId": missing}}, token=ada.token)
    assert seen == made_up and seen["extensions"]["code"] == "NOT_FOUND"
    node = "query($id: ID!) { node(id: $id) { id } }"
    assert await gql.raw(node, {"id": theirs}, token=ada.token) == await gql.raw(node, {"id": missing}, token=ada.token)
    assert (await gql.ok(node, {"id": gid("Session", ada.session_id)}, token=ada.token))["node"]
    await gql.ok(VIEWER, token=bob.token)
    assert (await Session.get(id=bob.session_id)).revoked_at is None
    # Malformed IDs and IDs of other types are refused as input, never looked up.
    for bad in ("nope", gid("User", bob.user.id)):
        assert (await gql.error(REVOKE, {"i": {"sessionId": bad}}, token=ada.token))["extensions"]["code"] == "BAD_USER_INPUT"


async def test_log_out_ends_the_current_session(gql, factory):
    ada = await factory.user("Ada")
    phone = await log_in(gql, ada)
    data = await gql.ok(LOG_OUT, token=phone["accessToken"])
    assert data["logOut"]["session"] == {"id": phone["session"]["id"], "endReason": "LOG_OUT", "active": False}
    assert await refused(gql, phone["accessToken"]) == "SESSION_REVOKED"
    body = await gql.raw(REFRESH, {"i": {"refreshToken": phone["refreshToken"]}})
    assert body["errors"][0]["extensions"]["reason"] == "SESSION_REVOKED"
    await gql.ok(VIEWER, token=ada.token)
    assert await gql.code(LOG_OUT) == "UNAUTHENTICATED"
    entry = await AuditEntry.get(action="user.log_out")
    assert (entry.actor_id, entry.resource_id) == (ada.user.id, str(sid(phone["accessToken"])))


async def test_revoking_the_current_session_is_logging_out(gql, factory):
    ada = await factory.user("Ada")
    data = await gql.ok(REVOKE, {"i": {"sessionId": gid("Session", ada.session_id)}}, token=ada.token)
    assert data["revokeSession"]["session"]["endReason"] == "LOG_OUT"
    assert await refused(gql, ada.token) == "SESSION_REVOKED"


async def test_log_out_everywhere(gql, factory):
    ada = await factory.user("Ada")
    others = [await log_in(gql, ada) for _ in range(3)]
    data = await gql.ok(EVERYWHERE, {"i": {"keepCurrent": True}}, token=ada.token)
    assert data["logOutEverywhere"]["sessionsEnded"] == 3
    for other in others:
        assert await refused(gql, other["accessToken"]) == "SESSION_REVOKED"
    await gql.ok(VIEWER, token=ada.token)
    data = await gql.ok(EVERYWHERE, token=ada.token)
    assert data["logOutEverywhere"]["sessionsEnded"] == 1
    assert await refused(gql, ada.token) == "SESSION_REVOKED"
    reasons = {s.revoke_reason for s in await Session.filter(user_id=ada.user.id)}
    assert reasons == {SessionEndReason.LOG_OUT_EVERYWHERE}
    entries = await AuditEntry.filter(action="user.log_out_everywhere").order_by("id")
    assert [e.after for e in entries] == [
        {"sessionsEnded": 3, "keptCurrent": True}, {"sessionsEnded": 1, "keptCurrent": False}]


async def test_api_keys_have_no_sessions(gql, factory, acme):
    org, owner, _, _ = acme
    _, key = await make_key(org, owner, OrgRole.OWNER)
    for document, variables in [
        (SESSIONS, {"all": True}),
        (SECURITY_LOG, None),
        (LOG_OUT, None),
        (EVERYWHERE, None),
        (REVOKE, {"i": {"sessionId": gid("Session", owner.session_id)}}),
    ]:
        error = await gql.error(document, variables, key)
        assert error["extensions"]["code"] == "FORBIDDEN", document
    await gql.ok(VIEWER, token=owner.token)


async def test_an_owner_ends_a_members_sessions(gql, factory, acme):
    org, owner, admin, member = acme
    laptop = await log_in(gql, member)
    org_id = gid("Organization", org.id)
    data = await gql.ok(END, {"i": {"organizationId": org_id, "userId": member.gid}}, token=owner.token)
    assert data["endMemberSessions"]["sessionsEnded"] == 2
    for token in (member.token, laptop["accessToken"]):
        assert await refused(gql, token) == "SESSION_REVOKED"
    assert {s.revoke_reason for s in await Session.filter(user_id=member.user.id)} == {
        SessionEndReason.ENDED_BY_ORGANIZATION}
    # Visible in the organization's log, to its owners and admins.
    log = """query { organization(slug: "acme") { auditEntries(filter: {action: "member.end_sessions"}) {
               nodes { actor { id } after resourceType } } } }"""
    nodes = (await gql.ok(log, token=admin.token))["organization"]["auditEntries"]["nodes"]
    assert nodes == [{"actor": {"id": owner.gid}, "resourceType": "OrganizationMember",
                      "after": {"userId": member.user.id, "sessionsEnded": 2}}]
    # The member logs in again as usual.
    await gql.ok(VIEWER, token=(await log_in(gql, member))["accessToken"])
    # Admins and members may not; someone outside the organization is not found.
    again = await log_in(gql, member)
    for token in (admin.token, again["accessToken"]):
        error = await gql.error(END, {"i": {"organizationId": org_id, "userId": owner.gid}}, token)
        assert error["extensions"] == {"code": "FORBIDDEN", "requiredRole": "owner"}
    stranger = await factory.user("Stranger")
    seen = await gql.error(END, {"i": {"organizationId": org_id, "userId": stranger.gid}}, owner.token)
    missing = await gql.error(END, {"i": {"organizationId": org_id, "userId": gid("User", 987_654)}}, owner.token)
    assert seen == missing and seen["extensions"]["code"] == "NOT_FOUND"
    await gql.ok(VIEWER, token=stranger.token)


# -- statements ------------------------------------------------------------------------------------


async def test_an_authenticated_request_costs_what_it_did_before_sessions(gql, factory):
    """The token's user and the viewer's memberships (the rate limiter's budget), as before
    sessions: the session is checked against the in-process set of ended sessions, whatever
    its size. A token of an ended session costs no statement at all."""
    ada = await factory.user("Ada")
    with count_statements() as log:
        await gql.ok(VIEWER, token=ada.token)
    assert log.count == 2, log.report()
    ended = [await log_in(gql, ada) for _ in range(3)]
    await gql.ok(EVERYWHERE, {"i": {"keepCurrent": True}}, token=ada.token)
    # Ended sessions of others too, many of them.
    people = [await factory.user() for _ in range(20)]
    for person in people:
        await gql.ok(LOG_OUT, token=person.token)
    with count_statements() as log:
        await gql.ok(VIEWER, token=ada.token)
    assert log.count == 2, log.report()
    with count_statements() as log:
        assert await refused(gql, ended[0]["accessToken"]) == "SESSION_REVOKED"
    assert log.count == 0, log.report()


# -- websockets ----------------------------------------------------------------------------------


@pytest.fixture
async def board(factory):
    owner = await factory.user("Olga")
    org = await factory.org(owner)
    project = await factory.project(org, owner, "Live")
    return owner, gid("Project", project.id)


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_ending_a_session_closes_its_websockets_at_once(live, gql, board, protocol):
    owner, project_id = board
    laptop = await log_in(gql, owner)
    doomed = await GraphQLWS.connect(f"ws://{live}/graphql", protocol, token=laptop["accessToken"])
    spared = await GraphQLWS.connect(f"ws://{live}/graphql", protocol, token=owner.token)
    try:
        for ws in (doomed, spared):
            await ws.subscribe(BOARD, {"p": project_id})
        await asyncio.sleep(0.2)
        await gql.ok(REVOKE, {"i": {"sessionId": laptop["session"]["id"]}}, token=owner.token)
        closed = await closed_within(doomed, 1.0)
        assert (closed.code, closed.reason) == (4403, "UNAUTHENTICATED: Session ended (SESSION_REVOKED)")
        # The other session's socket streams on.
        await gql.ok("mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }",
                     {"i": {"projectId": project_id, "title": "still here"}}, token=owner.token)
        assert (await spared.next_data())["data"]["boardEvents"]["seq"] == 1
        # The ended session cannot open another one.
        with pytest.raises(Closed) as again:
            await GraphQLWS.connect(f"ws://{live}/graphql", protocol, token=laptop["accessToken"])
        assert again.value.code == 4403
    finally:
        await spared.close()
        await doomed.close()


async def test_log_out_everywhere_closes_every_socket_and_leaves_no_watch_behind(live, gql, app, board):
    owner, project_id = board
    sockets = [await GraphQLWS.connect(f"ws://{live}/graphql", token=(await log_in(gql, owner))["accessToken"])
               for _ in range(3)]
    registry = app.state.sessions
    assert registry.watched() == 3
    await gql.ok(EVERYWHERE, token=owner.token)
    for ws in sockets:
        assert (await closed_within(ws, 1.0)).code == 4403
    for _ in range(50):
        if registry.watched() == 0:
            break
        await asyncio.sleep(0.02)
    assert registry.watched() == 0


async def test_a_socket_closed_by_its_client_is_forgotten(live, gql, app, board):
    owner, _ = board
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=owner.token)
    assert app.state.sessions.watched() == 1
    await ws.close()
    for _ in range(50):
        if app.state.sessions.watched() == 0:
            break
        await asyncio.sleep(0.02)
    assert app.state.sessions.watched() == 0


# -- the security log ------------------------------------------------------------------------------


async def test_security_log_shows_the_accounts_own_entries(gql, factory, acme):
    org, owner, _, member = acme
    await gql.raw(LOG_IN, {"i": {"email": member.user.email, "password": "wrong"}})
    phone = await log_in(gql, member)
    await gql.ok(REFRESH, {"i": {"refreshToken": phone["refreshToken"]}})
    await gql.ok(LOG_OUT, token=phone["accessToken"])
    await gql.ok(END, {"i": {"organizationId": gid("Organization", org.id), "userId": member.gid}},
                 token=owner.token)
    await log_in(gql, owner)  # someone else's login
    fresh = await log_in(gql, member)
    data = await gql.ok(SECURITY_LOG, token=fresh["accessToken"])
    nodes = data["viewer"]["securityLog"]["nodes"]
    assert [n["action"] for n in nodes] == [
        "user.log_in", "user.log_out", "session.refresh", "user.log_in", "user.log_in_failed"]
    assert data["viewer"]["securityLog"]["totalCount"] == 5
    assert {n["actor"]["id"] for n in nodes} == {member.gid}
    assert {n["ip"] for n in nodes} == {"203.0.113.7"}
    # The organization's own entry is in the organization's log, not the account's.
    assert "member.end_sessions" not in {n["action"] for n in nodes}
    # Each entry resolves by ID for its person, and for nobody else.
    node = "query($id: ID!) { node(id: $id) { ... on AuditEntry { action } } }"
    assert (await gql.ok(node, {"id": nodes[0]["id"]}, token=fresh["accessToken"]))["node"] == {"action": "user.log_in"}
    assert (await gql.ok(node, {"id": nodes[0]["id"]}, token=owner.token))["node"] is None
    theirs = (await gql.ok(SECURITY_LOG, token=owner.token))["viewer"]["securityLog"]["nodes"]
    assert {n["actor"]["id"] for n in theirs} == {owner.gid}


# -- cost and statements of the new lists ------------------------------------------------------------


async def test_the_new_fields_are_counted_by_the_cost_analysis(gql, factory):
    ada = await factory.user("Ada")
    query = """{ viewer { sessions(first: 100) { nodes { id } }
                          securityLog(first: 100) { nodes { id actor { id } } } } }"""
    body = await gql.raw(query, token=ada.token)
    # viewer 1; sessions 1 + 100 sessions; securityLog 1 + 100 × (entry + actor).
    assert body["extensions"]["cost"]["requested"] == 1 + (1 + 100) + (1 + 100 * 2)
    body = await gql.raw('{ organization(slug: "x") { sessionPolicy { maxAge } } }', token=ada.token)
    assert body["extensions"]["cost"]["requested"] == 2


async def test_listing_sessions_costs_the_same_for_2_or_40(gql, factory):
    counts = []
    for n in (2, 40):
        person = await factory.user()
        for _ in range(n - 1):
            await log_in(gql, person)
        with count_statements() as log:
            data = await gql.ok("""{ viewer { sessions(first: 100) { totalCount nodes { id current active } }
                                             securityLog(first: 100) { totalCount nodes { action actor { name } } } } }""",
                                token=person.token)
        assert data["viewer"]["sessions"]["totalCount"] == n
        assert data["viewer"]["securityLog"]["totalCount"] == n - 1
        counts.append(log.count)
    # user, memberships, sessions page and count, log page and count, the actors' loader.
    assert counts == [7, 7]


async def test_a_subscription_over_server_sent_events_ends_with_its_session(live, gql, board):
    """No socket to close: the stream is told through the user's access channel, checks its
    session and ends with UNAUTHENTICATED."""
    owner, project_id = board
    laptop = await log_in(gql, owner)
    headers = {"authorization": f"Bearer {laptop['accessToken']}", "accept": "text/event-stream"}
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("POST", f"http://{live}/graphql", headers=headers,
                                 json={"query": BOARD, "variables": {"p": project_id}}) as response:
            assert response.status_code == 200
            await asyncio.sleep(0.3)
            await gql.ok(REVOKE, {"i": {"sessionId": laptop["session"]["id"]}}, token=owner.token)

            async def first_payload() -> dict:
                event = None
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        event = line.removeprefix("event: ")
                    elif line.startswith("data: ") and event == "next":
                        return json.loads(line.removeprefix("data: "))
                raise AssertionError("the stream ended without a result")

            payload = await asyncio.wait_for(first_payload(), 5)
    assert payload["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED", "reason": "SESSION_REVOKED"}


async def test_many_sessions_end_in_messages_a_postgres_notify_can_carry(gql, app, factory):
    """logOutEverywhere over 450 sessions: three messages of at most 200 ids, each well under
    the 8,000 bytes PostgreSQL's NOTIFY carries, and every token refused."""
    from resolvers.identity.revocations import CHANNEL
    from resolvers.identity.sessions import issue_outside_request
    from tests.conftest import SECRET as secret

    ada = await factory.user("Ada")
    tokens = [(await issue_outside_request(ada.user, secret, 900)).access_token for _ in range(449)]
    messages = []
    async with app.state.broadcast.subscribe(CHANNEL) as subscription:
        data = await gql.ok(EVERYWHERE, token=ada.token)
        assert data["logOutEverywhere"]["sessionsEnded"] == 450
        while sum(len(json.loads(m)) for m in messages) < 450:
            messages.append((await asyncio.wait_for(subscription.get(), 2)).message)
    assert [len(json.loads(m)) for m in messages] == [200, 200, 50]
    assert max(len(m.encode()) for m in messages) < 8000
    for token in tokens[::50]:
        assert await refused(gql, token) == "SESSION_REVOKED"
