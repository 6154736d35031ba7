"""Subscriptions over plain HTTP: graphql-sse's distinct-connections mode (text/event-stream)
and Apollo's multipart subscriptions, with the same authentication, limits and gap-free resume
as the websockets."""

from __future__ import annotations

import asyncio
import json

import httpx

from resolvers.ids import to_global_id

BOARD = "subscription($p: ID!, $after: String) { boardEvents(projectId: $p, after: $after) { __typename seq cursor } }"
CREATE = "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }"


async def _create(base: str, token: str, project_id: str, title: str) -> None:
    async with httpx.AsyncClient() as client:
        body = (await client.post(f"{base}/graphql", json={"query": CREATE, "variables": {
            "i": {"projectId": project_id, "title": title}}}, headers={"authorization": f"Bearer {token}"})).json()
        assert not body.get("errors"), body


async def _sse_events(response: httpx.Response, count: int) -> list[dict]:
    events, event = [], None
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "next":
            events.append(json.loads(line.removeprefix("data: ")))
            if len(events) == count:
                return events
    return events


async def _arrange(factory):
    owner = await factory.user()
    org = await factory.org(owner)
    project = await factory.project(org, owner)
    return owner, to_global_id("Project", project.id)


async def test_board_events_over_server_sent_events_resume_without_gaps(live, factory):
    owner, project_id = await _arrange(factory)
    base = f"http://{live}"
    headers = {"authorization": f"Bearer {owner.token}", "accept": "text/event-stream"}
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("POST", f"{base}/graphql", headers=headers,
                                 json={"query": BOARD, "variables": {"p": project_id}}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            await asyncio.sleep(0.3)  # subscribed
            await _create(base, owner.token, project_id, "one")
            await _create(base, owner.token, project_id, "two")
            first = await asyncio.wait_for(_sse_events(response, 2), 10)
        assert [e["data"]["boardEvents"]["seq"] for e in first] == [1, 2]
        # Resume from the first event's cursor on a new connection: event 2 is replayed.
        cursor = first[0]["data"]["boardEvents"]["cursor"]
        async with client.stream("POST", f"{base}/graphql", headers=headers,
                                 json={"query": BOARD, "variables": {"p": project_id, "after": cursor}}) as response:
            replayed = await asyncio.wait_for(_sse_events(response, 1), 10)
        assert replayed[0]["data"]["boardEvents"]["seq"] == 2


async def test_board_events_over_apollo_multipart(live, factory):
    owner, project_id = await _arrange(factory)
    base = f"http://{live}"
    headers = {"authorization": f"Bearer {owner.token}",
               "accept": 'multipart/mixed;subscriptionSpec="1.0",application/json'}
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("POST", f"{base}/graphql", headers=headers,
                                 json={"query": BOARD, "variables": {"p": project_id}}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("multipart/mixed")
            await asyncio.sleep(0.3)
            await _create(base, owner.token, project_id, "one")

            async def first_payload() -> dict:
                buffer = ""
                async for chunk in response.aiter_text():
                    buffer += chunk
                    for part in buffer.split("\r\n"):
                        if part.startswith("{") and '"payload"' in part:
                            return json.loads(part)
                return {}

            part = await asyncio.wait_for(first_payload(), 10)
        assert part["payload"]["data"]["boardEvents"]["seq"] == 1


async def test_an_http_subscription_needs_a_credential_and_passes_the_limits(live, factory):
    _, project_id = await _arrange(factory)
    async with httpx.AsyncClient(timeout=10) as client:
        # No credential: the stream carries the coded error and ends.
        async with client.stream("POST", f"http://{live}/graphql", headers={"accept": "text/event-stream"},
                                 json={"query": BOARD, "variables": {"p": project_id}}) as response:
            text = (await response.aread()).decode()
        assert "UNAUTHENTICATED" in text
        # Over the cost limit: refused before it subscribes (a plain JSON error).
        deep = "subscription($p: ID!) { boardEvents(projectId: $p) { " + "a: seq " * 0 + \
            " ".join(f"x{i}: seq" for i in range(16)) + " } }"
        response = await client.post(f"http://{live}/graphql", headers={"accept": "text/event-stream"},
                                     json={"query": deep, "variables": {"p": project_id}})
        assert "ALIAS_LIMIT_EXCEEDED" in response.text


async def test_plain_http_still_refuses_a_subscription(client):
    body = (await client.post("/graphql", json={"query": BOARD, "variables": {"p": "UHJvamVjdDox"}})).json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
