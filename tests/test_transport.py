"""The HTTP side of /graphql from a careless or hostile client: every refusal is JSON with
`extensions.code`, decided before authentication or any SQL; browser rules (CSRF, CORS,
security headers); production defaults."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from server import graphiql
from server.graphql_app import GRAPHIQL_CDN_CSP, GRAPHIQL_CSP
from tests.querycount import count_statements

QUERY = {"query": "{ __typename }"}


def _code(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert body["errors"][0]["message"], body
    return body["errors"][0]["extensions"]["code"]


async def _post(client, content: bytes, content_type: str | None = "application/json",
                headers: dict | None = None) -> httpx.Response:
    headers = dict(headers or {})
    if content_type is not None:
        headers["content-type"] = content_type
    with count_statements() as log:
        response = await client.post("/graphql", content=content, headers=headers)
    if response.status_code >= 400:
        assert log.count == 0, log.report()
    return response


@pytest.mark.parametrize(
    "body, status, code",
    [
        (b"\xff\xfe{}", 400, "BAD_REQUEST"),  # invalid UTF-8
        (b'"a string"', 400, "BAD_REQUEST"),
        (b"42", 400, "BAD_REQUEST"),
        (b"null", 400, "BAD_REQUEST"),
        (b"true", 400, "BAD_REQUEST"),
        (b'{"query": "{ __typename }"', 400, "BAD_REQUEST"),  # truncated
        (b"[" * 100_000 + b"]" * 100_000, 400, "BAD_REQUEST"),  # 100,000 deep
        (b'[{"query": "{ __typename }"}]', 400, "BAD_REQUEST"),  # batching is off
        (b'{"query": 5}', 400, "BAD_REQUEST"),
        (b'{"query": ""}', 400, "BAD_REQUEST"),
        (b'{"query": "{ __typename }", "variables": "x"}', 400, "BAD_REQUEST"),
        (b'{"query": "{ __typename }", "operationName": 3}', 400, "BAD_REQUEST"),
        (b'{"query": "{ __typename }", "extensions": []}', 400, "BAD_REQUEST"),
    ],
)
async def test_malformed_bodies_answer_json_errors(client, body, status, code):
    response = await _post(client, body, headers={"authorization": "Bearer pcg_x"})
    assert (response.status_code, _code(response)) == (status, code)


async def test_a_5000_digit_integer_variable_is_a_coded_input_error(client):
    body = b'{"query": "query($n: Int) { projects(first: $n) { nodes { id } } }", "variables": {"n": ' + b"9" * 5000 + b"}}"
    response = await _post(client, body)
    # Beyond float64: not JSON that orjson reads, refused before GraphQL sees it.
    assert (response.status_code, _code(response)) == (400, "BAD_REQUEST")
    # 30 digits are a float64 to JSON and no Int to GraphQL: a coded input error.
    response = await _post(client, body.replace(b"9" * 5000, b"9" * 30))
    assert (response.status_code, _code(response)) == (200, "BAD_USER_INPUT")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/graphql"])
async def test_only_json_bodies_run_which_is_the_csrf_rule(client, content_type):
    response = await _post(client, json.dumps(QUERY).encode(), content_type)
    assert (response.status_code, _code(response)) == (415, "UNSUPPORTED_MEDIA_TYPE")


async def test_json_with_a_charset_runs(client):
    response = await _post(client, json.dumps(QUERY).encode(), "application/json; charset=utf-8")
    assert response.status_code == 200 and response.json()["data"] == {"__typename": "Query"}
    response = await _post(client, json.dumps(QUERY).encode(), "application/json; charset=latin-1")
    assert (response.status_code, _code(response)) == (415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_are_refused_in_json(client, method):
    response = await client.request(method, "/graphql?query={__typename}",
                                    headers={"accept": "application/json"})
    assert (response.status_code, _code(response)) == (405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "GET, POST"


async def test_a_body_over_the_limit_is_refused_from_its_content_length(client, settings):
    size = settings.max_body_bytes + 1
    response = await _post(client, b"{" + b" " * (size - 2) + b"}")
    assert (response.status_code, _code(response)) == (413, "PAYLOAD_TOO_LARGE")
    padding = "x" * (settings.max_body_bytes - 60)  # an unused variable fills the body
    ok = await _post(client, json.dumps({"query": "{ __typename }", "variables": {"pad": padding}}).encode())
    assert settings.max_body_bytes - 100 < len(ok.request.content) <= settings.max_body_bytes
    assert ok.status_code == 200 and ok.json()["data"] == {"__typename": "Query"}


async def test_a_streamed_body_is_cut_off_at_the_limit_without_being_read_whole(client, settings):
    sent = 0

    async def chunks():
        nonlocal sent
        for _ in range(100):  # 10 MiB offered in 100 KiB chunks, without a Content-Length
            sent += 1
            yield b" " * 102_400

    response = await client.post("/graphql", content=chunks(), headers={"content-type": "application/json"})
    assert (response.status_code, _code(response)) == (413, "PAYLOAD_TOO_LARGE")
    assert sent <= settings.max_body_bytes // 102_400 + 2


async def test_every_response_carries_the_security_headers(client):
    for response in (
        await client.post("/graphql", json=QUERY),
        await _post(client, b"nope"),
        await client.get("/api/health"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "strict-transport-security" not in response.headers


async def test_graphiql_has_its_own_content_security_policy(client):
    response = await client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200 and "graphiql" in response.text.lower()
    csp = response.headers["content-security-policy"]
    # Same-origin scripts only with the offline build; unpkg's for the fallback page without it.
    assert csp == (GRAPHIQL_CSP if graphiql.is_built() else GRAPHIQL_CDN_CSP)
    assert "frame-ancestors 'none'" in csp


@pytest.mark.settings(env="production", hsts=True)
async def test_production_serves_no_graphiql_and_sends_hsts_when_told(client):
    response = await client.get("/graphql", headers={"accept": "text/html"})
    assert (response.status_code, _code(response)) == (404, "NOT_FOUND")
    assert response.headers["strict-transport-security"].startswith("max-age=")
    # Introspection stays on (counted in the cost).
    body = (await client.post("/graphql", json={"query": "{ __schema { queryType { name } } }"})).json()
    assert body["data"] == {"__schema": {"queryType": {"name": "Query"}}}


@pytest.mark.settings(cors_origins=("https://app.example",))
async def test_cors_allows_only_listed_origins(client):
    preflight = {"access-control-request-method": "POST",
                 "access-control-request-headers": "authorization, content-type"}
    ok = await client.options("/graphql", headers={"origin": "https://app.example", **preflight})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://app.example"
    assert "authorization" in ok.headers["access-control-allow-headers"].lower()
    refused = await client.options("/graphql", headers={"origin": "https://evil.example", **preflight})
    assert (refused.status_code, _code(refused)) == (403, "FORBIDDEN")
    assert "access-control-allow-origin" not in refused.headers
    simple = await client.post("/graphql", json=QUERY, headers={"origin": "https://app.example"})
    assert simple.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-ratelimit-remaining" in simple.headers["access-control-expose-headers"].lower()
    other = await client.post("/graphql", json=QUERY, headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


async def test_by_default_no_origin_is_allowed_cross_origin(client):
    response = await client.options("/graphql", headers={
        "origin": "https://evil.example", "access-control-request-method": "POST"})
    assert (response.status_code, _code(response)) == (403, "FORBIDDEN")


@pytest.mark.settings(cors_origins=("https://app.example",))
async def test_the_websocket_origin_check_uses_the_same_list(live):
    import websockets

    url = f"ws://{live}/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"],
                                  origin="https://app.example") as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        # No credential: refused by the server's own rule (4403), not by the origin check.
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd.code == 4403
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"],
                                      origin="https://evil.example"):
            pass


async def test_unknown_paths_and_methods_elsewhere_answer_json(client):
    missing = await client.get("/nope")
    assert (missing.status_code, _code(missing)) == (404, "NOT_FOUND")
    wrong = await client.post("/api/health")
    assert (wrong.status_code, _code(wrong)) == (405, "METHOD_NOT_ALLOWED")
    assert "GET" in wrong.headers["allow"]
