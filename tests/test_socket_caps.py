"""A cap on the websockets one IP address holds open, over a real uvicorn."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed

from server.settings import replace
from tests.wsclient import LEGACY_WS, TRANSPORT_WS, Closed, GraphQLWS


@pytest.fixture
def settings(settings):
    return replace(settings, rate_limit_sockets_per_ip=2)


async def refused_code(url: str, protocol: str, token: str) -> int | None:
    """The close code of a refused connection; None if it was accepted (and is closed)."""
    try:
        ws = await GraphQLWS.connect(url, protocol, token=token)
    except Closed as closed:
        return closed.code
    except ConnectionClosed as closed:  # closed before connection_init was sent
        return closed.rcvd.code if closed.rcvd else None
    await ws.close()
    return None


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_sockets_over_the_cap_are_closed_with_1013_until_one_closes(live, gql, factory, protocol):
    ada = await factory.user("Ada")
    url = f"ws://{live}/graphql"
    first = await GraphQLWS.connect(url, protocol, token=ada.token)
    second = await GraphQLWS.connect(url, protocol, token=ada.token)
    try:
        assert await refused_code(url, protocol, ada.token) == 1013

        # Plain HTTP from the same address is not affected.
        assert (await gql.ok("{ viewer { user { id } } }", token=ada.token))["viewer"]["user"]["id"] == ada.gid

        await first.close()
        for _ in range(50):  # once the server has seen the close, a socket is free again
            if (code := await refused_code(url, protocol, ada.token)) is None:
                break
            assert code == 1013
            await asyncio.sleep(0.05)
        else:
            pytest.fail("closing a socket freed no place")
    finally:
        await second.close()
