"""/metrics: a known sequence of operations moves exactly the counters it should, and only the
peers PCG_METRICS allows may read them."""

from __future__ import annotations

import httpx
import pytest

from models import NoraEvent
from resolvers.event.log import BOARD
from server.settings import Settings, SettingsError
from tests.conftest import gid
from tests.metrics_support import scrape, scrape_until
from tests.nora_support import make_team, pk, send, settled, start
from tests.wsclient import GraphQLWS

ME = "query Me { viewer { user { id } } }"
BROKEN = "query Broken { noSuchField }"
HELLO = "query Hello { __typename }"
ADD = "mutation AddTask($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }"
WATCH = "subscription Watch($p: ID!, $after: String) { boardEvents(projectId: $p, after: $after) { __typename seq } }"
TOKEN = "token:" + "m" * 24
BEARER = {"Authorization": "Bearer " + "m" * 24}


async def post(http, query: str, variables: dict | None = None, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
    return response.json()


# Anonymous callers (by IP) get one point a minute: the second anonymous query is refused.
@pytest.mark.settings(rate_limit_anonymous=1)
async def test_a_known_sequence_moves_exactly_its_counters(live, factory):
    owner = await factory.user("Olga")
    org = await factory.org(owner)
    project = await factory.project(org, owner, "Observed")
    pid = gid("Project", project.id)
    async with httpx.AsyncClient(base_url=f"http://{live}") as http:
        before = await scrape(http)

        assert "errors" not in await post(http, ME, token=owner.token)
        broken = await post(http, BROKEN, token=owner.token)
        assert broken["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "errors" not in await post(http, HELLO)
        limited = await post(http, HELLO)
        assert limited["errors"][0]["extensions"]["code"] == "RATE_LIMITED"

        ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=owner.token)
        try:
            # From cursor 0: the event arrives live or by replay, never twice, never refilled.
            await ws.subscribe(WATCH, {"p": pid, "after": BOARD.encode_cursor(project.id, 0)})
            during = await scrape_until(
                http, lambda s: s.delta(before, "pcg_subscriptions_active", kind="board") == 1
            )
            created = await post(http, ADD, {"i": {"projectId": pid, "title": "Counted"}}, token=owner.token)
            assert "errors" not in created, created
            event = (await ws.next_data())["data"]["boardEvents"]
            assert event == {"__typename": "TaskCreated", "seq": 1}
        finally:
            await ws.close()
        after = await scrape_until(
            http, lambda s: s.delta(before, "pcg_operations_total", type="subscription", name="Watch", outcome="ok") >= 1
        )

    def delta(metric: str, /, **labels: str) -> float:
        return after.delta(before, metric, **labels)

    assert during.delta(before, "pcg_websockets_active") == 1
    assert during.delta(before, "pcg_subscriptions_active", kind="board") == 1
    assert delta("pcg_websockets_active") == 0
    assert delta("pcg_subscriptions_active", kind="board") == 0

    assert delta("pcg_operations_total", type="query", name="Me", outcome="ok") == 1
    # A document refused by validation claims no name label.
    assert delta("pcg_operations_total", type="query", name="other", outcome="GRAPHQL_VALIDATION_FAILED") == 1
    assert delta("pcg_operations_total", type="query", name="Broken", outcome="GRAPHQL_VALIDATION_FAILED") == 0
    assert delta("pcg_operations_total", type="query", name="Hello", outcome="ok") == 1
    assert delta("pcg_operations_total", type="query", name="Hello", outcome="RATE_LIMITED") == 1
    assert delta("pcg_operations_total", type="mutation", name="AddTask", outcome="ok") == 1
    assert delta("pcg_operations_total", type="subscription", name="Watch", outcome="ok") == 1
    assert delta("pcg_errors_total", code="GRAPHQL_VALIDATION_FAILED") == 1
    assert delta("pcg_errors_total", code="RATE_LIMITED") == 1
    assert delta("pcg_rate_limited_total", type="query") == 1

    # Latency, statements and cost: one observation per query and mutation (not the
    # subscription, whose duration is its lifetime); the document refused by validation and
    # both anonymous ones ran no SQL at all, the viewer query did.
    assert delta("pcg_operation_duration_seconds_count", type="query") == 4
    assert delta("pcg_operation_duration_seconds_count", type="mutation") == 1
    assert delta("pcg_operation_sql_statements_count", type="query") == 4
    assert delta("pcg_operation_sql_statements_bucket", type="query", le="0.0") == 3
    assert delta("pcg_operation_sql_statements_bucket", type="mutation", le="0.0") == 0
    assert delta("pcg_sql_statements_total") >= delta("pcg_operation_sql_statements_sum", type="mutation") > 0
    assert delta("pcg_operation_cost_count") == 4  # validated: Me, Hello twice, AddTask

    assert delta("pcg_events_appended_total", log="board") == 1
    assert delta("pcg_events_published_total", log="board") == 1
    assert delta("pcg_events_delivered_total", log="board") == 1
    assert delta("pcg_event_refills_total", log="board", reason="seq_jump") == 0
    assert delta("pcg_event_refills_total", log="board", reason="broker_gap") == 0
    assert delta("pcg_event_resyncs_total", log="board") == 0
    assert after("pcg_broker_connected") == 1
    # SQLite: one connection behind a lock.
    assert after("pcg_db_pool_size") == 1 and after("pcg_db_pool_max") == 1


async def test_refused_subscriptions_count_their_errors(live, factory):
    owner = await factory.user()
    async with httpx.AsyncClient(base_url=f"http://{live}") as http:
        before = await scrape(http)
        ws = await GraphQLWS.connect(f"ws://{live}/graphql", token=owner.token)
        try:
            await ws.subscribe("subscription BadWatch($p: ID!) { boardEvents(projectId: $p) { nope } }",
                               {"p": gid("Project", 1)})
            invalid = await ws.next_data()
            assert invalid["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
            await ws.subscribe(WATCH, {"p": gid("Project", 999_999)})
            missing = await ws.next_data()
            assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        finally:
            await ws.close()
        after = await scrape_until(
            http, lambda s: s.delta(before, "pcg_operations_total", type="subscription", name="Watch", outcome="NOT_FOUND") >= 1
        )
    assert after.delta(before, "pcg_operations_total", type="subscription", name="other",
                       outcome="GRAPHQL_VALIDATION_FAILED") == 1
    assert after.delta(before, "pcg_operations_total", type="subscription", name="Watch", outcome="NOT_FOUND") == 1
    assert after.delta(before, "pcg_errors_total", code="GRAPHQL_VALIDATION_FAILED") == 1
    assert after.delta(before, "pcg_errors_total", code="NOT_FOUND") == 1
    assert after.delta(before, "pcg_subscriptions_active", kind="board") == 0
    assert after.delta(before, "pcg_events_delivered_total", log="board") == 0


@pytest.mark.settings(metrics=TOKEN)
async def test_nora_replies_and_tokens_by_provider(client, gql, factory):
    owner, org, project = await make_team(factory)
    before = await scrape(client, BEARER)
    conversation = await start(gql, owner.token, org, project)
    sent = await send(gql, owner.token, conversation["id"], "What is on the board?")
    reply = await settled(pk(sent["assistantMessage"]["id"]))
    after = await scrape(client, BEARER)

    assert reply.status.value == "complete" and reply.tokens_in > 0 and reply.tokens_out > 0
    assert after.delta(before, "pcg_nora_replies_total", provider="builtin", outcome="complete") == 1
    assert after.delta(before, "pcg_nora_tokens_total", provider="builtin", direction="in") == reply.tokens_in
    assert after.delta(before, "pcg_nora_tokens_total", provider="builtin", direction="out") == reply.tokens_out
    logged = await NoraEvent.filter(conversation_id=pk(conversation["id"])).count()
    assert after.delta(before, "pcg_events_appended_total", log="nora") == logged
    assert after.delta(before, "pcg_events_published_total", log="nora") == logged


async def test_loopback_only_by_default(client):
    # The test client's peer is 203.0.113.7.
    response = await client.get("/metrics")
    assert response.status_code == 403
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "pcg_" not in response.text


@pytest.mark.settings(metrics=TOKEN)
async def test_token_policy(client):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + "m" * 24}):
        response = await client.get("/metrics", headers=headers)
        assert response.status_code == 403, headers
        assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    scraped = await scrape(client, BEARER)
    assert "pcg_operations_total" in scraped.names


