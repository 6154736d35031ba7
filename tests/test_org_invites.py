"""Invites (invite, accept, revoke), the admin-only organization lists, and the rule that an
outsider cannot tell an object of another organization from one that does not exist."""

from datetime import UTC, datetime, timedelta

import pytest

from models import Invite, OrgRole, ProjectRole
from resolvers.identity.auth import hash_secret
from tests.conftest import gid
from tests.membership_helpers import (
    assert_audit,
    call,
    db_state,
    fails,
    make_invite,
    make_key,
    membership,
    only_audit,
    project_membership,
)

INVITE = """
mutation($i: InviteMemberInput!) {
  inviteMember(input: $i) {
    inviteToken
    invite { id email role createdAt expiresAt acceptedAt invitedBy { id } organization { id } }
  }
}"""

ACCEPT = """
mutation($i: AcceptInviteInput!) {
  acceptInvite(input: $i) {
    organization { id slug viewerRole }
    member { id role user { id } }
  }
}"""

REVOKE_INVITE = """
mutation($i: RevokeInviteInput!) { revokeInvite(input: $i) { invite { id revokedAt } } }"""

INVITES = """
query($slug: String!) { organization(slug: $slug) { invites { totalCount nodes { id email role } } } }"""


def _invite_vars(org, email, role="MEMBER"):
    return {"i": {"organizationId": gid("Organization", org.id), "email": email, "role": role}}


# -- inviteMember -------------------------------------------------------------------------------


async def test_admin_invites_a_member_and_only_the_token_hash_is_stored(gql, acme):
    org, _, admin, _ = acme
    data = await call(gql, INVITE, _invite_vars(org, " New.Person@Example.test "), admin.token,
                      "req-invite-1")
    payload = data["inviteMember"]
    token, invite = payload["inviteToken"], payload["invite"]
    assert len(token) >= 40
    assert invite["email"] == "new.person@example.test"
    assert invite["role"] == "MEMBER"
    assert invite["acceptedAt"] is None
    assert invite["invitedBy"]["id"] == admin.gid
    assert invite["organization"]["id"] == gid("Organization", org.id)

    row = await Invite.get(organization_id=org.id)
    assert gid("Invite", row.id) == invite["id"]
    assert row.token_hash == hash_secret(token)
    assert token not in row.token_hash
    assert timedelta(days=6, hours=23) < row.expires_at - datetime.now(UTC) <= timedelta(days=7)

    entry = await only_audit("invite.create")
    assert_audit(entry, actor=admin, org_id=org.id, request_id="req-invite-1")
    assert entry.resource_type == "Invite" and entry.resource_id == str(row.id)
    assert entry.before is None
    assert entry.after["email"] == "new.person@example.test"
    assert entry.after["role"] == "member"
    assert token not in str(entry.after) and row.token_hash not in str(entry.after)


async def test_only_owners_invite_owners(gql, acme):
    org, owner, admin, _ = acme
    error = await fails(gql, "FORBIDDEN", INVITE, _invite_vars(org, "boss@example.test", "OWNER"),
                        admin.token)
    assert error["extensions"]["requiredRole"] == "owner"
    data = await gql.ok(INVITE, _invite_vars(org, "boss@example.test", "OWNER"), owner.token)
    assert data["inviteMember"]["invite"]["role"] == "OWNER"


async def test_a_plain_member_cannot_invite(gql, acme):
    org, _, _, member = acme
    await fails(gql, "FORBIDDEN", INVITE, _invite_vars(org, "x@example.test"), member.token)


async def test_inviting_an_existing_member_is_a_conflict(gql, acme):
    org, owner, _, member = acme
    error = await fails(gql, "CONFLICT", INVITE, _invite_vars(org, member.user.email.upper()),
                        owner.token)
    assert error["extensions"]["field"] == "email"


async def test_invite_rejects_a_bad_email_and_a_malformed_org_id(gql, acme):
    org, owner, _, _ = acme
    error = await fails(gql, "BAD_USER_INPUT", INVITE, _invite_vars(org, "not-an-email"),
                        owner.token)
    assert error["extensions"]["field"] == "email"
    bad = {"i": {"organizationId": gid("Project", org.id), "email": "a@example.test",
                 "role": "MEMBER"}}
    error = await fails(gql, "BAD_USER_INPUT", INVITE, bad, owner.token)
    assert error["extensions"]["field"] == "organizationId"


