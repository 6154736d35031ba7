"""Password reset by email: the same answer for any address, limits per address and per IP,
a single-use 30-minute link, the new password works and the old does not, the account's
address counts as verified, its sessions end (the hook), it is told by email, and audited."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from models import AuditEntry, EmailToken, OutboxEmail, User
from resolvers.identity import password_reset
from tests.conftest import PASSWORD
from tests.querycount import count_statements

REQUEST = "mutation($i: RequestPasswordResetInput!) { requestPasswordReset(input: $i) { ok message } }"
RESET = "mutation($i: ResetPasswordInput!) { resetPassword(input: $i) { ok email } }"
LOG_IN = "mutation($i: LogInInput!) { logIn(input: $i) { accessToken } }"
NEW = "a brand new password"


async def reset_token(user) -> str:
    mail = await OutboxEmail.filter(user_id=user.id, template="password_reset").order_by("-id").first()
    return re.search(r"#token=([A-Za-z0-9_-]+)", mail.text_body).group(1)


async def test_reset_end_to_end(gql, factory, monkeypatch):
    ada = await factory.user("Ada", verified=False)
    ended = []
    real_end = password_reset.end_all_sessions

    async def spy(work, user_id, reason):
        ended.append((user_id, reason))
        return await real_end(work, user_id, reason)

    monkeypatch.setattr(password_reset, "end_all_sessions", spy)
    data = await gql.ok(REQUEST, {"i": {"email": ada.user.email.upper()}})
    assert data["requestPasswordReset"]["ok"] is True
    [mail] = await OutboxEmail.filter(to_address=ada.user.email)
    assert mail.subject == "Reset your PCG password" and "expires in 30 minutes" in mail.text_body
    token = await reset_token(ada.user)
    stored = await EmailToken.get(user_id=ada.user.id)
    assert timedelta(minutes=29) < stored.expires_at - datetime.now(UTC) <= timedelta(minutes=30)

    data = await gql.ok(RESET, {"i": {"token": token, "newPassword": NEW}})
    assert data["resetPassword"] == {"ok": True, "email": ada.user.email}
    assert (await gql.error(LOG_IN, {"i": {"email": ada.user.email, "password": PASSWORD}}))["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await gql.ok(LOG_IN, {"i": {"email": ada.user.email, "password": NEW}}))["logIn"]["accessToken"]
    # Single use.
    error = await gql.error(RESET, {"i": {"token": token, "newPassword": "yet another one"}})
    assert error["extensions"]["reason"] == "TOKEN_INVALID"
    # The link proved the address; the sessions hook ran in the write; the owner is told.
    assert (await User.get(id=ada.user.id)).email_verified_at is not None
    assert ended == [(ada.user.id, "password_reset")]
    changed = await OutboxEmail.get(to_address=ada.user.email, template="password_changed")
    assert "#token=" not in changed.text_body and "every session" in changed.text_body
    entry = await AuditEntry.get(action="user.password_reset")
    assert (entry.organization_id, entry.actor_id, entry.resource_id) == (None, ada.user.id, str(ada.user.id))
    assert entry.after["verifiedByReset"] is True and entry.after["sessionsEnded"] == 0
    assert entry.ip == "203.0.113.7"
    assert await AuditEntry.filter(action="user.password_reset_request").count() == 1


async def test_unknown_addresses_get_the_same_answer_and_nothing_is_written(client, factory):
    known = await factory.user("Known")

    async def ask(email: str):
        return await client.post("/graphql", json={"query": REQUEST, "variables": {"i": {"email": email}}})

    with count_statements() as sql:
        unknown = await ask("nobody@example.test")
    assert sql.count == 1  # the lookup
    existing = await ask(known.user.email)
    assert (unknown.status_code, unknown.content) == (existing.status_code, existing.content)
    assert not await OutboxEmail.filter(to_address="nobody@example.test").exists()
    assert await OutboxEmail.filter(to_address=known.user.email).count() == 1


@pytest.mark.settings(rate_limit_reset_email=2, rate_limit_reset_ip=4)
async def test_requests_are_limited_per_address_and_per_ip_account_or_not(app, gql, factory):
    known = await factory.user("Known")
    for email in (known.user.email, "nobody@example.test"):
        for _ in range(2):
            await gql.ok(REQUEST, {"i": {"email": email}})
    # Four from this IP were its limit: a fifth is refused, whatever the address.
    body = await gql.raw(REQUEST, {"i": {"email": "third@example.test"}})
    assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    # From another IP, each address has used its two: refused alike, known or not.
    transport = httpx.ASGITransport(app=app, client=("198.51.100.20", 4444))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        for email in (known.user.email, "nobody@example.test"):
            r = await other.post("/graphql", json={"query": REQUEST, "variables": {"i": {"email": email}}})
            error = r.json()["errors"][0]
            assert error["extensions"]["code"] == "RATE_LIMITED"
            assert error["message"] == "Too many password reset requests for this email. Try again in " \
                f"{error['extensions']['retryAfter']} s."
    assert await OutboxEmail.filter(to_address=known.user.email).count() == 2


async def test_an_expired_link_and_a_bad_password_change_nothing(gql, factory):
    ada = await factory.user("Ada")
    await gql.ok(REQUEST, {"i": {"email": ada.user.email}})
    token = await reset_token(ada.user)
    before = (await User.get(id=ada.user.id)).password_hash
    error = await gql.error(RESET, {"i": {"token": token, "newPassword": "short"}})
    assert (error["extensions"]["code"], error["extensions"]["field"]) == ("BAD_USER_INPUT", "newPassword")
    await EmailToken.filter(user_id=ada.user.id).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    error = await gql.error(RESET, {"i": {"token": token, "newPassword": NEW}})
    assert error["extensions"]["reason"] == "TOKEN_EXPIRED"
    assert (await User.get(id=ada.user.id)).password_hash == before
    assert not await AuditEntry.filter(action="user.password_reset").exists()


async def test_a_newer_link_replaces_the_older_and_two_racing_resets_apply_once(gql, factory):
    import asyncio

    ada = await factory.user("Ada")
    await gql.ok(REQUEST, {"i": {"email": ada.user.email}})
    old = await reset_token(ada.user)
    await gql.ok(REQUEST, {"i": {"email": ada.user.email}})
    new = await reset_token(ada.user)
    assert (await gql.error(RESET, {"i": {"token": old, "newPassword": NEW}}))["extensions"]["reason"] == "TOKEN_INVALID"
    results = await asyncio.gather(*(
        gql.raw(RESET, {"i": {"token": new, "newPassword": f"racing password {n}"}}) for n in range(3)
    ))
    assert sum(1 for r in results if not r.get("errors")) == 1
    assert await AuditEntry.filter(action="user.password_reset").count() == 1
