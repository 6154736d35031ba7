"""Queries and mutations over the websocket (gql and subscriptions-transport-ws send them on
the legacy protocol too): answered once and completed, each operation with loaders of its own,
so nothing is served from what an earlier operation on the same socket cached."""

from __future__ import annotations

import httpx
import pytest

from resolvers.ids import to_global_id
from tests.wsclient import LEGACY_WS, TRANSPORT_WS, GraphQLWS

TASK = "query($id: ID!) { task(id: $id) { title assignee { name } } }"
RENAME = "mutation($i: UpdateTaskInput!) { updateTask(input: $i) { task { title } } }"


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_queries_and_mutations_over_the_socket_see_every_change(live, factory, protocol):
    from models import Task

    owner = await factory.user()
    org = await factory.org(owner)
    project = await factory.project(org, owner)
    task = await Task.create(project=project, title="before", position="a0", created_by=owner.user,
                             assignee=owner.user)
    tid = to_global_id("Task", task.id)
    client = await GraphQLWS.connect(f"ws://{live}/graphql", protocol, token=owner.token)
    try:
        await client.subscribe(TASK, {"id": tid})
        assert (await client.next_data())["data"]["task"]["title"] == "before"
        await client.expect_complete()
        # A change made elsewhere (HTTP) is seen by the next query on the same socket.
        async with httpx.AsyncClient() as http:
            await http.post(f"http://{live}/graphql", headers={"authorization": f"Bearer {owner.token}"},
                            json={"query": RENAME, "variables": {"i": {"id": tid, "title": "after"}}})
        await client.subscribe(TASK, {"id": tid})
        assert (await client.next_data())["data"]["task"]["title"] == "after"
        await client.expect_complete()
        # And a mutation over the socket itself.
        await client.subscribe(RENAME, {"i": {"id": tid, "title": "third"}})
        assert (await client.next_data())["data"]["updateTask"]["task"]["title"] == "third"
        await client.expect_complete()
    finally:
        await client.close()


@pytest.mark.parametrize("subprotocol", [LEGACY_WS, TRANSPORT_WS])
async def test_gql_runs_queries_and_mutations_over_its_websocket_transport(live, factory, subprotocol):
    """gql (the Python client the examples teach) on its websocket transport, both protocols."""
    from gql import Client, gql
    from gql.transport.websockets import WebsocketsTransport

    owner = await factory.user("Grace")
    transport = WebsocketsTransport(url=f"ws://{live}/graphql", subprotocols=[subprotocol],
                                    init_payload={"authorization": f"Bearer {owner.token}"})
    async with Client(transport=transport) as session:
        result = await session.execute(gql("query Me { viewer { user { name } } }"))
        assert result == {"viewer": {"user": {"name": "Grace"}}}
        created = await session.execute(
            gql("mutation Org($i: CreateOrganizationInput!) { createOrganization(input: $i) { organization { slug } } }"),
            variable_values={"i": {"slug": "over-the-socket", "name": "Socket"}},
        )
        assert created == {"createOrganization": {"organization": {"slug": "over-the-socket"}}}


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_each_operation_on_a_socket_reads_through_fresh_loaders(live, factory, protocol):
    """Loaders live on the context, which a websocket shares across its operations: a label
    added elsewhere must show in the next query on the same socket, not the first one's cache."""
    from models import Label, Task

    owner = await factory.user()
    org = await factory.org(owner)
    project = await factory.project(org, owner)
    task = await Task.create(project=project, title="t", position="a0", created_by=owner.user)
    label = await Label.create(project=project, name="urgent", color="#ff0000")
    tid = to_global_id("Task", task.id)
    query = "query($id: ID!) { task(id: $id) { labels { name } } }"
    client = await GraphQLWS.connect(f"ws://{live}/graphql", protocol, token=owner.token)
    try:
        await client.subscribe(query, {"id": tid})
        assert (await client.next_data())["data"]["task"]["labels"] == []
        await client.expect_complete()
        async with httpx.AsyncClient() as http:
            body = (await http.post(f"http://{live}/graphql", headers={"authorization": f"Bearer {owner.token}"},
                                    json={"query": RENAME.replace("title", "labels { name }"),
                                          "variables": {"i": {"id": tid, "labelIds": [to_global_id("Label", label.id)]}}})).json()
            assert not body.get("errors"), body
        await client.subscribe(query, {"id": tid})
        assert (await client.next_data())["data"]["task"]["labels"] == [{"name": "urgent"}]
        await client.expect_complete()
    finally:
        await client.close()