async def test_reinviting_an_address_supersedes_the_earlier_token(gql, acme, factory):
    org, owner, _, _ = acme
    invitee = await factory.user("Invitee")
    first = (await gql.ok(INVITE, _invite_vars(org, invitee.user.email), owner.token))
    second = (await gql.ok(INVITE, _invite_vars(org, invitee.user.email, "ADMIN"), owner.token))
    rows = await Invite.filter(organization_id=org.id).order_by("id")
    assert len(rows) == 2
    assert rows[0].revoked_at is not None and rows[1].revoked_at is None

    old_token = first["inviteMember"]["inviteToken"]
    await fails(gql, "NOT_FOUND", ACCEPT, {"i": {"token": old_token}}, invitee.token)
    new_token = second["inviteMember"]["inviteToken"]
    data = await gql.ok(ACCEPT, {"i": {"token": new_token}}, invitee.token)
    assert data["acceptInvite"]["member"]["role"] == "ADMIN"


async def test_anonymous_callers_cannot_invite(gql, acme):
    org, *_ = acme
    await fails(gql, "UNAUTHENTICATED", INVITE, _invite_vars(org, "a@example.test"), None)


# -- acceptInvite -------------------------------------------------------------------------------


async def test_accepting_an_invite_makes_the_invitee_a_member(gql, acme, factory):
    org, owner, _, _ = acme
    invitee = await factory.user("Invitee")
    invite, token = await make_invite(org, owner, invitee.user.email, OrgRole.ADMIN)

    data = await call(gql, ACCEPT, {"i": {"token": token}}, invitee.token, "req-accept-1")
    payload = data["acceptInvite"]
    assert payload["organization"] == {"id": gid("Organization", org.id), "slug": "acme",
                                       "viewerRole": "ADMIN"}
    assert payload["member"]["role"] == "ADMIN"
    assert payload["member"]["user"]["id"] == invitee.gid

    member = await membership(org, invitee)
    assert member.role is OrgRole.ADMIN
    assert payload["member"]["id"] == gid("OrganizationMember", member.id)
    await invite.refresh_from_db()
    assert invite.accepted_at is not None and invite.accepted_by_id == invitee.user.id

    entry = await only_audit("invite.accept")
    assert_audit(entry, actor=invitee, org_id=org.id, request_id="req-accept-1")
    assert entry.before["acceptedAt"] is None
    assert entry.after["acceptedById"] == invitee.user.id
    assert entry.after["member"]["role"] == "admin"

    # The token is single-use.
    await fails(gql, "NOT_FOUND", ACCEPT, {"i": {"token": token}}, invitee.token)


async def test_an_invite_for_another_email_is_forbidden(gql, acme, factory):
    org, owner, _, _ = acme
    stranger = await factory.user("Stranger")
    _, token = await make_invite(org, owner, "someone.else@example.test")
    await fails(gql, "FORBIDDEN", ACCEPT, {"i": {"token": token}}, stranger.token)


async def test_unknown_revoked_and_expired_tokens(gql, acme, factory):
    org, owner, _, _ = acme
    invitee = await factory.user("Invitee")
    await fails(gql, "NOT_FOUND", ACCEPT, {"i": {"token": "no-such-token"}}, invitee.token)
    await fails(gql, "NOT_FOUND", ACCEPT, {"i": {"token": "x" * 5000}}, invitee.token)

    _, revoked = await make_invite(org, owner, invitee.user.email,
                                   revoked_at=datetime.now(UTC))
    await fails(gql, "NOT_FOUND", ACCEPT, {"i": {"token": revoked}}, invitee.token)

    _, expired = await make_invite(org, owner, invitee.user.email,
                                   expires_at=datetime.now(UTC) - timedelta(seconds=1))
    error = await fails(gql, "BAD_USER_INPUT", ACCEPT, {"i": {"token": expired}}, invitee.token)
    assert "expired" in error["message"]
    assert error["extensions"]["field"] == "token"


