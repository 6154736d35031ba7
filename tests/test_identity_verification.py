"""Email verification: what an unverified account may and may not do, the link's rules, and
resending (rate limited, earlier links die)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from models import AuditEntry, EmailToken, Invite, OrgRole, OutboxEmail, User
from resolvers.identity.auth import hash_secret

VERIFY = "mutation($i: VerifyEmailInput!) { verifyEmail(input: $i) { ok email } }"
RESEND = "mutation { resendVerificationEmail { sent message } }"
VIEWER = "{ viewer { emailVerified } }"
CREATE_ORG = "mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { organization { slug } } }"
ACCEPT = "mutation($i: AcceptInviteInput!) { acceptInvite(input: $i) { member { role } } }"


def token_in(mail: OutboxEmail) -> str:
    return re.search(r"#token=([A-Za-z0-9_-]+)", mail.text_body).group(1)


async def latest_link_token(user) -> str:
    mail = await OutboxEmail.filter(user_id=user.id, template="verify_email").order_by("-id").first()
    return token_in(mail)


async def _invite(org, inviter, email: str) -> str:
    token = f"invite-token-{email}"
    await Invite.create(organization=org, email=email, role=OrgRole.MEMBER, token_hash=hash_secret(token),
                        invited_by=inviter.user, expires_at=datetime.now(UTC) + timedelta(days=7))
    return token


async def test_an_unverified_account_logs_in_but_cannot_accept_invites_or_found_a_second_org(gql, factory):
    owner = await factory.user("Owner")
    org = await factory.org(owner, "acme")
    fresh = await factory.user("Fresh", verified=False)
    invite_token = await _invite(org, owner, fresh.user.email)

    assert (await gql.ok(VIEWER, token=fresh.token))["viewer"]["emailVerified"] is False
    error = await gql.error(ACCEPT, {"i": {"token": invite_token}}, fresh.token)
    assert error["extensions"]["code"] == "EMAIL_NOT_VERIFIED"
    assert "resendVerificationEmail" in error["message"]
    # The first organization is allowed; a second is not.
    await gql.ok(CREATE_ORG, {"i": {"slug": "first", "name": "First"}}, fresh.token)
    error = await gql.error(CREATE_ORG, {"i": {"slug": "second", "name": "Second"}}, fresh.token)
    assert error["extensions"]["code"] == "EMAIL_NOT_VERIFIED"
    assert await AuditEntry.filter(actor_id=fresh.user.id).count() == 1  # the first org only

    # Verified (through a resent link), both work.
    await gql.ok(RESEND, token=fresh.token)
    await gql.ok(VERIFY, {"i": {"token": await latest_link_token(fresh.user)}})
    assert (await gql.ok(VIEWER, token=fresh.token))["viewer"]["emailVerified"] is True
    assert (await gql.ok(ACCEPT, {"i": {"token": invite_token}}, fresh.token))["acceptInvite"]["member"]["role"] == "MEMBER"
    # (the free plan allows one free organization owned: the second now meets the plan limit)
    error = await gql.error(CREATE_ORG, {"i": {"slug": "second", "name": "Second"}}, fresh.token)
    assert error["extensions"]["code"] == "PLAN_LIMIT_REACHED"


async def test_resending_kills_earlier_links_and_is_rate_limited(gql, factory):
    fresh = await factory.user("Fresh", verified=False)
    tokens = []
    for _ in range(3):
        data = await gql.ok(RESEND, token=fresh.token)
        assert data["resendVerificationEmail"]["sent"] is True
        tokens.append(await latest_link_token(fresh.user))
    error = await gql.error(RESEND, token=fresh.token)
    assert error["extensions"]["code"] == "RATE_LIMITED" and error["extensions"]["retryAfter"] >= 1
    assert await OutboxEmail.filter(user_id=fresh.user.id).count() == 3
    # Only the newest link works.
    for old in tokens[:2]:
        error = await gql.error(VERIFY, {"i": {"token": old}})
        assert error["extensions"]["reason"] == "TOKEN_INVALID"
    assert (await gql.ok(VERIFY, {"i": {"token": tokens[2]}}))["verifyEmail"]["ok"]
    # Verified: nothing more is sent, and that is no error.
    data = await gql.ok(RESEND, token=fresh.token)
    assert data["resendVerificationEmail"] == {"sent": False, "message": "Your email address is already verified."}
    actions = await AuditEntry.filter(resource_id=str(fresh.user.id)).values_list("action", flat=True)
    assert sorted(actions) == ["user.resend_verification"] * 3 + ["user.verify_email"]


async def test_resend_needs_a_person_not_an_api_key(gql, factory):
    from tests.membership_helpers import make_key

    owner = await factory.user("Owner", verified=False)
    org = await factory.org(owner)
    _, key = await make_key(org, owner, OrgRole.ADMIN)
    assert await gql.code(RESEND, token=key) == "FORBIDDEN"
    assert await gql.code(RESEND) == "UNAUTHENTICATED"


@pytest.mark.parametrize("token", ["", "x" * 201, "no-such-token", "a\x00b"])
async def test_bad_tokens_are_bad_input_and_write_nothing(gql, token):
    body = await gql.raw(VERIFY, {"i": {"token": token}})
    extensions = body["errors"][0]["extensions"]
    assert extensions["code"] == "BAD_USER_INPUT"
    assert not await AuditEntry.exists()


async def test_an_expired_or_stale_link_does_not_verify(gql, factory):
    fresh = await factory.user("Fresh", verified=False)
    await gql.ok(RESEND, token=fresh.token)
    token = await latest_link_token(fresh.user)
    await EmailToken.filter(user_id=fresh.user.id).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    error = await gql.error(VERIFY, {"i": {"token": token}})
    assert (error["extensions"]["code"], error["extensions"]["reason"]) == ("BAD_USER_INPUT", "TOKEN_EXPIRED")

    # A link sent to an address the account no longer has verifies nothing.
    await EmailToken.filter(user_id=fresh.user.id).update(expires_at=datetime.now(UTC) + timedelta(hours=1))
    await User.filter(id=fresh.user.id).update(email="changed@example.test")
    error = await gql.error(VERIFY, {"i": {"token": token}})
    assert error["extensions"]["reason"] == "TOKEN_INVALID"
    assert (await User.get(id=fresh.user.id)).email_verified_at is None


async def test_a_verification_token_is_no_reset_token(gql, factory):
    fresh = await factory.user("Fresh", verified=False)
    await gql.ok(RESEND, token=fresh.token)
    token = await latest_link_token(fresh.user)
    reset = "mutation($i: ResetPasswordInput!) { resetPassword(input: $i) { ok } }"
    error = await gql.error(reset, {"i": {"token": token, "newPassword": "new password 123"}})
    assert error["extensions"]["reason"] == "TOKEN_INVALID"


@pytest.mark.both_databases
async def test_an_unverified_account_founds_one_organization_even_when_racing(gql, factory, backend):
    """Two concurrent createOrganization calls of an unverified account with no organization:
    one wins, the other is refused (the user's row is locked by both)."""
    import asyncio

    fresh = await factory.user("Fresh", verified=False)
    results = await asyncio.gather(*(
        gql.raw(CREATE_ORG, {"i": {"slug": f"c{n}", "name": "C"}}, fresh.token) for n in range(3)
    ))
    codes = sorted((r.get("errors") or [{"extensions": {"code": "ok"}}])[0]["extensions"]["code"] for r in results)
    assert codes[0] == "EMAIL_NOT_VERIFIED" and codes.count("ok") == 1
    assert codes.count("EMAIL_NOT_VERIFIED") == 2
    member_orgs = await gql.ok("{ viewer { organizations { role } } }", token=fresh.token)
    assert len(member_orgs["viewer"]["organizations"]) == 1
