"""An invite lives only as long as its sender keeps the right to issue it: removing or demoting
the sender revokes, in the same write, the pending invites the sender's new role could not
issue (as the sender's API keys are revoked on removal), and the audit entry lists them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models import AuditEntry, Invite, OrgRole
from tests.conftest import gid
from tests.membership_helpers import call, make_invite, make_key, membership, only_audit

pytestmark = pytest.mark.both_databases

INVITE = """
mutation($i: InviteMemberInput!) { inviteMember(input: $i) { inviteToken invite { id role } } }"""
ACCEPT = """
mutation($i: AcceptInviteInput!) {
  acceptInvite(input: $i) { organization { slug viewerRole } member { role } }
}"""
UPDATE_ROLE = """
mutation($i: UpdateMemberRoleInput!) { updateMemberRole(input: $i) { member { id role } } }"""
REMOVE = """
mutation($i: RemoveMemberInput!) { removeMember(input: $i) { removedMemberId } }"""
INVITES = """
query($slug: String!) { organization(slug: $slug) { invites { nodes { id } } } }"""


async def _invite(gql, org, sender_token: str, email: str, role: str) -> tuple[int, str]:
    data = await gql.ok(
        INVITE,
        {"i": {"organizationId": gid("Organization", org.id), "email": email, "role": role}},
        sender_token,
    )
    payload = data["inviteMember"]
    invite = await Invite.get(email=email.lower(), organization_id=org.id, revoked_at=None)
    assert payload["invite"]["id"] == gid("Invite", invite.id)
    return invite.id, payload["inviteToken"]


def _answer(error: dict) -> tuple:
    """What a client can tell an error by: message and extensions (the request id aside)."""
    extensions = {k: v for k, v in error["extensions"].items() if k != "requestId"}
    return error["message"], extensions


async def _revoked_answer(gql, org, factory) -> tuple:
    """How acceptInvite answers an invite revoked with revokeInvite's write."""
    holder = await factory.user("Holder")
    _, token = await make_invite(org, holder, holder.user.email, revoked_at=datetime.now(UTC))
    return _answer(await gql.error(ACCEPT, {"i": {"token": token}}, holder.token))


async def _states(ids: list[int]) -> dict[int, tuple]:
    rows = await Invite.filter(id__in=ids)
    return {r.id: (r.revoked_at is not None, r.accepted_at is not None) for r in rows}


async def test_removing_an_admin_revokes_their_pending_invites(gql, acme, factory):
    org, owner, admin, _ = acme
    other = await factory.org(owner, "other")
    await factory.org_member(other, admin, OrgRole.ADMIN)
    as_admin = await factory.user("AsAdmin")
    as_member = await factory.user("AsMember")
    via_key = await factory.user("ViaKey")
    joined = await factory.user("Joined")
    by_owner = await factory.user("ByOwner")
    elsewhere = await factory.user("Elsewhere")
    admin_invite, admin_token = await _invite(gql, org, admin.token, as_admin.user.email, "ADMIN")
    member_invite, _ = await _invite(gql, org, admin.token, as_member.user.email, "MEMBER")
    _, key = await make_key(org, admin, OrgRole.ADMIN)
    key_invite, _ = await _invite(gql, org, key, via_key.user.email, "MEMBER")
    accepted, accepted_token = await _invite(gql, org, admin.token, joined.user.email, "MEMBER")
    await gql.ok(ACCEPT, {"i": {"token": accepted_token}}, joined.token)
    owners_invite, owners_token = await _invite(gql, org, owner.token, by_owner.user.email, "ADMIN")
    other_invite, other_token = await _invite(gql, other, admin.token, elsewhere.user.email, "MEMBER")

    row = await membership(org, admin)
    await call(gql, REMOVE, {"i": {"memberId": gid("OrganizationMember", row.id)}}, owner.token,
               "req-remove-admin")

    states = await _states([admin_invite, member_invite, key_invite, accepted, owners_invite,
                            other_invite])
    assert states == {
        admin_invite: (True, False), member_invite: (True, False), key_invite: (True, False),
        accepted: (False, True),  # already redeemed: history, not a live credential
        owners_invite: (False, False),  # another sender's
        other_invite: (False, False),  # the admin keeps their rights in the other organization
    }
    entry = await only_audit("member.remove")
    assert entry.request_id == "req-remove-admin"
    assert entry.after["revokedInviteIds"] == sorted([admin_invite, member_invite, key_invite])
    assert len(entry.after["revokedApiKeyIds"]) == 1
    listed = await gql.ok(INVITES, {"slug": "acme"}, owner.token)
    assert listed["organization"]["invites"]["nodes"] == [{"id": gid("Invite", owners_invite)}]

    # Redeeming it answers exactly as a revoked invite does, and writes nothing.
    error = await gql.error(ACCEPT, {"i": {"token": admin_token}}, as_admin.token)
    assert _answer(error) == await _revoked_answer(gql, org, factory)
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert (await Invite.get(id=admin_invite)).accepted_at is None
    # The untouched invites still work.
    await gql.ok(ACCEPT, {"i": {"token": owners_token}}, by_owner.token)
    await gql.ok(ACCEPT, {"i": {"token": other_token}}, elsewhere.token)


