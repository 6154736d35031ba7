"""ApiKey.lastUsedAt (resolvers/identity/key_usage.py): written when a key authenticates, at most once a
minute per key, outside any write's transaction, and visible through the API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from models import ApiKey, OrgRole
from resolvers.identity import key_usage
from tests.conftest import gid
from tests.membership_helpers import make_key
from tests.querycount import count_statements
from tests.wsclient import TRANSPORT_WS, GraphQLWS

WHO = "{ viewer { user { id } } }"
KEYS = 'query { organization(slug: "acme") { apiKeys { nodes { id lastUsedAt } } } }'
T0 = datetime(2027, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock(monkeypatch):
    """key_usage's clock, moved by the test instead of waiting a minute."""
    now = [T0]
    monkeypatch.setattr(key_usage, "clock", lambda: now[0])
    return now


def _writes(log) -> list[str]:
    return [s for s in log.statements if s.lstrip().upper().startswith("UPDATE") and '"api_key"' in s]


async def _last_used(key: ApiKey) -> datetime | None:
    return (await ApiKey.get(id=key.id)).last_used_at


@pytest.mark.both_databases
async def test_first_use_writes_a_use_within_the_minute_does_not_one_after_does(gql, acme, clock):
    org, owner, admin, _ = acme
    key, secret = await make_key(org, admin, OrgRole.ADMIN)
    with count_statements() as by_token:
        await gql.ok(WHO, token=admin.token)

    with count_statements() as first:
        await gql.ok(WHO, token=secret)
    assert len(_writes(first)) == 1, first.report()
    # The key's lookup costs what the token's user lookup does; the write is the one extra.
    assert first.count == by_token.count + 1, first.report()
    assert await _last_used(key) == T0

    clock[0] = T0 + timedelta(seconds=59)
    with count_statements() as second:
        await gql.ok(WHO, token=secret)
    assert _writes(second) == [] and second.count == by_token.count, second.report()
    assert await _last_used(key) == T0

    clock[0] = T0 + timedelta(seconds=61)
    with count_statements() as third:
        await gql.ok(WHO, token=secret)
    assert len(_writes(third)) == 1 and third.count == by_token.count + 1, third.report()
    assert await _last_used(key) == T0 + timedelta(seconds=61)

    nodes = (await gql.ok(KEYS, token=owner.token))["organization"]["apiKeys"]["nodes"]
    assert [datetime.fromisoformat(n["lastUsedAt"]) for n in nodes] == [T0 + timedelta(seconds=61)]


async def test_another_process_within_the_minute_writes_nothing(gql, acme, clock, monkeypatch):
    """The minute is judged on the row too: a process that has never written this key (here,
    this one with its memory of writes emptied) still skips a use within a minute of the last
    write by any process."""
    org, _, admin, _ = acme
    _, secret = await make_key(org, admin, OrgRole.ADMIN)
    await gql.ok(WHO, token=secret)
    monkeypatch.setattr(key_usage, "_written", {})
    clock[0] = T0 + timedelta(seconds=30)
    with count_statements() as log:
        await gql.ok(WHO, token=secret)
    assert _writes(log) == [], log.report()


@pytest.mark.both_databases
async def test_a_burst_of_first_uses_writes_once(gql, acme, clock):
    org, _, admin, _ = acme
    key, secret = await make_key(org, admin, OrgRole.ADMIN)
    with count_statements() as log:
        await asyncio.gather(*(gql.ok(WHO, token=secret) for _ in range(8)))
    assert len(_writes(log)) == 1, log.report()
    assert await _last_used(key) == T0


async def test_a_refused_mutation_still_records_the_use(gql, acme, clock):
    """The record is written when the key authenticates, before and apart from the operation:
    an operation that fails (here: keys may not mint keys) was still a use of the key."""
    org, _, admin, _ = acme
    key, secret = await make_key(org, admin, OrgRole.ADMIN)
    error = await gql.error(
        "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key } }",
        {"i": {"organizationId": gid("Organization", org.id), "name": "x", "role": "MEMBER"}}, secret,
    )
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert await ApiKey.filter(organization_id=org.id).count() == 1
    assert await _last_used(key) == T0


async def test_refused_keys_record_nothing(gql, acme, clock):
    org, _, admin, _ = acme
    revoked, revoked_secret = await make_key(org, admin, OrgRole.ADMIN, revoked_at=T0 - timedelta(days=1))
    expired, expired_secret = await make_key(org, admin, OrgRole.ADMIN, expires_at=datetime.now(UTC) - timedelta(days=1))
    for secret in (revoked_secret, expired_secret):
        assert (await gql.error(WHO, token=secret))["extensions"]["code"] == "UNAUTHENTICATED"
    assert await _last_used(revoked) is None and await _last_used(expired) is None


async def test_a_websocket_connection_records_the_use(live, acme, clock):
    org, _, admin, _ = acme
    key, secret = await make_key(org, admin, OrgRole.ADMIN)
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", TRANSPORT_WS, token=secret)
    try:
        assert await _last_used(key) == T0
    finally:
        await ws.close()


async def test_the_audit_export_records_the_use(client, acme, clock):
    org, _, admin, _ = acme
    key, secret = await make_key(org, admin, OrgRole.ADMIN)
    response = await client.get("/api/orgs/acme/audit.csv", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200, response.text
    assert await _last_used(key) == T0