async def test_an_invite_cannot_be_accepted_with_an_api_key(gql, acme, factory):
    org, owner, _, _ = acme
    other_org = await factory.org(owner, "other")
    _, token = await make_invite(other_org, owner, "x@example.test")
    _, key = await make_key(org, owner, OrgRole.OWNER)
    await fails(gql, "FORBIDDEN", ACCEPT, {"i": {"token": token}}, key)


async def test_an_invite_to_an_org_one_already_belongs_to_is_a_conflict(gql, acme):
    org, owner, _, member = acme
    _, token = await make_invite(org, owner, member.user.email)
    await fails(gql, "CONFLICT", ACCEPT, {"i": {"token": token}}, member.token)


# -- revokeInvite -------------------------------------------------------------------------------


async def test_admin_revokes_a_pending_invite(gql, acme, factory):
    org, owner, admin, _ = acme
    invitee = await factory.user("Invitee")
    invite, token = await make_invite(org, owner, invitee.user.email)
    data = await gql.ok(REVOKE_INVITE, {"i": {"inviteId": gid("Invite", invite.id)}}, admin.token)
    assert data["revokeInvite"]["invite"]["revokedAt"] is not None
    await invite.refresh_from_db()
    assert invite.revoked_at is not None
    entry = await only_audit("invite.revoke")
    assert_audit(entry, actor=admin, org_id=org.id)
    assert entry.before["revokedAt"] is None and entry.after["revokedAt"] is not None

    # Idempotent: a second revoke writes nothing; the token no longer works.
    before = await db_state()
    await gql.ok(REVOKE_INVITE, {"i": {"inviteId": gid("Invite", invite.id)}}, admin.token)
    assert await db_state() == before
    await fails(gql, "NOT_FOUND", ACCEPT, {"i": {"token": token}}, invitee.token)


async def test_revoke_invite_rules(gql, acme, factory):
    org, owner, admin, member = acme
    owner_invite, _ = await make_invite(org, owner, "boss@example.test", OrgRole.OWNER)
    variables = {"i": {"inviteId": gid("Invite", owner_invite.id)}}
    await fails(gql, "FORBIDDEN", REVOKE_INVITE, variables, member.token)
    await fails(gql, "FORBIDDEN", REVOKE_INVITE, variables, admin.token)
    accepted, _ = await make_invite(org, owner, "done@example.test",
                                    accepted_at=datetime.now(UTC))
    await fails(gql, "CONFLICT", REVOKE_INVITE, {"i": {"inviteId": gid("Invite", accepted.id)}},
                owner.token)


# -- admin-only lists on Organization -------------------------------------------------------------


async def test_invites_lists_pending_invites_to_admins_only(gql, acme):
    org, owner, admin, member = acme
    pending, _ = await make_invite(org, owner, "pending@example.test")
    await make_invite(org, owner, "gone@example.test", revoked_at=datetime.now(UTC))
    await make_invite(org, owner, "late@example.test",
                      expires_at=datetime.now(UTC) - timedelta(minutes=1))
    await make_invite(org, owner, "in@example.test", accepted_at=datetime.now(UTC))

    data = await gql.ok(INVITES, {"slug": "acme"}, admin.token)
    assert data["organization"]["invites"] == {
        "totalCount": 1,
        "nodes": [{"id": gid("Invite", pending.id), "email": "pending@example.test",
                   "role": "MEMBER"}],
    }
    error = await gql.error(INVITES, {"slug": "acme"}, member.token)
    assert error["extensions"]["code"] == "FORBIDDEN"


async def test_invite_and_api_key_nodes_are_visible_to_admins_only(gql, acme):
    org, owner, admin, member = acme
    invite, _ = await make_invite(org, owner, "pending@example.test")
    key, _ = await make_key(org, owner, OrgRole.MEMBER)
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
    ids = [gid("Invite", invite.id), gid("ApiKey", key.id)]
    assert (await gql.ok(query, {"ids": ids}, admin.token))["nodes"] == [{"id": i} for i in ids]
    assert (await gql.ok(query, {"ids": ids}, member.token))["nodes"] == [None, None]


# -- outsiders see NOT_FOUND, exactly as for IDs that do not exist --------------------------------

MISSING = 987654

