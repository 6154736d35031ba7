"""API keys: creation (secret shown once), use as a Bearer credential capped at the key's role,
revocation, and the admin-only list."""

from datetime import UTC, datetime, timedelta

from models import ApiKey, AuditEntry, Invite, OrgRole
from resolvers.identity.auth import hash_secret
from tests.conftest import gid
from tests.membership_helpers import (
    assert_audit,
    call,
    db_state,
    fails,
    make_key,
    only_audit,
)

CREATE = """
mutation($i: CreateApiKeyInput!) {
  createApiKey(input: $i) {
    key
    apiKey { id name prefix role createdAt lastUsedAt expiresAt revokedAt createdBy { id } }
  }
}"""
REVOKE = """
mutation($i: RevokeApiKeyInput!) { revokeApiKey(input: $i) { apiKey { id revokedAt } } }"""
INVITE = """
mutation($i: InviteMemberInput!) { inviteMember(input: $i) { invite { id role } } }"""
KEYS = """
query($slug: String!, $all: Boolean!) {
  organization(slug: $slug) { apiKeys(includeRevoked: $all) { totalCount nodes { id name } } }
}"""
WHO = 'query { viewer { user { id } } organization(slug: "acme") { viewerRole } }'


def _create_vars(org, role="MEMBER", name="CI deploys", **extra):
    return {"i": {"organizationId": gid("Organization", org.id), "name": name, "role": role,
                  **extra}}


def _invite_vars(org, role="MEMBER", email="new@example.test"):
    return {"i": {"organizationId": gid("Organization", org.id), "email": email, "role": role}}


# -- createApiKey -------------------------------------------------------------------------------


async def test_admin_creates_a_key_whose_secret_is_shown_once(gql, acme):
    org, _, admin, _ = acme
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    variables = _create_vars(org, "ADMIN", expiresAt=expires.isoformat())
    data = await call(gql, CREATE, variables, admin.token, "req-key-1")
    key, out = data["createApiKey"]["key"], data["createApiKey"]["apiKey"]
    assert key.startswith("pcg_") and len(key) > 40
    assert out["name"] == "CI deploys" and out["role"] == "ADMIN"
    assert out["prefix"] == key[:12]
    assert out["createdBy"] == {"id": admin.gid}
    assert out["lastUsedAt"] is None and out["revokedAt"] is None
    assert datetime.fromisoformat(out["expiresAt"]) == expires

    row = await ApiKey.get(organization_id=org.id)
    assert out["id"] == gid("ApiKey", row.id)
    assert row.key_hash == hash_secret(key) and key not in row.key_hash
    entry = await only_audit("api_key.create")
    assert_audit(entry, actor=admin, org_id=org.id, request_id="req-key-1")
    assert entry.after["role"] == "admin" and entry.after["prefix"] == key[:12]
    assert key not in str(entry.after) and row.key_hash not in str(entry.after)

    # The hash is not part of the API at all.
    fields = await gql.ok('{ __type(name: "ApiKey") { fields { name } } }')
    names = {f["name"] for f in fields["__type"]["fields"]}
    assert not any("hash" in n.lower() for n in names)
    assert "key" not in names


async def test_create_api_key_rules(gql, acme):
    org, owner, admin, member = acme
    await fails(gql, "FORBIDDEN", CREATE, _create_vars(org), member.token)
    error = await fails(gql, "FORBIDDEN", CREATE, _create_vars(org, "OWNER"), admin.token)
    assert error["extensions"]["requiredRole"] == "owner"
    error = await fails(gql, "BAD_USER_INPUT", CREATE, _create_vars(org, name=" "), owner.token)
    assert error["extensions"]["field"] == "name"
    error = await fails(gql, "BAD_USER_INPUT", CREATE, _create_vars(org, name="k" * 101),
                        owner.token)
    assert error["extensions"]["field"] == "name"
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    error = await fails(gql, "BAD_USER_INPUT", CREATE, _create_vars(org, expiresAt=past),
                        owner.token)
    assert error["extensions"]["field"] == "expiresAt"
    await fails(gql, "UNAUTHENTICATED", CREATE, _create_vars(org), None)


async def test_an_api_key_cannot_mint_api_keys(gql, acme):
    org, owner, _, _ = acme
    _, key = await make_key(org, owner, OrgRole.OWNER)
    await fails(gql, "FORBIDDEN", CREATE, _create_vars(org), key)


# -- using a key --------------------------------------------------------------------------------


async def test_a_key_acts_as_its_creator_capped_at_its_role(gql, acme):
    org, owner, _, _ = acme
    data = await gql.ok(CREATE, _create_vars(org, "MEMBER"), owner.token)
    key = data["createApiKey"]["key"]
    who = await gql.ok(WHO, token=key)
    assert who == {"viewer": {"user": {"id": owner.gid}}, "organization": {"viewerRole": "MEMBER"}}
    # The owner could invite; the owner's member-role key cannot.
    await fails(gql, "FORBIDDEN", INVITE, _invite_vars(org), key)


