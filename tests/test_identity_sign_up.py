"""signUp tells nobody whether an email has an account: the same answer, the same status and
the same work (one password hash, the same SQL statements) for a new and a taken address; the
taken one's owner is told by email instead, and nothing of their account changes."""

from __future__ import annotations

import asyncio
import re

import pytest

from models import AuditEntry, EmailToken, EmailTokenPurpose, OutboxEmail, User
from resolvers.identity import users
from tests.conftest import PASSWORD
from tests.querycount import count_statements

SIGN_UP = "mutation($i: SignUpInput!) { signUp(input: $i) { ok message } }"
LOG_IN = "mutation($i: LogInInput!) { logIn(input: $i) { accessToken } }"


async def _sign_up(client, email: str, password: str = "another password 1"):
    response = await client.post("/graphql", json={"query": SIGN_UP, "variables": {
        "i": {"email": email, "name": "Someone", "password": password}}})
    return response


@pytest.mark.both_databases
async def test_a_taken_email_gets_the_same_answer_and_costs_the_same_work(client, factory, monkeypatch, backend):
    owner = await factory.user("Owner")
    hashes = []
    real_hash = users.hash_password_async

    async def counting_hash(password):
        hashes.append(password)
        return await real_hash(password)

    monkeypatch.setattr(users, "hash_password_async", counting_hash)
    with count_statements() as new_sql:
        new = await _sign_up(client, "fresh@example.test")
    with count_statements() as taken_sql:
        taken = await _sign_up(client, owner.user.email.upper())

    # Same status, headers that matter, body: byte for byte.
    assert (new.status_code, taken.status_code) == (200, 200)
    assert new.content == taken.content
    assert new.json()["data"]["signUp"]["ok"] is True
    assert set(new.headers) == set(taken.headers)
    # Same work: a hash each, and the same statements (insert-if-absent, read back, replace
    # the link tokens, store one, queue an email, audit), only the tables' rows differ.
    assert len(hashes) == 2
    assert new_sql.count == taken_sql.count == 6, (new_sql.report(), taken_sql.report())
    shape = [re.sub(r"\s+", " ", s.split("(")[0].split(" WHERE")[0]) for s in new_sql.statements]
    assert shape == [re.sub(r"\s+", " ", s.split("(")[0].split(" WHERE")[0]) for s in taken_sql.statements]


async def test_the_owner_of_a_taken_email_is_told_and_nothing_of_theirs_changes(gql, factory):
    owner = await factory.user("Owner")
    before = await User.get(id=owner.user.id)
    await gql.ok(SIGN_UP, {"i": {"email": owner.user.email, "name": "Impostor", "password": "impostor pass"}})

    after = await User.get(id=owner.user.id)
    assert (after.name, after.password_hash, after.email_verified_at) == (
        before.name, before.password_hash, before.email_verified_at)
    assert await User.filter(email=owner.user.email).count() == 1
    # The impostor's password does not open the account; the owner's still does.
    assert (await gql.error(LOG_IN, {"i": {"email": owner.user.email, "password": "impostor pass"}}))[
        "extensions"]["code"] == "UNAUTHENTICATED"
    assert (await gql.ok(LOG_IN, {"i": {"email": owner.user.email, "password": PASSWORD}}))["logIn"]["accessToken"]

    [mail] = await OutboxEmail.filter(to_address=owner.user.email)
    assert mail.template == "signup_existing" and mail.user_id == owner.user.id
    assert mail.subject == "Someone tried to sign up for PCG with your email address"
    assert "already has an account" in mail.text_body and "Impostor" not in mail.text_body
    # It carries a reset link (the one token the account now has), for an owner who forgot.
    [token] = await EmailToken.filter(user_id=owner.user.id)
    assert token.purpose is EmailTokenPurpose.RESET_PASSWORD
    assert "/reset-password#token=" in mail.text_body
    entry = await AuditEntry.get(action="user.sign_up_existing")
    assert (entry.resource_id, entry.organization_id, entry.actor_id) == (str(owner.user.id), None, None)
    assert entry.after == {"noticeSent": True}


async def test_sign_up_cannot_flood_an_inbox(gql, factory):
    owner = await factory.user("Owner")
    for _ in range(4):
        body = await gql.ok(SIGN_UP, {"i": {"email": owner.user.email, "name": "X", "password": "some password"}})
        assert body["signUp"]["ok"] is True
    # Two attempts an hour may send a notice (users.SIGNUP_NOTICES_PER_HOUR); the answer stays.
    assert await OutboxEmail.filter(to_address=owner.user.email).count() == 2
    notes = await AuditEntry.filter(action="user.sign_up_existing").order_by("id").values_list("after", flat=True)
    assert notes == [{"noticeSent": True}] * 2 + [{"noticeSent": False}] * 2


async def test_a_new_account_is_unverified_and_gets_a_verification_email(gql):
    data = await gql.ok(SIGN_UP, {"i": {"email": "new@example.test", "name": "New", "password": PASSWORD}})
    assert "verify" in data["signUp"]["message"]
    user = await User.get(email="new@example.test")
    assert user.email_verified_at is None
    [mail] = await OutboxEmail.filter(to_address="new@example.test")
    assert (mail.template, mail.user_id) == ("verify_email", user.id)
    [token] = await EmailToken.filter(user_id=user.id)
    assert token.purpose is EmailTokenPurpose.VERIFY_EMAIL and token.email == "new@example.test"
    # Only the hash is stored: the plaintext is in the link and nowhere else.
    plaintext = re.search(r"#token=([A-Za-z0-9_-]+)", mail.text_body).group(1)
    assert token.token_hash != plaintext and len(plaintext) >= 43
    assert not await EmailToken.filter(token_hash=plaintext).exists()


@pytest.mark.both_databases
async def test_concurrent_sign_ups_with_one_new_email_make_one_account(client, backend):
    responses = await asyncio.gather(*(
        _sign_up(client, "race@example.test", f"password number {n}") for n in range(4)
    ))
    assert len({r.content for r in responses}) == 1 and responses[0].json()["data"]["signUp"]["ok"]
    assert await User.filter(email="race@example.test").count() == 1
    templates = sorted(await OutboxEmail.filter(to_address="race@example.test").values_list("template", flat=True))
    # One verification; the losers' notices are throttled (two attempts an hour may notify).
    assert templates.count("verify_email") == 1 and templates.count("signup_existing") in (1, 2)
    actions = sorted(await AuditEntry.all().values_list("action", flat=True))
    assert actions == ["user.sign_up"] + ["user.sign_up_existing"] * 3
