"""GraphQL over HTTP as clients use it on their defaults: queries over GET with HTTP caching
(urql), Apollo's automatic persisted queries, and the `application/graphql-response+json`
media type with the spec's status codes."""

from __future__ import annotations

import hashlib
import json

import pytest

from models import Task
from resolvers.ids import to_global_id
from tests.querycount import count_statements

VIEWER = "query Me { viewer { user { id name } } }"


def _sha(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


async def test_a_query_over_get_runs_and_is_cacheable_by_its_owner_only(client, factory):
    owner = await factory.user()
    headers = {"authorization": f"Bearer {owner.token}"}
    response = await client.get("/graphql", params={"query": VIEWER}, headers=headers)
    assert response.status_code == 200
    assert response.json()["data"]["viewer"]["user"]["id"] == owner.gid
    assert response.headers["cache-control"] == "private, no-store"
    assert "authorization" in response.headers["vary"].lower()
    etag = response.headers["etag"]
    again = await client.get("/graphql", params={"query": VIEWER},
                             headers={**headers, "if-none-match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag


async def test_an_anonymous_get_may_be_cached_but_is_revalidated(client):
    response = await client.get("/graphql", params={"query": "{ __typename }"})
    assert response.json()["data"] == {"__typename": "Query"}
    assert response.headers["cache-control"] == "public, no-cache"


async def test_get_carries_variables_and_operation_name_as_json(client, factory):
    owner = await factory.user()
    org = await factory.org(owner)
    params = {"query": "query P($s: String!) { organization(slug: $s) { slug } } query Other { __typename }",
              "variables": json.dumps({"s": org.slug}), "operationName": "P"}
    response = await client.get("/graphql", params=params, headers={"authorization": f"Bearer {owner.token}"})
    assert response.json()["data"] == {"organization": {"slug": org.slug}}
    bad = await client.get("/graphql", params={"query": "{ __typename }", "variables": "{nope"})
    assert (bad.status_code, bad.json()["errors"][0]["extensions"]["code"]) == (400, "BAD_REQUEST")


async def test_a_mutation_over_get_is_refused_before_it_runs(client, factory):
    owner = await factory.user()
    org = await factory.org(owner)
    org_id = to_global_id("Organization", org.id)
    mutation = f'mutation {{ createProject(input: {{organizationId: "{org_id}", name: "x"}}) {{ project {{ id }} }} }}'
    response = await client.get("/graphql", params={"query": mutation},
                                headers={"authorization": f"Bearer {owner.token}"})
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


async def test_automatic_persisted_queries_over_post_and_get(client, factory):
    owner = await factory.user()
    headers = {"authorization": f"Bearer {owner.token}"}
    ext = {"persistedQuery": {"version": 1, "sha256Hash": _sha(VIEWER)}}
    # 1. hash only: not known yet, with the exact message Apollo's link reacts to
    with count_statements() as log:
        miss = await client.post("/graphql", json={"extensions": ext}, headers=headers)
    assert miss.status_code == 200 and log.count == 0
    assert miss.json()["errors"][0] == {"message": "PersistedQueryNotFound",
                                        "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND",
                                                       "requestId": miss.headers["x-request-id"]}}
    # 2. hash and document: checked, stored, run
    stored = await client.post("/graphql", json={"query": VIEWER, "extensions": ext}, headers=headers)
    assert stored.json()["data"]["viewer"]["user"]["id"] == owner.gid
    # 3. hash only, now over GET as Apollo sends it with useGETForHashedQueries
    hit = await client.get("/graphql", params={"extensions": json.dumps(ext)}, headers=headers)
    assert hit.json()["data"]["viewer"]["user"]["id"] == owner.gid


async def test_a_persisted_query_must_match_its_hash(client):
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": _sha("{ other }")}}
    response = await client.post("/graphql", json={"query": "{ __typename }", "extensions": wrong})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    for bad in ({"version": 2, "sha256Hash": _sha("{ __typename }")}, {"version": 1, "sha256Hash": "xyz"}, "str"):
        response = await client.post("/graphql", json={"extensions": {"persistedQuery": bad}})
        assert response.json()["errors"][0]["extensions"]["code"] in (
            "PERSISTED_QUERY_NOT_SUPPORTED", "BAD_REQUEST"), bad


@pytest.mark.parametrize("store_first", ["over HTTP"])
async def test_persisted_queries_are_shared_through_redis(settings, redis_server, store_first):
    """A hash one instance has seen is known to every instance on the same Redis."""
    import httpx
    from asgi_lifespan import LifespanManager

    from server.app import create_app
    from server.persisted import PersistedQueries
    from server.settings import replace

    shared = replace(settings, broadcast_url=redis_server.url)
    query = "query Shared { __typename }"
    ext = {"persistedQuery": {"version": 1, "sha256Hash": _sha(query)}}
    app = create_app(shared)
    async with LifespanManager(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as a:
            assert (await a.post("/graphql", json={"query": query, "extensions": ext})).status_code == 200
    other_instance = PersistedQueries(redis_server.url, 100_000)  # a fresh process's empty memory
    try:
        assert await other_instance.resolve(None, ext) == query
    finally:
        await other_instance.close()


GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.mark.parametrize("query, code", [
    ("{ viewer {", "GRAPHQL_PARSE_FAILED"),
    ("{ nope }", "GRAPHQL_VALIDATION_FAILED"),
    ("query($n: Int!) { projects(first: $n) { nodes { id } } }", "BAD_USER_INPUT"),  # $n missing
    ("{ projects(first: 101) { nodes { id } } }", "BAD_USER_INPUT"),
])
async def test_graphql_response_json_answers_request_errors_with_400_and_no_data(client, query, code):
    response = await client.post("/graphql", json={"query": query}, headers={"accept": GRAPHQL_RESPONSE})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    body = response.json()
    assert "data" not in body and body["errors"][0]["extensions"]["code"] == code
    # The same request as application/json keeps the classic 200 with data: null.
    classic = await client.post("/graphql", json={"query": query}, headers={"accept": "application/json"})
    assert classic.status_code == 200 and classic.headers["content-type"].startswith("application/json")


async def test_graphql_response_json_keeps_200_for_errors_during_execution(client, factory):
    owner = await factory.user()
    response = await client.post("/graphql", headers={"accept": GRAPHQL_RESPONSE, "authorization": f"Bearer {owner.token}"},
                                 json={"query": 'mutation { archiveTask(input: {id: "VGFzazox"}) { task { id } } }'})
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None and body["errors"][0]["path"] == ["archiveTask"]
    assert not await Task.exists()


async def test_accept_negotiation_prefers_the_order_and_quality_given(client):
    for accept, expected in [
        (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
        (f"application/json, {GRAPHQL_RESPONSE}", "application/json"),
        (f"application/json;q=0.5, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        ("*/*", "application/json"),
    ]:
        response = await client.post("/graphql", json={"query": "{ __typename }"}, headers={"accept": accept})
        assert response.headers["content-type"].startswith(expected), accept


async def test_a_query_gets_json_when_the_client_only_also_accepts_streams(client):
    """urql's Accept lists text/event-stream and multipart/mixed after the JSON types."""
    accept = ("application/graphql-response+json, application/graphql+json, application/json, "
              "text/event-stream, multipart/mixed")
    response = await client.get("/graphql", params={"query": "{ __typename }"}, headers={"accept": accept})
    assert response.status_code == 200 and response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert response.json()["data"] == {"__typename": "Query"} and response.headers["etag"]


async def test_the_persisted_query_memory_is_bounded_in_characters_too():
    from server.persisted import MEMORY_CHARS, PersistedQueries

    store = PersistedQueries("memory://", 100_000)
    big = "{ __typename }" + " " * 99_000
    for i in range(MEMORY_CHARS // 99_000 + 50):
        document = big + "#" * (i % 7) + str(i)
        await store.resolve(document, {"persistedQuery": {"version": 1, "sha256Hash": _sha(document)}})
    assert store.memory_chars <= MEMORY_CHARS
    assert store.memory_chars == sum(len(q) for q in store.memory.values())
