"""An API key acts inside its own organization only, at most at its own role: what would act
outside it answers FORBIDDEN (as minting keys and accepting invites with a key already do),
and every role the key is shown is the role it acts with."""

from __future__ import annotations

import logging

import pytest

from models import Organization, OrganizationMember, OrgRole
from tests.membership_helpers import fails, make_invite, make_key

CREATE_ORG = """
mutation($i: CreateOrganizationInput!) {
  createOrganization(input: $i) { organization { id slug viewerRole } }
}"""
CREATE_ORG_BARE = """
mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { organization { id } } }"""
ACCEPT = """
mutation($i: AcceptInviteInput!) { acceptInvite(input: $i) { organization { id } } }"""
VIEWER_ORGS = """
query { viewer { organizations { role organization { slug viewerRole } } } }"""


@pytest.fixture
def unexpected():
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    logger = logging.getLogger("pcg.errors")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


async def test_a_key_cannot_act_outside_its_organization(gql, acme, factory, unexpected):
    org, owner, _, _ = acme
    _, key = await make_key(org, owner, OrgRole.OWNER)
    for document in (CREATE_ORG, CREATE_ORG_BARE):
        error = await fails(gql, "FORBIDDEN", document,
                            {"i": {"slug": "keys-own-this", "name": "Shadow"}}, key)
        assert "API key" in error["message"]
    assert not await Organization.exists(slug="keys-own-this")
    # Joining another organization needs the person too.
    other = await factory.org(await factory.user("Else"), "other")
    _, token = await make_invite(other, owner, owner.user.email)
    await fails(gql, "FORBIDDEN", ACCEPT, {"i": {"token": token}}, key)
    # The person themself may do both.
    await gql.ok(CREATE_ORG, {"i": {"slug": "mine", "name": "Mine"}}, owner.token)
    await gql.ok(ACCEPT, {"i": {"token": token}}, owner.token)
    assert unexpected == []


# (the creator's role, the key's role, the role the key acts with)
CAPS = [
    (OrgRole.OWNER, OrgRole.MEMBER, "MEMBER"),
    (OrgRole.OWNER, OrgRole.ADMIN, "ADMIN"),
    (OrgRole.ADMIN, OrgRole.OWNER, "ADMIN"),  # a key never exceeds its creator either
    (OrgRole.MEMBER, OrgRole.ADMIN, "MEMBER"),
]


async def test_viewer_organizations_shows_the_keys_own_organization_at_its_capped_role(
    gql, factory
):
    for n, (member_role, key_role, shown) in enumerate(CAPS):
        person = await factory.user("Person")
        org = await factory.org(await factory.user("Founder"), f"keyed-{n}")
        await factory.org_member(org, person, member_role)
        await factory.org(person, f"elsewhere-{n}")  # the person owns another organization
        _, key = await make_key(org, person, key_role)

        data = await gql.ok(VIEWER_ORGS, token=key)
        assert data["viewer"]["organizations"] == [
            {"role": shown, "organization": {"slug": f"keyed-{n}", "viewerRole": shown}}
        ], (member_role, key_role)
        # The stored membership is untouched, and the person still sees both at full rights.
        stored = await OrganizationMember.get(organization=org, user=person.user)
        assert stored.role is member_role
        data = await gql.ok(VIEWER_ORGS, token=person.token)
        assert {(o["organization"]["slug"], o["role"])
                for o in data["viewer"]["organizations"]} == {
            (f"keyed-{n}", member_role.name), (f"elsewhere-{n}", "OWNER")
        }
