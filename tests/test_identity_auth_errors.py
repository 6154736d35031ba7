"""Bad input and bad credentials: a clear error with extensions.code, never a 500 or a trace."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from models import AuditEntry, Organization, Task, User
from resolvers.errors import Unauthenticated
from resolvers.identity.auth import authenticate, verified_tokens
from tests.conftest import PASSWORD, SECRET, gid

VIEWER = "{ viewer { user { id name } } }"


async def test_anonymous_viewer_is_unauthenticated(gql):
    assert await gql.code(VIEWER) == "UNAUTHENTICATED"


async def test_log_in_returns_a_token_that_works(gql, factory):
    alice = await factory.user("Alice")
    data = await gql.ok(
        "mutation($i: LogInInput!) { logIn(input: $i) { accessToken expiresAt user { id } } }",
        {"i": {"email": alice.user.email.upper(), "password": PASSWORD}},
    )
    token = data["logIn"]["accessToken"]
    assert (await gql.ok(VIEWER, token=token))["viewer"]["user"]["id"] == alice.gid


@pytest.mark.parametrize("email,password", [("nobody@example.test", PASSWORD), (None, "wrong password")])
async def test_log_in_failure_does_not_say_which_part_was_wrong(gql, factory, email, password):
    alice = await factory.user("Alice")
    error = await gql.error(
        "mutation($i: LogInInput!) { logIn(input: $i) { accessToken } }",
        {"i": {"email": email or alice.user.email, "password": password}},
    )
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["message"] == "Wrong email or password"


async def test_expired_token(gql, factory):
    alice = await factory.user()
    now = datetime.now(UTC)
    token = jwt.encode(
        {"sub": str(alice.user.id), "iat": int((now - timedelta(hours=2)).timestamp()),
         "exp": int((now - timedelta(hours=1)).timestamp()), "typ": "access"},
        SECRET, algorithm="HS256",
    )
    error = await gql.error(VIEWER, token=token)
    assert error["extensions"] == {"code": "UNAUTHENTICATED", "reason": "TOKEN_EXPIRED"}


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-3] + ("AAA" if not t.endswith("AAA") else "BBB"),  # bad signature
        lambda t: jwt.encode(jwt.decode(t, options={"verify_signature": False}), "another-secret-" * 3, algorithm="HS256"),
        lambda t: "not-a-jwt",
        lambda t: jwt.encode({**jwt.decode(t, options={"verify_signature": False}), "sub": "999999"}, SECRET, algorithm="HS256"),
        lambda t: jwt.encode({**jwt.decode(t, options={"verify_signature": False}), "typ": "refresh"}, SECRET, algorithm="HS256"),
    ],
    ids=["signature", "other-key", "garbage", "unknown-user", "wrong-type"],
)
async def test_tampered_tokens(gql, factory, mangle):
    alice = await factory.user()
    error = await gql.error(VIEWER, token=mangle(alice.token))
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["extensions"]["reason"] == "TOKEN_INVALID"


async def test_none_algorithm_is_rejected(gql, factory):
    alice = await factory.user()
    claims = jwt.decode(alice.token, options={"verify_signature": False})
    token = jwt.encode(claims, key=None, algorithm="none")
    assert await gql.code(VIEWER, token=token) == "UNAUTHENTICATED"


async def test_wrong_authorization_scheme(client, factory):
    alice = await factory.user()
    r = await client.post("/graphql", json={"query": VIEWER}, headers={"Authorization": f"Token {alice.token}"})
    assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_bad_token_still_allows_log_in(gql, factory):
    """A client holding an expired token must be able to get a new one."""
    alice = await factory.user()
    data = await gql.ok(
        "mutation($i: LogInInput!) { logIn(input: $i) { accessToken } }",
        {"i": {"email": alice.user.email, "password": PASSWORD}},
        token="garbage",
    )
    assert data["logIn"]["accessToken"]


async def test_parse_error_has_code(gql, factory):
    alice = await factory.user()
    assert await gql.code("{ viewer { ", token=alice.token) == "GRAPHQL_PARSE_FAILED"


async def test_unknown_field_has_code(gql, factory):
    alice = await factory.user()
    assert await gql.code("{ viewer { nope } }", token=alice.token) == "GRAPHQL_VALIDATION_FAILED"


async def test_unknown_enum_value_in_variables(gql, factory):
    alice = await factory.user()
    org = await factory.org(alice)
    project = await factory.project(org, alice)
    before = await Task.all().count()
    error = await gql.error(
        "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }",
        {"i": {"projectId": gid("Project", project.id), "title": "x", "status": "WONTFIX"}},
        token=alice.token,
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert await Task.all().count() == before


@pytest.mark.parametrize(
    "bad_id,expected_message",
    [
        ("not-base64!!", "Malformed ID"),
        ("", "Malformed ID"),
        (gid("Task", 1), "Expected a Project ID"),
        ("VGFzazp4", "Malformed ID"),  # "Task:x"
        ("Tm9wZToxMg", "Malformed ID"),  # "Nope:12"
    ],
)
async def test_malformed_and_wrong_type_ids(gql, factory, bad_id, expected_message):
    alice = await factory.user()
    error = await gql.error(
        "query($id: ID!) { project(id: $id) { id } }", {"id": bad_id}, token=alice.token
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == expected_message


@pytest.mark.parametrize("first", [101, -1, 10_000])
async def test_page_size_limits(gql, factory, first):
    alice = await factory.user()
    error = await gql.error(
        "query($f: Int) { projects(first: $f) { nodes { id } } }", {"f": first}, token=alice.token
    )
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "first"}


async def test_malformed_cursor(gql, factory):
    alice = await factory.user()
    error = await gql.error(
        'query { projects(after: "%%%") { nodes { id } } }', token=alice.token
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    "slug,name,field",
    [("Bad Slug", "Acme", "slug"), ("-acme", "Acme", "slug"), ("acme", "", "name"), ("acme", "x" * 201, "name")],
)
async def test_create_organization_validation_writes_nothing(gql, factory, slug, name, field):
    alice = await factory.user()
    before = (await Organization.all().count(), await AuditEntry.all().count())
    error = await gql.error(
        "mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { organization { id } } }",
        {"i": {"slug": slug, "name": name}},
        token=alice.token,
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == field
    assert (await Organization.all().count(), await AuditEntry.all().count()) == before


async def test_duplicate_slug_is_conflict(gql, factory):
    alice = await factory.user()
    await factory.org(alice, slug="taken")
    assert await gql.code(
        'mutation { createOrganization(input: {slug: "taken", name: "X"}) { organization { id } } }',
        token=alice.token,
    ) == "CONFLICT"


async def test_sign_up_rules(gql, factory):
    alice = await factory.user()
    query = "mutation($i: SignUpInput!) { signUp(input: $i) { ok } }"
    cases = [
        ({"email": "not-an-email", "name": "A", "password": PASSWORD}, "BAD_USER_INPUT"),
        ({"email": "a@b.test", "name": "A", "password": "short"}, "BAD_USER_INPUT"),
        ({"email": "a@b.test", "name": " ", "password": PASSWORD}, "BAD_USER_INPUT"),
    ]
    for variables, code in cases:
        assert await gql.code(query, {"i": variables}) == code, variables
    # A taken email is no error: the answer does not say it is taken (tests/test_identity_sign_up.py).
    taken = {"email": alice.user.email, "name": "A", "password": PASSWORD}
    assert (await gql.ok(query, {"i": taken}))["signUp"] == {"ok": True}


async def test_unexpected_errors_are_masked(gql, factory, monkeypatch):
    """A bug in a resolver must not leak its message or a trace to the client."""
    from resolvers.org import organizations as orgs

    async def broken(ctx, slug):
        raise RuntimeError("secret internals: /etc/passwd")

    monkeypatch.setattr(orgs, "organization_by_slug", broken)
    alice = await factory.user()
    error = await gql.error('{ organization(slug: "x") { id } }', token=alice.token)
    assert error["message"] == "Internal server error"
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["extensions"]["requestId"]
    assert "passwd" not in str(error)


async def test_request_id_is_echoed_and_audited(client, factory):
    alice = await factory.user()
    r = await client.post(
        "/graphql",
        json={"query": 'mutation { createOrganization(input: {slug: "rid", name: "R"}) { organization { id } } }'},
        headers={"Authorization": f"Bearer {alice.token}", "X-Request-ID": "req-123"},
    )
    assert r.headers["x-request-id"] == "req-123"
    entry = await AuditEntry.get(action="organization.create")
    assert entry.request_id == "req-123"
    assert entry.ip == "203.0.113.7"
    assert entry.actor_id == alice.user.id
    assert entry.after["slug"] == "rid"


async def test_get_graphql_serves_graphiql(client):
    r = await client.get("/graphql", headers={"Accept": "text/html"})
    assert r.status_code == 200
    assert "graphiql" in r.text.lower()


# Verified tokens are kept (resolvers/identity/auth.py verified_tokens): what may change after
# the first verification is still checked on every use.


async def test_a_verified_token_is_refused_once_it_expires(gql, factory):
    alice = await factory.user()
    claims = jwt.decode(alice.token, options={"verify_signature": False})
    expires = int(time.time()) + 2
    token = jwt.encode({**claims, "exp": expires}, SECRET, algorithm="HS256")
    assert (await gql.ok(VIEWER, token=token))["viewer"]["user"]["id"] == alice.gid
    assert verified_tokens.get(SECRET, token) is not None
    await asyncio.sleep(max(0.0, expires - time.time()) + 0.05)
    error = await gql.error(VIEWER, token=token)
    assert error["extensions"] == {"code": "UNAUTHENTICATED", "reason": "TOKEN_EXPIRED"}


async def test_a_verified_token_of_a_deactivated_user_is_refused(gql, factory):
    alice = await factory.user()
    await gql.ok(VIEWER, token=alice.token)
    await User.filter(id=alice.user.id).update(is_active=False)
    error = await gql.error(VIEWER, token=alice.token)
    assert error["extensions"] == {"code": "UNAUTHENTICATED", "reason": "TOKEN_INVALID"}


async def test_a_token_verified_under_one_secret_is_not_accepted_under_another(gql, factory):
    alice = await factory.user()
    await gql.ok(VIEWER, token=alice.token)
    with pytest.raises(Unauthenticated) as refused:
        await authenticate(f"Bearer {alice.token}", "a-rotated-secret-" + "y" * 32, None)
    assert refused.value.extensions["reason"] == "TOKEN_INVALID"


async def test_refused_tokens_are_not_kept(gql, factory):
    alice = await factory.user()
    forged = alice.token[:-3] + ("AAA" if not alice.token.endswith("AAA") else "BBB")
    for _ in range(2):
        assert (await gql.error(VIEWER, token=forged))["extensions"]["reason"] == "TOKEN_INVALID"
    assert verified_tokens.get(SECRET, forged) is None