_OUTSIDER_CASES = {
    "inviteMember": (
        INVITE,
        lambda ids: {"i": {"organizationId": ids["org"], "email": "a@example.test",
                           "role": "MEMBER"}},
        "org", "Organization",
    ),
    "revokeInvite": (REVOKE_INVITE, lambda ids: {"i": {"inviteId": ids["invite"]}},
                     "invite", "Invite"),
    "updateMemberRole": (
        """mutation($i: UpdateMemberRoleInput!) { updateMemberRole(input: $i) { member { id } } }""",
        lambda ids: {"i": {"memberId": ids["member"], "role": "ADMIN"}},
        "member", "OrganizationMember",
    ),
    "removeMember": (
        """mutation($i: RemoveMemberInput!) { removeMember(input: $i) { removedMemberId } }""",
        lambda ids: {"i": {"memberId": ids["member"]}},
        "member", "OrganizationMember",
    ),
    "createApiKey": (
        """mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key } }""",
        lambda ids: {"i": {"organizationId": ids["org"], "name": "k", "role": "MEMBER"}},
        "org", "Organization",
    ),
    "revokeApiKey": (
        """mutation($i: RevokeApiKeyInput!) { revokeApiKey(input: $i) { apiKey { id } } }""",
        lambda ids: {"i": {"apiKeyId": ids["key"]}},
        "key", "ApiKey",
    ),
    "updateProject": (
        """mutation($i: UpdateProjectInput!) { updateProject(input: $i) { project { id } } }""",
        lambda ids: {"i": {"projectId": ids["project"], "name": "Hijacked"}},
        "project", "Project",
    ),
    "archiveProject": (
        """mutation($i: ArchiveProjectInput!) { archiveProject(input: $i) { project { id } } }""",
        lambda ids: {"i": {"projectId": ids["project"]}},
        "project", "Project",
    ),
    "addProjectMember": (
        """mutation($i: AddProjectMemberInput!) { addProjectMember(input: $i) { member { id } } }""",
        lambda ids: {"i": {"projectId": ids["project"], "userId": ids["outsider"],
                           "role": "OWNER"}},
        "project", "Project",
    ),
    "updateProjectMemberRole": (
        """mutation($i: UpdateProjectMemberRoleInput!) {
             updateProjectMemberRole(input: $i) { member { id } } }""",
        lambda ids: {"i": {"memberId": ids["project_member"], "role": "VIEWER"}},
        "project_member", "ProjectMember",
    ),
    "removeProjectMember": (
        """mutation($i: RemoveProjectMemberInput!) {
             removeProjectMember(input: $i) { removedMemberId } }""",
        lambda ids: {"i": {"memberId": ids["project_member"]}},
        "project_member", "ProjectMember",
    ),
}


@pytest.mark.parametrize("mutation", sorted(_OUTSIDER_CASES))
async def test_an_outsider_cannot_tell_org_a_objects_from_missing_ones(
    gql, acme, factory, mutation
):
    org, owner, _, member = acme
    project = await factory.project(org, owner)
    await factory.project_member(project, member, ProjectRole.EDITOR)
    invite, _ = await make_invite(org, owner, "pending@example.test")
    key, _ = await make_key(org, owner, OrgRole.ADMIN)
    # The outsider owns another organization: powerful there, nothing in acme.
    outsider = await factory.user("Outsider")
    await factory.org(outsider, "elsewhere")

    real = {
        "org": gid("Organization", org.id),
        "invite": gid("Invite", invite.id),
        "member": gid("OrganizationMember", (await membership(org, member)).id),
        "key": gid("ApiKey", key.id),
        "project": gid("Project", project.id),
        "project_member": gid("ProjectMember", (await project_membership(project, member)).id),
        "outsider": outsider.gid,
    }
    query, make_vars, target, type_name = _OUTSIDER_CASES[mutation]
    missing = real | {target: gid(type_name, MISSING)}

    seen = await fails(gql, "NOT_FOUND", query, make_vars(real), outsider.token)
    absent = await fails(gql, "NOT_FOUND", query, make_vars(missing), outsider.token)
    assert seen["message"] == absent["message"]
    assert seen["extensions"] == absent["extensions"]