async def test_an_admin_who_leaves_takes_their_invites_along(gql, acme, factory):
    org, _, admin, _ = acme
    invitee = await factory.user("Invitee")
    invite_id, token = await _invite(gql, org, admin.token, invitee.user.email, "ADMIN")
    row = await membership(org, admin)
    await gql.ok(REMOVE, {"i": {"memberId": gid("OrganizationMember", row.id)}}, admin.token)
    assert await _states([invite_id]) == {invite_id: (True, False)}
    assert (await only_audit("member.remove")).after["revokedInviteIds"] == [invite_id]
    error = await gql.error(ACCEPT, {"i": {"token": token}}, invitee.token)
    assert _answer(error) == await _revoked_answer(gql, org, factory)


async def test_demoting_an_admin_to_member_revokes_their_invites(gql, acme, factory):
    org, owner, admin, _ = acme
    invitee = await factory.user("Invitee")
    other = await factory.user("Other")
    admin_invite, token = await _invite(gql, org, admin.token, invitee.user.email, "ADMIN")
    member_invite, _ = await _invite(gql, org, admin.token, other.user.email, "MEMBER")
    row = await membership(org, admin)
    member_gid = gid("OrganizationMember", row.id)
    await call(gql, UPDATE_ROLE, {"i": {"memberId": member_gid, "role": "MEMBER"}}, owner.token,
               "req-demote")
    assert await _states([admin_invite, member_invite]) == {
        admin_invite: (True, False), member_invite: (True, False)
    }
    entry = await only_audit("member.update_role")
    assert entry.request_id == "req-demote"
    assert entry.after["role"] == "member"
    assert entry.after["revokedInviteIds"] == sorted([admin_invite, member_invite])
    error = await gql.error(ACCEPT, {"i": {"token": token}}, invitee.token)
    assert _answer(error) == await _revoked_answer(gql, org, factory)

    # Promoted again, the admin's old invites stay revoked; nothing more is revoked.
    await gql.ok(UPDATE_ROLE, {"i": {"memberId": member_gid, "role": "ADMIN"}}, owner.token)
    entries = await AuditEntry.filter(action="member.update_role").order_by("id")
    assert len(entries) == 2 and "revokedInviteIds" not in entries[-1].after
    error = await gql.error(ACCEPT, {"i": {"token": token}}, invitee.token)
    assert error["extensions"]["code"] == "NOT_FOUND"


async def test_demoting_an_owner_to_admin_revokes_only_the_owner_invites(gql, acme, factory):
    org, owner, _, _ = acme
    co_owner = await factory.user("CoOwner")
    await factory.org_member(org, co_owner, OrgRole.OWNER)
    heir = await factory.user("Heir")
    deputy = await factory.user("Deputy")
    hand = await factory.user("Hand")
    owner_invite, owner_token = await _invite(gql, org, co_owner.token, heir.user.email, "OWNER")
    admin_invite, admin_token = await _invite(gql, org, co_owner.token, deputy.user.email, "ADMIN")
    member_invite, _ = await _invite(gql, org, co_owner.token, hand.user.email, "MEMBER")
    row = await membership(org, co_owner)
    await gql.ok(UPDATE_ROLE, {"i": {"memberId": gid("OrganizationMember", row.id),
                                     "role": "ADMIN"}}, owner.token)
    assert await _states([owner_invite, admin_invite, member_invite]) == {
        owner_invite: (True, False), admin_invite: (False, False), member_invite: (False, False)
    }
    assert (await only_audit("member.update_role")).after["revokedInviteIds"] == [owner_invite]
    error = await gql.error(ACCEPT, {"i": {"token": owner_token}}, heir.token)
    assert _answer(error) == await _revoked_answer(gql, org, factory)
    # What an admin may issue stays valid.
    data = await gql.ok(ACCEPT, {"i": {"token": admin_token}}, deputy.token)
    assert data["acceptInvite"]["member"]["role"] == "ADMIN"


@pytest.mark.postgres_only
async def test_an_invite_racing_the_senders_demotion_is_refused(gql, acme, factory,
                                                                database_url, backend):
    """The sender's rights are read again inside the invite's write, under a lock on the
    sender's membership row: an invite that started while the demotion was being written
    waits for it, then sees the new role. (The role check before the write saw ADMIN.)"""
    import asyncio

    import asyncpg

    org, _, admin, _ = acme
    invitee = await factory.user("Invitee")
    row = await membership(org, admin)
    conn = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        demotion = conn.transaction()
        await demotion.start()
        await conn.execute(
            "UPDATE organization_member SET role = 'member' WHERE id = $1", row.id
        )
        invite = asyncio.create_task(gql.raw(INVITE, {"i": {
            "organizationId": gid("Organization", org.id), "email": invitee.user.email,
            "role": "MEMBER"}}, admin.token))
        for _ in range(500):  # until the invite waits for the row the demotion holds
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
            if waiting or invite.done():
                break
            await asyncio.sleep(0.01)
        assert not invite.done(), await invite
        await demotion.commit()
        body = await invite
    finally:
        await conn.close()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"], body
    assert await Invite.filter(organization_id=org.id).count() == 0