@pytest.mark.settings(metrics="off")
async def test_off(live):
    async with httpx.AsyncClient(base_url=f"http://{live}") as http:  # even from loopback
        response = await http.get("/metrics")
    assert response.status_code == 404
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"


def test_metrics_setting_is_checked():
    assert Settings.from_env({"PCG_METRICS": TOKEN}).metrics == TOKEN
    for bad in ("on", "token:", "token:short", "everyone"):
        with pytest.raises(SettingsError):
            Settings.from_env({"PCG_METRICS": bad})


def test_operation_names_are_bounded():
    from resolvers import metrics

    seen = set(metrics._names)
    metrics._names.clear()
    try:
        assert metrics.operation_label(None) == "anonymous"
        assert metrics.operation_label("x" * 65) == "other"
        assert metrics.operation_label("query { id }") == "other"
        assert metrics.operation_label("NotClaimed", claim=False) == "other"
        assert "NotClaimed" not in metrics._names
        for i in range(metrics.MAX_OPERATION_NAMES + 5):
            metrics.operation_label(f"Generated{i}")
        assert metrics.operation_label("Generated0") == "Generated0"
        assert metrics.operation_label("NeverSeenBefore") == "other"
        assert len(metrics._names) == metrics.MAX_OPERATION_NAMES
    finally:
        metrics._names.clear()
        metrics._names.update(seen)
