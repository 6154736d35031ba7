"""Sessions: logIn opens one (a short access token naming it, a rotating refresh token),
refreshToken rotates, reuse ends the session, and every refusal says why in
extensions.reason. Hostile and careless clients included: forged, overlong, reused and
concurrent refresh tokens, expired sessions, tokens from before sessions existed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from models import AuditEntry, Organization, Plan, RefreshToken, Session, SessionEndReason
from resolvers.identity.sessions import REUSE_GRACE
from tests.conftest import PASSWORD, SECRET, gid
from tests.querycount import count_statements

LOG_IN = """mutation($i: LogInInput!) { logIn(input: $i) {
  accessToken expiresAt refreshToken user { id }
  session { id current userAgent ip active createdAt lastUsedAt expiresAt idleExpiresAt } } }"""
REFRESH = """mutation($i: RefreshTokenInput!) { refreshToken(input: $i) {
  accessToken expiresAt refreshToken session { id } user { id } } }"""
VIEWER = "{ viewer { user { id } } }"


async def log_in(gql, actor, user_agent: str | None = None) -> dict:
    headers = {"User-Agent": user_agent} if user_agent else {}
    response = await gql.http.post("/graphql", headers=headers, json={
        "query": LOG_IN, "variables": {"i": {"email": actor.user.email, "password": PASSWORD}}})
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]["logIn"]


async def refresh(gql, token) -> dict:
    return await gql.raw(REFRESH, {"i": {"refreshToken": token}})


def reason(body: dict) -> tuple[str, str | None]:
    assert body.get("errors") and body["data"] is None, body
    extensions = body["errors"][0]["extensions"]
    return extensions["code"], extensions.get("reason")


def claims(token: str) -> dict:
    return jwt.decode(token, SECRET, algorithms=["HS256"])


# -- logIn ----------------------------------------------------------------------------------------


async def test_log_in_opens_a_session_with_both_tokens(gql, factory):
    ada = await factory.user("Ada")
    before = datetime.now(UTC)
    data = await log_in(gql, ada, user_agent="Firefox/140 \x07(bell)")
    session = await Session.get(id=claims(data["accessToken"])["sid"])
    assert data["session"]["id"] == gid("Session", session.id)
    assert data["session"]["current"] is False  # the logIn request itself carried no token
    assert data["session"]["userAgent"] == "Firefox/140 (bell)" == session.user_agent
    assert data["session"]["ip"] == "203.0.113.7" and data["session"]["active"] is True
    assert data["refreshToken"].startswith("pcgr_") and len(data["refreshToken"]) == 48
    # Only a hash of the refresh token is kept.
    stored = await RefreshToken.get(session_id=session.id)
    assert stored.token_hash != data["refreshToken"] and len(stored.token_hash) == 64
    assert data["refreshToken"] not in str(await RefreshToken.all().values())
    # 15 minutes by default; the session itself lasts the server's 14 idle / 30 days.
    token = claims(data["accessToken"])
    assert token["exp"] - token["iat"] == 900 and token["sub"] == str(ada.user.id)
    assert session.idle_expires_at - session.last_used_at == timedelta(days=14)
    assert session.expires_at - session.created_at == timedelta(days=30)
    assert session.tokens_expire_at.timestamp() == token["exp"]
    assert before <= session.created_at <= datetime.now(UTC)
    assert (await gql.ok(VIEWER, token=data["accessToken"]))["viewer"]["user"]["id"] == ada.gid
    entry = await AuditEntry.get(action="user.log_in")
    assert (entry.organization_id, entry.actor_id, entry.resource_type, entry.resource_id) == (
        None, ada.user.id, "Session", str(session.id))


# -- refreshToken ---------------------------------------------------------------------------------


async def test_refresh_rotates(gql, factory):
    ada = await factory.user("Ada")
    first = await log_in(gql, ada)
    second = (await refresh(gql, first["refreshToken"]))["data"]["refreshToken"]
    assert second["refreshToken"] != first["refreshToken"]
    assert second["session"]["id"] == first["session"]["id"]
    assert claims(second["accessToken"])["sid"] == claims(first["accessToken"])["sid"]
    assert second["accessToken"] != first["accessToken"]
    # Both access tokens work until they expire; the next refresh takes the new token.
    for token in (first["accessToken"], second["accessToken"]):
        await gql.ok(VIEWER, token=token)
    third = (await refresh(gql, second["refreshToken"]))["data"]["refreshToken"]
    assert third["session"]["id"] == first["session"]["id"]
    rows = await RefreshToken.filter(session_id=claims(first["accessToken"])["sid"]).order_by("id")
    assert [r.parent_id for r in rows] == [None, rows[0].id, rows[1].id]
    assert [r.used_at is not None for r in rows] == [True, True, False]
    session = await Session.get(id=claims(first["accessToken"])["sid"])
    assert session.tokens_expire_at.timestamp() == claims(third["accessToken"])["exp"]
    actions = [e.action for e in await AuditEntry.filter(actor_id=ada.user.id).order_by("id")]
    assert actions == ["user.log_in", "session.refresh", "session.refresh"]


async def test_reusing_a_rotated_token_ends_the_session(gql, factory):
    ada = await factory.user("Ada")
    first = await log_in(gql, ada)
    second = (await refresh(gql, first["refreshToken"]))["data"]["refreshToken"]
    third = (await refresh(gql, second["refreshToken"]))["data"]["refreshToken"]
    # The first token comes back (a thief's copy, or the victim's after the thief refreshed).
    assert reason(await refresh(gql, first["refreshToken"])) == ("UNAUTHENTICATED", "REFRESH_TOKEN_REUSED")
    session = await Session.get(id=claims(first["accessToken"])["sid"])
    assert session.revoke_reason is SessionEndReason.REFRESH_TOKEN_REUSE
    # Every token of the session is dead at once: the latest refresh token, every access token.
    assert reason(await refresh(gql, third["refreshToken"])) == ("UNAUTHENTICATED", "SESSION_REVOKED")
    for token in (first["accessToken"], third["accessToken"]):
        error = await gql.error(VIEWER, token=token)
        assert error["extensions"] == {"code": "UNAUTHENTICATED", "reason": "SESSION_REVOKED"}
    # Again: still refused, and audited once.
    assert reason(await refresh(gql, first["refreshToken"]))[1] == "SESSION_REVOKED"
    reuse = await AuditEntry.filter(action="session.refresh_token_reuse")
    assert [(e.actor_id, e.organization_id, e.resource_id) for e in reuse] == [
        (ada.user.id, None, str(session.id))]
    # Another session of the same person is untouched.
    assert (await gql.ok(VIEWER, token=ada.token))["viewer"]["user"]["id"] == ada.gid


async def test_a_retry_within_the_grace_window_gets_the_same_successor(gql, factory):
    """A lost response, or a second tab: the same token again within seconds of its exchange,
    while its successor is unused, answers that very successor. No branch, no second row."""
    ada = await factory.user("Ada")
    first = await log_in(gql, ada)
    second = (await refresh(gql, first["refreshToken"]))["data"]["refreshToken"]
    again = (await refresh(gql, first["refreshToken"]))["data"]["refreshToken"]
    assert again["refreshToken"] == second["refreshToken"]
    assert claims(again["accessToken"])["exp"] <= claims(second["accessToken"])["exp"]
    assert await RefreshToken.filter(session_id=claims(first["accessToken"])["sid"]).count() == 2
    assert await AuditEntry.filter(action="session.refresh").count() == 1  # a replay writes nothing
    # The successor rotates once as usual; after that, the first token is plain reuse.
    third = (await refresh(gql, second["refreshToken"]))["data"]["refreshToken"]
    assert reason(await refresh(gql, first["refreshToken"]))[1] == "REFRESH_TOKEN_REUSED"
    assert reason(await refresh(gql, third["refreshToken"]))[1] == "SESSION_REVOKED"


async def test_after_the_grace_window_a_retry_is_reuse(gql, factory):
    ada = await factory.user("Ada")
    first = await log_in(gql, ada)
    await refresh(gql, first["refreshToken"])
    old = datetime.now(UTC) - REUSE_GRACE - timedelta(seconds=1)
    sid = claims(first["accessToken"])["sid"]
    await RefreshToken.filter(session_id=sid, parent_id__isnull=True).update(used_at=old)
    assert reason(await refresh(gql, first["refreshToken"])) == ("UNAUTHENTICATED", "REFRESH_TOKEN_REUSED")
    assert (await Session.get(user_id=ada.user.id, revoked_at__isnull=False)).revoke_reason is (
        SessionEndReason.REFRESH_TOKEN_REUSE)


@pytest.mark.both_databases
async def test_concurrent_refreshes_rotate_once(gql, factory):
    """Eight clients exchange the same token at once: one rotation (one row, one audit
    entry), and every one of them gets the same successor, not a branch each."""
    ada = await factory.user("Ada")
    first = await log_in(gql, ada)
    bodies = await asyncio.gather(*(refresh(gql, first["refreshToken"]) for _ in range(8)))
    assert all(not b.get("errors") for b in bodies), bodies
    successors = {b["data"]["refreshToken"]["refreshToken"] for b in bodies}
    assert len(successors) == 1
    assert await RefreshToken.filter(session_id=claims(first["accessToken"])["sid"]).count() == 2
    assert await AuditEntry.filter(action="session.refresh").count() == 1
    assert await Session.filter(revoked_at__isnull=False).count() == 0
    (successor,) = successors
    assert not (await refresh(gql, successor)).get("errors")


@pytest.mark.both_databases
async def test_a_refresh_racing_log_out_everywhere_leaves_no_token_alive(gql, factory):
    ada = await factory.user("Ada")
    sessions = [await log_in(gql, ada) for _ in range(3)]
    everywhere = gql.raw("mutation { logOutEverywhere { sessionsEnded } }", token=ada.token)
    results = await asyncio.gather(everywhere, *(refresh(gql, s["refreshToken"]) for s in sessions))
    assert not results[0].get("errors")
    issued = [r["data"]["refreshToken"] for r in results[1:] if not r.get("errors")]
    for body in results[1:]:
        if body.get("errors"):
            assert reason(body) == ("UNAUTHENTICATED", "SESSION_REVOKED")
    # Whoever won each race, nothing issued to these sessions works now.
    for pair in issued:
        assert (await gql.error(VIEWER, token=pair["accessToken"]))["extensions"]["reason"] == "SESSION_REVOKED"
        assert reason(await refresh(gql, pair["refreshToken"]))[1] == "SESSION_REVOKED"
    for session in sessions:
        assert reason(await refresh(gql, session["refreshToken"]))[1] == "SESSION_REVOKED"
    assert await Session.filter(user_id=ada.user.id, revoked_at__isnull=True).count() == 0


@pytest.mark.parametrize("token", [
    "pcgr_" + "A" * 43,  # well-formed, unknown
    "pcgr_" + "A" * 10_000,  # overlong
    "",
    "not-a-token",
    "pcg_an-api-key-is-not-a-refresh-token",
])
async def test_forged_tokens_are_invalid(gql, factory, token):
    await factory.user("Ada")
    assert reason(await refresh(gql, token)) == ("UNAUTHENTICATED", "TOKEN_INVALID")
    assert await AuditEntry.all().count() == 0


async def test_overlong_and_malformed_tokens_cost_no_statement(gql):
    for token in ("pcgr_" + "x" * 200, "eyJhbGciOi.not.ours"):
        with count_statements() as log:
            assert reason(await refresh(gql, token))[1] == "TOKEN_INVALID"
        assert log.count == 0, log.report()


async def test_careless_inputs(gql, factory):
    ada = await factory.user("Ada")
    first = await log_in(gql, ada)
    # An access token where the refresh token goes, and the other way round.
    assert reason(await refresh(gql, first["accessToken"]))[1] == "TOKEN_INVALID"
    error = await gql.error(VIEWER, token=first["refreshToken"])
    assert error["extensions"] == {"code": "UNAUTHENTICATED", "reason": "TOKEN_INVALID"}
    # Wrong types and missing fields never reach the resolver.
    for variables in ({"i": {"refreshToken": 12}}, {"i": {}}, {"i": {"refreshToken": None}}):
        assert (await gql.error(REFRESH, variables))["extensions"]["code"] == "BAD_USER_INPUT"
    assert (await gql.error(REFRESH, {"i": {"refreshToken": "pcgr_\x00"}}))["extensions"]["code"] == "BAD_USER_INPUT"
    # An expired access token in the header does not stand in the refresh's way.
    expired = jwt.encode({**claims(first["accessToken"]), "exp": 1, "iat": 0}, SECRET, algorithm="HS256")
    body = await gql.raw(REFRESH, {"i": {"refreshToken": first["refreshToken"]}}, token=expired)
    assert not body.get("errors"), body


async def test_refresh_after_log_out_everywhere(gql, factory):
    ada = await factory.user("Ada")
    first = await log_in(gql, ada)
    await gql.ok("mutation { logOutEverywhere { sessionsEnded } }", token=first["accessToken"])
    assert reason(await refresh(gql, first["refreshToken"])) == ("UNAUTHENTICATED", "SESSION_REVOKED")


async def test_idle_and_absolute_expiry(gql, factory):
    ada = await factory.user("Ada")
    idle = await log_in(gql, ada)
    sid = claims(idle["accessToken"])["sid"]
    past = datetime.now(UTC) - timedelta(seconds=1)
    await Session.filter(id=sid).update(idle_expires_at=past)
    assert reason(await refresh(gql, idle["refreshToken"])) == ("UNAUTHENTICATED", "SESSION_EXPIRED")
    aged = await log_in(gql, ada)
    await Session.filter(id=claims(aged["accessToken"])["sid"]).update(expires_at=past)
    body = await refresh(gql, aged["refreshToken"])
    assert reason(body) == ("UNAUTHENTICATED", "SESSION_EXPIRED")
    assert "maximum lifetime" in body["errors"][0]["message"]
    # Expired sessions are not listed as active.
    data = await gql.ok("{ viewer { sessions { nodes { id } } } }", token=ada.token)
    assert {n["id"] for n in data["viewer"]["sessions"]["nodes"]} == {gid("Session", ada.session_id)}


async def test_an_access_token_never_outlives_its_session(gql, factory):
    ada = await factory.user("Ada")
    first = await log_in(gql, ada)
    sid = claims(first["accessToken"])["sid"]
    soon = datetime.now(UTC) + timedelta(seconds=120)
    await Session.filter(id=sid).update(expires_at=soon)
    second = (await refresh(gql, first["refreshToken"]))["data"]["refreshToken"]
    assert claims(second["accessToken"])["exp"] == int(soon.timestamp())


async def test_tokens_without_a_session_are_refused(gql, factory):
    """Access tokens signed before sessions existed carry no `sid`: they could not be ended,
    so they are refused (clients log in again) rather than honoured until they expire."""
    ada = await factory.user("Ada")
    now = datetime.now(UTC)
    legacy = jwt.encode({"sub": str(ada.user.id), "iat": int(now.timestamp()),
                         "exp": int((now + timedelta(hours=1)).timestamp()), "jti": "x", "typ": "access"},
                        SECRET, algorithm="HS256")
    error = await gql.error(VIEWER, token=legacy)
    assert error["extensions"] == {"code": "UNAUTHENTICATED", "reason": "TOKEN_INVALID"}
    assert "log in again" in error["message"]
    for sid in ("0", "-1", "99999999999", 7, None):
        forged = jwt.encode({**claims(ada.token), "sid": sid}, SECRET, algorithm="HS256")
        assert (await gql.error(VIEWER, token=forged))["extensions"]["reason"] == "TOKEN_INVALID"


# -- session policy -------------------------------------------------------------------------------

POLICY = """mutation($i: UpdateSessionPolicyInput!) { updateSessionPolicy(input: $i) {
  organization { sessionPolicy { idleTimeout maxAge enforced } } } }"""


async def test_the_strictest_enterprise_policy_applies(gql, factory):
    ada = await factory.user("Ada")
    strict = await factory.org(ada, plan=Plan.ENTERPRISE)
    lax = await factory.org(ada, plan=Plan.ENTERPRISE)
    pro = await factory.org(ada, plan=Plan.PRO)
    await gql.ok(POLICY, {"i": {"organizationId": gid("Organization", strict.id), "idleTimeout": 600,
                                "maxAge": 7200}}, token=ada.token)
    await gql.ok(POLICY, {"i": {"organizationId": gid("Organization", lax.id), "idleTimeout": 3000,
                                "maxAge": 3600}}, token=ada.token)
    # A policy left from when an organization was on enterprise does not count off it.
    pro.session_idle_timeout = 300
    await pro.save()
    data = await log_in(gql, ada)
    token = claims(data["accessToken"])
    assert token["exp"] - token["iat"] == 600  # cut at the idle end (600 s < 15 min)
    session = await Session.get(id=token["sid"])
    assert session.idle_expires_at - session.last_used_at == timedelta(seconds=600)
    assert session.expires_at - session.created_at == timedelta(seconds=3600)
    # Tightened later: the next refresh applies it to sessions already open.
    await Session.filter(id=session.id).update(created_at=datetime.now(UTC) - timedelta(seconds=1900))
    await gql.ok(POLICY, {"i": {"organizationId": gid("Organization", lax.id), "maxAge": 1800}},
                 token=ada.token)
    assert reason(await refresh(gql, data["refreshToken"])) == ("UNAUTHENTICATED", "SESSION_EXPIRED")


async def test_session_policy_rules(gql, factory, acme):
    org, owner, admin, member = acme
    org_id = gid("Organization", org.id)
    read = "query($s: String!) { organization(slug: $s) { sessionPolicy { idleTimeout maxAge enforced } } }"
    assert (await gql.ok(read, {"s": "acme"}, token=member.token))["organization"]["sessionPolicy"] == {
        "idleTimeout": None, "maxAge": None, "enforced": True}
    for actor in (admin, member):
        error = await gql.error(POLICY, {"i": {"organizationId": org_id, "idleTimeout": 600}}, actor.token)
        assert error["extensions"] == {"code": "FORBIDDEN", "requiredRole": "owner"}
    for bad in (299, 366 * 24 * 3600 + 1, -5, 0):
        error = await gql.error(POLICY, {"i": {"organizationId": org_id, "idleTimeout": bad}}, owner.token)
        assert (error["extensions"]["code"], error["extensions"]["field"]) == ("BAD_USER_INPUT", "idleTimeout")
    error = await gql.error(POLICY, {"i": {"organizationId": org_id, "maxAge": 2**40}}, owner.token)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"  # beyond Int: refused by GraphQL itself
    data = await gql.ok(POLICY, {"i": {"organizationId": org_id, "idleTimeout": 900}}, owner.token)
    assert data["updateSessionPolicy"]["organization"]["sessionPolicy"] == {
        "idleTimeout": 900, "maxAge": None, "enforced": True}
    # Unchanged: nothing written.
    entries = await AuditEntry.filter(action="organization.update_session_policy").count()
    await gql.ok(POLICY, {"i": {"organizationId": org_id, "idleTimeout": 900}}, owner.token)
    assert await AuditEntry.filter(action="organization.update_session_policy").count() == entries == 1
    # Off the enterprise plan the policy is refused (and shown as not enforced).
    await Organization.filter(id=org.id).update(plan=Plan.PRO)
    error = await gql.error(POLICY, {"i": {"organizationId": org_id, "idleTimeout": 600}}, owner.token)
    assert error["extensions"] == {"code": "FORBIDDEN", "requiredPlan": "enterprise"}
    shown = (await gql.ok(read, {"s": "acme"}, token=owner.token))["organization"]["sessionPolicy"]
    assert shown == {"idleTimeout": 900, "maxAge": None, "enforced": False}


# -- failed logins ----------------------------------------------------------------------------------


async def test_failed_logins_are_audited_without_what_was_typed(gql, factory):
    ada = await factory.user("Ada")
    secret_guess = "hunter2-the-guess"
    for email in (ada.user.email, "nobody@example.test"):
        body = await gql.raw(LOG_IN, {"i": {"email": email, "password": secret_guess}})
        assert reason(body) == ("UNAUTHENTICATED", "BAD_CREDENTIALS")
    known, unknown = await AuditEntry.filter(action="user.log_in_failed").order_by("id")
    assert (known.actor_id, known.organization_id, known.resource_id, known.after) == (
        ada.user.id, None, str(ada.user.id), {"reason": "wrong_password"})
    assert (unknown.actor_id, unknown.organization_id, unknown.resource_id, unknown.after) == (
        None, None, "", {"reason": "unknown_email"})
    everything = str(await AuditEntry.all().values())
    assert secret_guess not in everything and "nobody@example.test" not in everything


@pytest.mark.settings(rate_limit_login_email=2)
async def test_rate_limited_logins_are_not_audited(gql, factory):
    ada = await factory.user("Ada")
    for _ in range(2):
        assert reason(await gql.raw(LOG_IN, {"i": {"email": ada.user.email, "password": "nope"}}))[1] == "BAD_CREDENTIALS"
    for _ in range(3):
        body = await gql.raw(LOG_IN, {"i": {"email": ada.user.email, "password": "nope"}})
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert await AuditEntry.filter(action="user.log_in_failed").count() == 2


async def test_an_org_member_is_subject_to_the_policy_of_the_org(gql, factory, acme):
    """The override is per organization: a member of an enterprise organization with a policy
    gets it; someone outside does not."""
    org, owner, _, member = acme
    await gql.ok(POLICY, {"i": {"organizationId": gid("Organization", org.id), "maxAge": 3600}},
                 token=owner.token)
    outsider = await factory.user("Outsider")
    await factory.org(outsider, plan=Plan.ENTERPRISE)
    inside = await Session.get(id=claims((await log_in(gql, member))["accessToken"])["sid"])
    outside = await Session.get(id=claims((await log_in(gql, outsider))["accessToken"])["sid"])
    assert inside.expires_at - inside.created_at == timedelta(seconds=3600)
    assert outside.expires_at - outside.created_at == timedelta(days=30)


@pytest.mark.both_databases
async def test_pruning_keeps_what_a_live_session_needs(gql, factory):
    from resolvers.identity import sessions as lifecycle

    ada = await factory.user("Ada")
    live, recent, old = [await log_in(gql, ada) for _ in range(3)]
    await refresh(gql, live["refreshToken"])
    ids = {name: claims(pair["accessToken"])["sid"] for name, pair in
           (("live", live), ("recent", recent), ("old", old))}
    now = datetime.now(UTC)
    await Session.filter(id=ids["recent"]).update(revoked_at=now - timedelta(days=2))
    await Session.filter(id=ids["old"]).update(expires_at=now - timedelta(days=91))
    assert await lifecycle.prune() == (1, 1 + 1)  # old: its session; recent and old: tokens
    assert await RefreshToken.filter(session_id=ids["live"]).count() == 2
    assert await RefreshToken.filter(session_id=ids["recent"]).count() == 0
    assert await Session.filter(id=ids["recent"]).exists()
    assert not await Session.filter(id=ids["old"]).exists()
    assert await lifecycle.prune() == (0, 0)
    # The live session goes on (its first token is one retry within the grace window).
    body = await refresh(gql, live["refreshToken"])
    assert not (await refresh(gql, body["data"]["refreshToken"]["refreshToken"])).get("errors")
