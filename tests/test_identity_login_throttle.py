"""logIn and signUp throttling, password hashing off the event loop, over-long emails."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from models import User
from server.settings import replace
from tests.conftest import PASSWORD

LOG_IN = "mutation($i: LogInInput!) { logIn(input: $i) { user { id } accessToken } }"
SIGN_UP = "mutation($i: SignUpInput!) { signUp(input: $i) { ok } }"


@pytest.fixture
def settings(settings):
    return replace(settings, rate_limit_login_ip=10, rate_limit_signup_ip=2)


async def log_in(gql, email: str, password: str) -> dict:
    body = await gql.raw(LOG_IN, {"i": {"email": email, "password": password}})
    return body


def code(body: dict) -> str | None:
    return body["errors"][0]["extensions"]["code"] if body.get("errors") else None


async def test_five_failures_per_email_then_rate_limited_and_a_success_clears(gql, factory):
    ada = await factory.user("Ada")
    email = ada.user.email
    for _ in range(4):
        assert code(await log_in(gql, email, "wrong password")) == "UNAUTHENTICATED"
    ok = await log_in(gql, email.upper(), PASSWORD)  # the same email, however written
    assert ok["data"]["logIn"]["user"]["id"] == ada.gid
    # The success forgave the four failures: five more before the limit.
    for _ in range(5):
        assert code(await log_in(gql, email, "wrong password")) == "UNAUTHENTICATED"
    refused = await log_in(gql, email, PASSWORD)  # even the right password, until the window ends
    assert code(refused) == "RATE_LIMITED"
    assert 1 <= refused["errors"][0]["extensions"]["retryAfter"] <= 15 * 60
    assert refused["data"] is None
    # Other accounts are not affected.
    bob = await factory.user("Bob")
    assert (await log_in(gql, bob.user.email, PASSWORD))["data"]["logIn"]["user"]["id"] == bob.gid


async def test_failures_per_ip_are_limited_across_emails(app, gql):
    for n in range(10):
        assert code(await log_in(gql, f"nobody{n}@example.test", "wrong")) == "UNAUTHENTICATED"
    assert code(await log_in(gql, "nobody-else@example.test", "wrong")) == "RATE_LIMITED"

    transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 4444))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        r = await other.post("/graphql", json={"query": LOG_IN, "variables": {
            "i": {"email": "nobody-else@example.test", "password": "wrong"}}})
    assert code(r.json()) == "UNAUTHENTICATED"


async def test_sign_ups_per_ip_are_limited(app, gql):
    def variables(n):
        return {"i": {"email": f"new{n}@example.test", "name": f"New {n}", "password": PASSWORD}}

    for n in range(2):
        assert (await gql.ok(SIGN_UP, variables(n)))["signUp"]["ok"]
    body = await gql.raw(SIGN_UP, variables(2))
    assert code(body) == "RATE_LIMITED" and body["errors"][0]["extensions"]["retryAfter"] >= 1
    assert not await User.exists(email="new2@example.test")

    transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 4444))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        r = await other.post("/graphql", json={"query": SIGN_UP, "variables": variables(3)})
    assert r.json()["data"]["signUp"]["ok"]
    assert await User.exists(email="new3@example.test")


@pytest.mark.both_databases
async def test_an_email_over_254_characters_is_bad_input_and_not_logged_whole(gql, caplog):
    caplog.set_level(logging.DEBUG)
    email = "a" * 300 + "@example.test"
    body = await log_in(gql, email, "whatever")
    assert code(body) == "BAD_USER_INPUT"
    assert body["errors"][0]["extensions"]["field"] == "email"
    assert not any("a" * 255 in record.getMessage() for record in caplog.records)


async def test_concurrent_wrong_logins_do_not_stall_other_clients(gql, factory):
    """argon2 runs in threads: a cheap request answers while the logins are still hashing.
    On the event loop, each verification blocked it (~170 ms) and the cheap request came last."""
    viewer = await factory.user("Vera")
    finished: list[str] = []

    async def wrong_login(n: int) -> None:
        assert code(await log_in(gql, f"burst{n}@example.test", "wrong")) == "UNAUTHENTICATED"
        finished.append("login")

    async def cheap() -> None:
        await asyncio.sleep(0)  # after every login has started
        await gql.ok("{ viewer { user { id } } }", token=viewer.token)
        finished.append("viewer")

    await asyncio.gather(*(wrong_login(n) for n in range(8)), cheap())
    logins_before_viewer = finished.index("viewer")
    assert logins_before_viewer < 4, finished
