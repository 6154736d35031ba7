"""The GraphQL budget: points per minute per user, API key or anonymous IP, charged before
execution; headers on every charged response, 429 + RATE_LIMITED over budget; websocket
operations and subscription starts count; shared through Redis; open when Redis is down.

Budgets here are a few points, so a handful of requests of cost 1 (or more, once the static
cost rule exists: every query below is the cheapest there is) exhausts them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

import httpx
import pytest
from asgi_lifespan import LifespanManager

from models import Organization, OrgRole, Plan
from server.app import create_app
from server.settings import Settings, SettingsError, replace
from tests.conftest import gid
from tests.membership_helpers import make_key
from tests.processes import aserving, free_port, subprocess_env
from tests.querycount import count_statements
from tests.wsclient import GraphQLWS

WHO = "{ viewer { user { id } } }"
PING = "{ __typename }"
RATE = "{ rateLimit { cost limit remaining used resetAt } }"
CREATE_ORG = "mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { organization { id } } }"
BOARD = "subscription($p: ID!) { boardEvents(projectId: $p) { __typename seq } }"
CREATE_TASK = "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }"


@pytest.fixture
def settings(settings):
    return replace(settings, rate_limit_free=5, rate_limit_pro=7, rate_limit_enterprise=9,
                   rate_limit_anonymous=3)


async def post(http, query: str, token: str | None = None, variables: dict | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)


def assert_over_budget(response, limit: int) -> dict:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.headers["x-ratelimit-remaining"] == "0"
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    ext = error["extensions"]
    assert ext["code"] == "RATE_LIMITED"
    assert (ext["cost"], ext["limit"], ext["remaining"]) == (1, limit, 0)
    assert ext["retryAfter"] == int(response.headers["retry-after"])
    assert datetime.fromisoformat(ext["resetAt"]).timestamp() == int(response.headers["x-ratelimit-reset"])
    return ext


async def test_user_budget_headers_then_429_and_nothing_executes(client, factory):
    ada = await factory.user("Ada")
    started = time.time()
    for n in range(1, 6):
        r = await post(client, WHO, ada.token)
        assert r.status_code == 200 and not r.json().get("errors"), r.text
        h = r.headers
        assert (h["x-ratelimit-limit"], h["x-ratelimit-used"], h["x-ratelimit-remaining"]) == (
            "5", str(n), str(5 - n))
        assert h["x-ratelimit-resource"] == "graphql"
        assert started < int(h["x-ratelimit-reset"]) <= started + 61

    # Over budget, a mutation is refused before it runs: no organization is created.
    r = await post(client, CREATE_ORG, ada.token, {"i": {"slug": "too-late", "name": "Too late"}})
    assert_over_budget(r, 5)
    assert not await Organization.exists(slug="too-late")
    # A refused request spends nothing: the count stays at the limit.
    assert (await post(client, WHO, ada.token)).headers["x-ratelimit-used"] == "5"

    # Another user has a budget of their own.
    bob = await factory.user("Bob")
    r = await post(client, WHO, bob.token)
    assert r.status_code == 200 and r.headers["x-ratelimit-used"] == "1"


async def test_anonymous_callers_are_limited_per_ip(app, client):
    for _ in range(3):
        assert (await post(client, PING)).status_code == 200
    assert_over_budget(await post(client, PING), 3)

    transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 4444))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        r = await post(other, PING)
    assert r.status_code == 200 and r.headers["x-ratelimit-used"] == "1"


async def test_plan_is_the_best_of_the_users_orgs_and_the_keys_org_for_an_api_key(client, factory):
    ada = await factory.user("Ada")
    free_org = await factory.org(ada, "ada-free", plan=Plan.FREE)
    pro_org = await factory.org(ada, "ada-pro", plan=Plan.FREE)
    await Organization.filter(id=pro_org.id).update(plan=Plan.PRO)
    _, free_key = await make_key(free_org, ada, OrgRole.ADMIN)
    _, pro_key = await make_key(pro_org, ada, OrgRole.ADMIN)

    # A query that reads memberships anyway: the plan costs no statement of its own.
    query = "{ projects { totalCount } }"
    with count_statements() as log:
        r = await post(client, query, ada.token)
    assert r.headers["x-ratelimit-limit"] == "7"  # pro beats free
    # user, memberships (plans included), the page, its count: no statement for the plan.
    assert log.count == 4, log.report()

    r = await post(client, query, free_key)
    assert (r.headers["x-ratelimit-limit"], r.headers["x-ratelimit-used"]) == ("5", "1")
    r = await post(client, query, pro_key)  # its own bucket, not the user's
    assert (r.headers["x-ratelimit-limit"], r.headers["x-ratelimit-used"]) == ("7", "1")


async def test_rate_limit_field_reports_this_operations_charge_without_charging_again(client, factory):
    ada = await factory.user("Ada")
    for n in (1, 2):
        r = await post(client, RATE, ada.token)
        state = r.json()["data"]["rateLimit"]
        assert (state["cost"], state["limit"], state["used"], state["remaining"]) == (1, 5, n, 5 - n)
        assert datetime.fromisoformat(state["resetAt"]).timestamp() == int(r.headers["x-ratelimit-reset"])
        assert r.headers["x-ratelimit-used"] == str(n)


async def test_limiting_off_charges_nothing(settings, password_hash):
    app = create_app(replace(settings, rate_limit=False))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            for _ in range(6):
                r = await post(http, PING)
                assert r.status_code == 200
                assert "x-ratelimit-limit" not in r.headers
            state = (await post(http, RATE)).json()["data"]["rateLimit"]
    assert (state["limit"], state["used"], state["remaining"]) == (3, 0, 3)


async def test_websocket_queries_and_subscription_starts_share_the_budget(live, client, factory):
    olga = await factory.user("Olga")
    org = await factory.org(olga, plan=Plan.FREE)  # the budget tested is the free plan's
    project = await factory.project(org, olga, "Live")
    pid = gid("Project", project.id)

    ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=olga.token)
    try:
        await ws.subscribe(BOARD, {"p": pid})  # 1
        await asyncio.sleep(0.2)
        r = await post(client, CREATE_TASK, olga.token, {"i": {"projectId": pid, "title": "a"}})  # 2
        assert r.headers["x-ratelimit-used"] == "2"
        assert (await ws.next_data())["data"]["boardEvents"]["seq"] == 1
        # The event cost nothing: a query over the socket is the third point.
        await ws.subscribe(RATE)
        state = (await ws.next_data())["data"]["rateLimit"]  # 3
        assert (state["used"], state["remaining"]) == (3, 2)
        await ws.expect_complete()
        await ws.subscribe(WHO)  # 4
        assert (await ws.next_data())["data"]["viewer"]["user"]["id"] == olga.gid
        await ws.expect_complete()
        await ws.subscribe(BOARD, {"p": pid})  # 5: a second subscription start
        await asyncio.sleep(0.2)

        await ws.subscribe(WHO)
        refused = await ws.next_data()
        assert refused.get("data") is None
        assert [e["extensions"]["code"] for e in refused["errors"]] == ["RATE_LIMITED"]
        assert refused["errors"][0]["extensions"]["limit"] == 5
        await ws.expect_complete()

        await ws.subscribe(BOARD, {"p": pid})
        refused = await ws.next_data()
        assert [e["extensions"]["code"] for e in refused["errors"]] == ["RATE_LIMITED"]
        assert_over_budget(await post(client, WHO, olga.token), 5)
    finally:
        await ws.close()


def _instance_env(tmp_path, name: str, redis_url: str) -> dict:
    return subprocess_env(tmp_path / name, PCG_BROADCAST_URL=redis_url, PCG_RATE_LIMIT_ANONYMOUS="5")


async def test_two_instances_share_the_budget_through_redis(tmp_path, redis_server):
    port_a, port_b = free_port(), free_port()
    async with aserving(_instance_env(tmp_path, "a", redis_server.url), port_a, tmp_path / "a.log"), \
            aserving(_instance_env(tmp_path, "b", redis_server.url), port_b, tmp_path / "b.log"):
        async with httpx.AsyncClient() as http:
            used = []
            for port in (port_a, port_b, port_a, port_b, port_b):
                r = await http.post(f"http://127.0.0.1:{port}/graphql", json={"query": PING})
                assert r.status_code == 200, r.text
                used.append(int(r.headers["x-ratelimit-used"]))
            assert used == [1, 2, 3, 4, 5]
            for port in (port_a, port_b):
                r = await http.post(f"http://127.0.0.1:{port}/graphql", json={"query": PING})
                assert r.status_code == 429
                assert r.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def test_redis_down_admits_and_warns_once_then_limiting_resumes(settings, redis_server, caplog):
    app = create_app(replace(settings, broadcast_url=redis_server.url))
    caplog.set_level(logging.WARNING, logger="pcg.ratelimit")
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            for _ in range(3):
                assert (await post(http, PING)).status_code == 200
            assert (await post(http, PING)).status_code == 429  # the budget is in Redis

            await asyncio.to_thread(redis_server.stop)
            for _ in range(6):
                r = await post(http, PING)
                assert r.status_code == 200 and r.json()["data"] == {"__typename": "Query"}
                assert "x-ratelimit-limit" not in r.headers
            warnings = [r for r in caplog.records if r.name == "pcg.ratelimit" and "Redis unavailable" in r.getMessage()]
            assert len(warnings) == 1, caplog.text

            await asyncio.to_thread(redis_server.start)  # empty: the old counts are gone
            deadline = time.monotonic() + 15
            while "x-ratelimit-used" not in (r := await post(http, PING)).headers:
                assert time.monotonic() < deadline, "limiting did not resume after Redis came back"
                await asyncio.sleep(0.2)
            assert r.headers["x-ratelimit-used"] == "1"
    assert any("reachable again" in r.getMessage() for r in caplog.records)


def test_rate_limit_settings_from_the_environment():
    defaults = Settings.from_env({})
    assert (defaults.rate_limit, defaults.rate_limit_free, defaults.rate_limit_anonymous) == (True, 100, 60)
    custom = Settings.from_env({"PCG_RATE_LIMIT": "0", "PCG_RATE_LIMIT_PRO": "123",
                                "PCG_RATE_LIMIT_SOCKETS_PER_IP": "0"})
    assert (custom.rate_limit, custom.rate_limit_pro, custom.rate_limit_sockets_per_ip) == (False, 123, 0)
    for bad in ({"PCG_RATE_LIMIT": "yes"}, {"PCG_RATE_LIMIT_FREE": "-1"}, {"PCG_RATE_LIMIT_LOGIN_IP": "many"}):
        with pytest.raises(SettingsError):
            Settings.from_env(bad)
