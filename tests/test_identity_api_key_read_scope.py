"""API key scopes: a READ key reads (queries, subscriptions) and writes nothing at all.

Every mutation of the schema, present or added later, is tried with a READ key of an owner
and must answer 403 FORBIDDEN (reason API_KEY_READ_ONLY) having changed nothing but the
throttled audit entry of the refusal; the same documents run with a WRITE key of the same
owner, so the refusal is the scope's and not something else's."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
)

from models import ApiKey, ApiKeyScope, AuditEntry, OrgRole
from resolvers.identity import key_scope
from schema.root import schema
from tests.api_catalog import MUTATIONS, arrange, db_changes, db_snapshot
from tests.conftest import gid
from tests.membership_helpers import make_key
from tests.wsclient import GraphQLWS

CREATE = """mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) {
  key apiKey { id scope role } } }"""


def _sample(type_, name: str):
    """A value of `type_` that GraphQL accepts (validation passes; the resolver would judge)."""
    if isinstance(type_, GraphQLNonNull):
        return _sample(type_.of_type, name)
    if isinstance(type_, GraphQLList):
        return [_sample(type_.of_type, name)]
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values))
    if isinstance(type_, GraphQLInputObjectType):
        return {k: _sample(f.type, k) for k, f in type_.fields.items() if isinstance(f.type, GraphQLNonNull)}
    assert isinstance(type_, GraphQLScalarType)
    return {"ID": gid("Organization", 1), "String": "x", "Int": 1, "Float": 1.0, "Boolean": False,
            "DateTime": "2030-01-01T00:00:00Z", "Date": "2030-01-01", "JSON": {}}[type_.name]


def every_mutation(world) -> list[tuple[str, str, dict]]:
    """(name, document, variables) for every mutation field of the schema: the catalogue's
    valid input where it has one, otherwise a well-typed sample."""
    cases = []
    for name, field in schema._schema.mutation_type.fields.items():
        args = ", ".join(f"${a}: {arg.type}" for a, arg in field.args.items())
        passed = ", ".join(f"{a}: ${a}" for a in field.args)
        document = (f"mutation Probe{('(' + args + ')') if args else ''} "
                    f"{{ {name}{('(' + passed + ')') if passed else ''} {{ __typename }} }}")
        if name in MUTATIONS:
            variables = {"input": MUTATIONS[name].build(world)}
        else:
            variables = {a: _sample(arg.type, a) for a, arg in field.args.items()
                         if isinstance(arg.type, GraphQLNonNull)}
        cases.append((name, document, variables))
    return cases


async def test_a_read_key_cannot_run_any_mutation(client, factory):
    world = await arrange(factory)
    _, reader = await make_key(world.org, world.owner, OrgRole.OWNER, scope=ApiKeyScope.READ)
    _, writer = await make_key(world.org, world.owner, OrgRole.OWNER)
    cases = every_mutation(world)
    assert len(cases) == len(schema._schema.mutation_type.fields) > 30
    before = await db_snapshot()
    for name, document, variables in cases:
        response = await client.post("/graphql", json={"query": document, "variables": variables},
                                     headers={"Authorization": f"Bearer {reader}"})
        body = response.json()
        assert response.status_code == 403, (name, body)
        assert "data" not in body or body["data"] is None, name
        assert body["errors"][0]["extensions"] == {
            "code": "FORBIDDEN", "reason": "API_KEY_READ_ONLY", "requiredScope": "WRITE"}, name
    # Nothing changed but one audit entry of the refusals (throttled: once a minute a key),
    # which took the organization's next audit seq.
    changes = db_changes(before, await db_snapshot(), {"organization": {"audit_seq"}})
    assert changes == {"audit_entry": {"inserted": 1}}, changes
    entry = await AuditEntry.get(action="api_key.write_refused")
    assert (entry.organization_id, entry.actor_id, entry.resource_type) == (
        world.org.id, world.owner.user.id, "ApiKey")
    assert entry.seq == before["organization"][world.org.id]["audit_seq"] + 1
    assert entry.after == {"operation": "Probe"}
    # The control: a WRITE key of the same owner gets past the scope with the same documents
    # to the resolvers' own checks (the role matrix proves what each then does).
    for name, document, variables in cases:
        response = await client.post("/graphql", json={"query": document, "variables": variables},
                                     headers={"Authorization": f"Bearer {writer}"})
        errors = response.json().get("errors") or []
        assert response.status_code == 200, name
        assert all(e["extensions"].get("reason") != "API_KEY_READ_ONLY" for e in errors), name


async def test_a_read_key_reads(gql, factory):
    world = await arrange(factory)
    _, reader = await make_key(world.org, world.owner, OrgRole.ADMIN, scope=ApiKeyScope.READ)
    data = await gql.ok(
        "query($p: ID!) { project(id: $p) { name board { columns { tasks { totalCount } } } } }",
        {"p": gid("Project", world.project.id)}, reader,
    )
    assert data["project"]["name"] == world.project.name
    data = await gql.ok("""{ viewer { organizations { organization {
        apiKeys(includeRevoked: true) { nodes { scope } } } } } }""", token=reader)
    scopes = {n["scope"] for m in data["viewer"]["organizations"] for n in m["organization"]["apiKeys"]["nodes"]}
    assert scopes == {"READ", "WRITE"}


async def test_refusals_are_audited_once_a_minute_per_key(client, factory, monkeypatch):
    world = await arrange(factory)
    key, reader = await make_key(world.org, world.owner, OrgRole.OWNER, scope=ApiKeyScope.READ)
    mutation = MUTATIONS["createTask"]

    async def attempt():
        return await client.post("/graphql", headers={"Authorization": f"Bearer {reader}"},
                                 json={"query": mutation.document, "variables": {"input": mutation.build(world)}})

    responses = await asyncio.gather(*(attempt() for _ in range(10)))
    assert {r.status_code for r in responses} == {403}
    assert await AuditEntry.filter(action="api_key.write_refused", api_key_id=key.id).count() == 1
    later = key_scope.clock() + key_scope.AUDIT_EVERY
    monkeypatch.setattr(key_scope, "clock", lambda: later)
    await attempt()
    assert await AuditEntry.filter(action="api_key.write_refused", api_key_id=key.id).count() == 2


async def test_create_a_read_key_through_the_api(gql, factory, acme):
    org, owner, admin, _ = acme
    data = await gql.ok(CREATE, {"i": {"organizationId": gid("Organization", org.id), "name": "dash",
                                       "role": "ADMIN", "scope": "READ"}}, token=admin.token)
    created = data["createApiKey"]
    assert created["apiKey"]["scope"] == "READ"
    assert (await ApiKey.get(prefix=created["key"][:12])).scope is ApiKeyScope.READ
    entry = await AuditEntry.get(action="api_key.create")
    assert entry.after["scope"] == "read"
    # Without a scope, a key writes (as every key made before scopes existed).
    data = await gql.ok(CREATE, {"i": {"organizationId": gid("Organization", org.id), "name": "ci",
                                       "role": "MEMBER"}}, token=owner.token)
    assert data["createApiKey"]["apiKey"]["scope"] == "WRITE"
    error = await gql.error(CREATE, {"i": {"organizationId": gid("Organization", org.id), "name": "x",
                                           "role": "MEMBER", "scope": "ADMIN"}}, token=owner.token)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_over_a_websocket_a_read_key_subscribes_but_does_not_write(live, factory):
    world = await arrange(factory)
    _, reader = await make_key(world.org, world.owner, OrgRole.OWNER, scope=ApiKeyScope.READ)
    ws = await GraphQLWS.connect(f"ws://{live}/graphql", payload={"authorization": f"Bearer {reader}"})
    try:
        mutation = MUTATIONS["createTask"]
        await ws.subscribe(mutation.document, {"input": mutation.build(world)})
        result = await ws.next_data()
        assert result["errors"][0]["extensions"]["reason"] == "API_KEY_READ_ONLY"
        await ws.subscribe("subscription($p: ID!) { boardEvents(projectId: $p) { seq } }",
                           {"p": gid("Project", world.project.id)})
        await asyncio.sleep(0.2)
        # A write by someone else reaches the read-only subscriber.
        async with httpx.AsyncClient() as http:
            r = await http.post(f"http://{live}/graphql",
                                headers={"Authorization": f"Bearer {world.owner.token}"},
                                json={"query": mutation.document, "variables": {"input": mutation.build(world)}})
        assert not r.json().get("errors")
        message = await ws.receive()
        while message["type"] == "complete":  # of the refused mutation
            message = await ws.receive()
        assert message["payload"]["data"]["boardEvents"]["seq"] >= 1
    finally:
        await ws.close()


@pytest.mark.parametrize("scope", ["read", "write"])
def test_the_cli_creates_keys_of_either_scope(scope, tmp_path):
    """`pcg create-api-key --scope read` (argument parsing; the write itself is the resolver's)."""
    from server.cli import build_parser

    args = build_parser().parse_args(["create-api-key", "--org", "acme", "--name", "x", "--scope", scope])
    assert args.scope == scope