async def test_an_admin_key_invites_and_the_audit_names_the_key(gql, acme):
    org, owner, _, _ = acme
    api_key, key = await make_key(org, owner, OrgRole.ADMIN)
    data = await gql.ok(INVITE, _invite_vars(org), key)
    assert data["inviteMember"]["invite"]["role"] == "MEMBER"
    assert await Invite.filter(organization_id=org.id).count() == 1
    assert_audit(await only_audit("invite.create"), actor=owner, org_id=org.id,
                 api_key_id=api_key.id)
    # Capped at admin: inviting an owner needs an owner.
    await fails(gql, "FORBIDDEN", INVITE, _invite_vars(org, "OWNER", "boss@example.test"), key)


async def test_a_key_sees_only_its_own_organization(gql, acme, factory):
    org, owner, _, _ = acme
    other = await factory.org(owner, "other")
    _, key = await make_key(org, owner, OrgRole.OWNER)
    query = 'query { organization(slug: "other") { id } }'
    assert (await gql.ok(query, token=key))["organization"] is None
    await fails(gql, "NOT_FOUND", INVITE,
                {"i": {"organizationId": gid("Organization", other.id), "email": "a@example.test",
                       "role": "MEMBER"}}, key)


async def test_an_expired_key_is_unauthenticated(gql, acme):
    org, owner, _, _ = acme
    _, key = await make_key(org, owner, OrgRole.ADMIN,
                            expires_at=datetime.now(UTC) - timedelta(seconds=1))
    error = await fails(gql, "UNAUTHENTICATED", INVITE, _invite_vars(org), key)
    assert error["extensions"]["reason"] == "API_KEY_INVALID"


# -- revokeApiKey -------------------------------------------------------------------------------


async def test_a_revoked_key_is_unauthenticated_and_writes_nothing(gql, acme):
    org, owner, admin, _ = acme
    data = await gql.ok(CREATE, _create_vars(org, "ADMIN"), owner.token)
    key, key_id = data["createApiKey"]["key"], data["createApiKey"]["apiKey"]["id"]
    await gql.ok(INVITE, _invite_vars(org), key)  # works before revocation

    out = await call(gql, REVOKE, {"i": {"apiKeyId": key_id}}, admin.token, "req-revoke-1")
    assert out["revokeApiKey"]["apiKey"]["revokedAt"] is not None
    row = await ApiKey.get(organization_id=org.id)
    assert row.revoked_at is not None
    entry = await only_audit("api_key.revoke")
    assert_audit(entry, actor=admin, org_id=org.id, request_id="req-revoke-1")
    assert entry.before["revokedAt"] is None and entry.after["revokedAt"] is not None

    error = await fails(gql, "UNAUTHENTICATED", INVITE,
                        _invite_vars(org, email="later@example.test"), key)
    assert error["extensions"]["reason"] == "API_KEY_INVALID"
    await fails(gql, "UNAUTHENTICATED", "query { viewer { user { id } } }", None, key)

    # Revoking again is idempotent and writes nothing.
    before = await db_state()
    await gql.ok(REVOKE, {"i": {"apiKeyId": key_id}}, owner.token)
    assert await db_state() == before


async def test_revoke_api_key_rules(gql, acme):
    org, owner, _, member = acme
    api_key, _ = await make_key(org, owner, OrgRole.MEMBER)
    variables = {"i": {"apiKeyId": gid("ApiKey", api_key.id)}}
    await fails(gql, "FORBIDDEN", REVOKE, variables, member.token)
    await fails(gql, "NOT_FOUND", REVOKE, {"i": {"apiKeyId": gid("ApiKey", 99999)}}, owner.token)
    await fails(gql, "BAD_USER_INPUT", REVOKE, {"i": {"apiKeyId": gid("Invite", api_key.id)}},
                owner.token)


# -- Organization.apiKeys -----------------------------------------------------------------------


async def test_api_keys_are_listed_to_admins_only(gql, acme):
    org, owner, admin, member = acme
    live, _ = await make_key(org, owner, OrgRole.MEMBER)
    dead, _ = await make_key(org, owner, OrgRole.ADMIN, revoked_at=datetime.now(UTC))

    data = await gql.ok(KEYS, {"slug": "acme", "all": False}, admin.token)
    assert data["organization"]["apiKeys"]["nodes"] == [
        {"id": gid("ApiKey", live.id), "name": "test key"}
    ]
    data = await gql.ok(KEYS, {"slug": "acme", "all": True}, admin.token)
    assert data["organization"]["apiKeys"]["totalCount"] == 2
    assert {n["id"] for n in data["organization"]["apiKeys"]["nodes"]} == {
        gid("ApiKey", live.id), gid("ApiKey", dead.id)
    }
    error = await gql.error(KEYS, {"slug": "acme", "all": False}, member.token)
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert await AuditEntry.all().count() == 0
