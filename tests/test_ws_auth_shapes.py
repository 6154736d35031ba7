"""connection_init carries credentials in the shapes mainstream clients send; a refusal says
why."""

from __future__ import annotations

import json

import pytest
import websockets

from tests.wsclient import LEGACY_WS, TRANSPORT_WS, Closed, GraphQLWS

VIEWER = "query { viewer { user { id } } }"


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
@pytest.mark.parametrize("shape", ["authorization", "Authorization", "headers", "bare token"])
async def test_every_client_shape_of_the_credential_is_accepted(live, factory, protocol, shape):
    owner = await factory.user()
    payload = {
        "authorization": {"authorization": f"Bearer {owner.token}"},
        "Authorization": {"Authorization": f"Bearer {owner.token}"},
        "headers": {"headers": {"Authorization": f"Bearer {owner.token}"}},  # Apollo, Hasura
        "bare token": {"authorization": owner.token},
    }[shape]
    client = await GraphQLWS.connect(f"ws://{live}/graphql", protocol, payload=payload)
    await client.close()


async def test_a_refused_init_says_why_on_the_legacy_protocol(live):
    socket = await websockets.connect(f"ws://{live}/graphql", subprotocols=[LEGACY_WS])
    await socket.send(json.dumps({"type": "connection_init", "payload": {"headers": {"Authorization": "Bearer nope"}}}))
    message = json.loads(await socket.recv())
    assert message["type"] == "connection_error"
    assert message["payload"]["code"] == "UNAUTHENTICATED"
    assert message["payload"]["reason"] == "TOKEN_INVALID"
    await socket.close()
@pytest.mark.parametrize("payload, reason", [({}, "NO_CREDENTIAL"), ({"authorization": "Bearer nope"}, "TOKEN_INVALID")])
async def test_a_refused_init_says_why_on_graphql_transport_ws(live, payload, reason):
    with pytest.raises(Closed) as closed:
        await GraphQLWS.connect(f"ws://{live}/graphql", TRANSPORT_WS, payload=payload)
    assert closed.value.code == 4403
    assert "UNAUTHENTICATED" in closed.value.reason and reason in closed.value.reason
