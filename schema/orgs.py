"""Organizations and their members."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from models import ApiKey as ApiKeyModel
from models import Invite as InviteModel
from models import Organization as OrganizationModel
from models import OrganizationMember as OrganizationMemberModel
from resolvers import api_keys as api_key_resolvers
from resolvers import invites as invite_resolvers
from resolvers import members as member_resolvers
from resolvers import orgs as org_resolvers
from resolvers import projects as project_resolvers
from resolvers.ids import decode_id, to_global_id
from schema.common import (
    Connection,
    Node,
    OrgRole,
    Plan,
    ctx,
    model_type_check,
    node_id,
)

if TYPE_CHECKING:
    from schema.projects import ProjectConnection
    from schema.users import User

UserRef = Annotated["User", strawberry.lazy("schema.users")]
ProjectConnectionRef = Annotated["ProjectConnection", strawberry.lazy("schema.projects")]


@strawberry.type(description="A user's membership of an organization.")
class OrganizationMember(Node):
    is_type_of = model_type_check(OrganizationMemberModel)
    role: OrgRole
    created_at: datetime

    id: strawberry.ID = node_id("OrganizationMember")

    @strawberry.field
    async def user(self, info: Info) -> UserRef:
        return await ctx(info).loaders.user.load(self.user_id)

    @strawberry.field
    async def organization(self, info: Info) -> Organization:
        return await ctx(info).loaders.organization.load(self.organization_id)


@strawberry.type
class OrganizationMemberConnection(Connection[OrganizationMember]):
    pass


@strawberry.type(description="A pending or past invitation to join an organization.")
class Invite(Node):
    is_type_of = model_type_check(InviteModel)
    email: str
    role: OrgRole
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None

    id: strawberry.ID = node_id("Invite")

    @strawberry.field
    async def invited_by(self, info: Info) -> UserRef:
        return await ctx(info).loaders.user.load(self.invited_by_id)

    @strawberry.field
    async def organization(self, info: Info) -> Organization:
        return await ctx(info).loaders.organization.load(self.organization_id)


@strawberry.type
class InviteConnection(Connection[Invite]):
    pass


@strawberry.type(
    description="An organization API key. It acts as its creator, capped at `role`; "
    "the secret itself is shown only once, at creation."
)
class ApiKey(Node):
    is_type_of = model_type_check(ApiKeyModel)
    name: str
    prefix: str = strawberry.field(description="The key's first characters, to recognise it.")
    role: OrgRole
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None

    id: strawberry.ID = node_id("ApiKey")

    @strawberry.field
    async def created_by(self, info: Info) -> UserRef:
        return await ctx(info).loaders.user.load(self.created_by_id)

    @strawberry.field
    async def organization(self, info: Info) -> Organization:
        return await ctx(info).loaders.organization.load(self.organization_id)


@strawberry.type
class ApiKeyConnection(Connection[ApiKey]):
    pass


@strawberry.type(description="A tenant: its members, projects and API keys.")
class Organization(Node):
    is_type_of = model_type_check(OrganizationModel)
    slug: str
    name: str
    plan: Plan
    created_at: datetime

    id: strawberry.ID = node_id("Organization")

    @strawberry.field(description="The viewer's role in this organization.")
    def viewer_role(self, info: Info) -> OrgRole:
        return ctx(info).viewer.org_role(self.id)

    @strawberry.field(description="Projects of this organization that the viewer may see.")
    async def projects(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        include_archived: bool = False,
        search: str | None = None,
    ) -> ProjectConnectionRef:
        from schema.projects import ProjectConnection

        page = await project_resolvers.projects(
            ctx(info),
            organization=self,
            include_archived=include_archived,
            search=search,
            first=first,
            after=after,
            last=last,
            before=before,
        )
        return ProjectConnection.of(page)

    @strawberry.field
    async def members(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> OrganizationMemberConnection:
        page = await org_resolvers.members(ctx(info), self, first, after, last, before)
        return OrganizationMemberConnection.of(page)

    @strawberry.field(description="Invites not yet accepted, revoked or expired. Admins only.")
    async def invites(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> InviteConnection:
        page = await invite_resolvers.pending_invites(ctx(info), self, first, after, last, before)
        return InviteConnection.of(page)

    @strawberry.field(description="API keys of this organization. Admins only.")
    async def api_keys(
        self,
        info: Info,
        include_revoked: bool = False,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> ApiKeyConnection:
        page = await api_key_resolvers.api_keys(
            ctx(info), self, include_revoked, first, after, last, before
        )
        return ApiKeyConnection.of(page)


@strawberry.input
class CreateOrganizationInput:
    slug: str
    name: str


@strawberry.type
class OrganizationPayload:
    organization: Organization | None


@strawberry.input
class InviteMemberInput:
    organization_id: strawberry.ID
    email: str
    role: OrgRole = OrgRole.MEMBER


@strawberry.type
class InviteMemberPayload:
    invite: Invite | None
    invite_token: str = strawberry.field(
        description="Send this to the invitee; it is shown only once and expires in 7 days."
    )


@strawberry.input
class AcceptInviteInput:
    token: str


@strawberry.type
class AcceptInvitePayload:
    organization: Organization | None
    member: OrganizationMember | None


@strawberry.input
class RevokeInviteInput:
    invite_id: strawberry.ID


@strawberry.type
class InvitePayload:
    invite: Invite | None


@strawberry.input
class UpdateMemberRoleInput:
    member_id: strawberry.ID = strawberry.field(description="An OrganizationMember ID.")
    role: OrgRole


@strawberry.type
class OrganizationMemberPayload:
    member: OrganizationMember | None


@strawberry.input
class RemoveMemberInput:
    member_id: strawberry.ID = strawberry.field(description="An OrganizationMember ID.")


@strawberry.type
class RemoveMemberPayload:
    removed_member_id: strawberry.ID


@strawberry.input
class CreateApiKeyInput:
    organization_id: strawberry.ID
    name: str
    role: OrgRole
    expires_at: datetime | None = None


@strawberry.type
class CreateApiKeyPayload:
    api_key: ApiKey | None
    key: str = strawberry.field(
        description="The secret, shown only once: send it as `Authorization: Bearer <key>`."
    )


@strawberry.input
class RevokeApiKeyInput:
    api_key_id: strawberry.ID


@strawberry.type
class ApiKeyPayload:
    api_key: ApiKey | None


@strawberry.type
class OrgMutations:
    @strawberry.mutation(description="Create an organization; the caller becomes its owner.")
    async def create_organization(
        self, info: Info, input: CreateOrganizationInput
    ) -> OrganizationPayload:
        org = await org_resolvers.create_organization(ctx(info), input.slug, input.name)
        return OrganizationPayload(organization=org)

    @strawberry.mutation(
        description="Invite someone by email. Admins and owners; only owners invite owners."
    )
    async def invite_member(self, info: Info, input: InviteMemberInput) -> InviteMemberPayload:
        invite, token = await invite_resolvers.invite_member(
            ctx(info),
            decode_id(input.organization_id, "Organization", "organizationId"),
            input.email,
            input.role,
        )
        return InviteMemberPayload(invite=invite, invite_token=token)

    @strawberry.mutation(
        description="Join an organization with an invite sent to the caller's email."
    )
    async def accept_invite(self, info: Info, input: AcceptInviteInput) -> AcceptInvitePayload:
        org, member = await invite_resolvers.accept_invite(ctx(info), input.token)
        return AcceptInvitePayload(organization=org, member=member)

    @strawberry.mutation(description="Withdraw a pending invite. Admins and owners.")
    async def revoke_invite(self, info: Info, input: RevokeInviteInput) -> InvitePayload:
        invite = await invite_resolvers.revoke_invite(
            ctx(info), decode_id(input.invite_id, "Invite", "inviteId")
        )
        return InvitePayload(invite=invite)

    @strawberry.mutation(
        description="Change a member's organization role. Only owners touch owners."
    )
    async def update_member_role(
        self, info: Info, input: UpdateMemberRoleInput
    ) -> OrganizationMemberPayload:
        member = await member_resolvers.update_member_role(
            ctx(info), decode_id(input.member_id, "OrganizationMember", "memberId"), input.role
        )
        return OrganizationMemberPayload(member=member)

    @strawberry.mutation(
        description="Remove a member (or leave, with your own membership) and their project "
        "memberships in this organization."
    )
    async def remove_member(self, info: Info, input: RemoveMemberInput) -> RemoveMemberPayload:
        member_id = await member_resolvers.remove_member(
            ctx(info), decode_id(input.member_id, "OrganizationMember", "memberId")
        )
        return RemoveMemberPayload(
            removed_member_id=strawberry.ID(to_global_id("OrganizationMember", member_id))
        )

    @strawberry.mutation(description="Create an API key; its secret is returned only here.")
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> CreateApiKeyPayload:
        api_key, key = await api_key_resolvers.create_api_key(
            ctx(info),
            decode_id(input.organization_id, "Organization", "organizationId"),
            input.name,
            input.role,
            input.expires_at,
        )
        return CreateApiKeyPayload(api_key=api_key, key=key)

    @strawberry.mutation(description="Revoke an API key; it stops working at once.")
    async def revoke_api_key(self, info: Info, input: RevokeApiKeyInput) -> ApiKeyPayload:
        api_key = await api_key_resolvers.revoke_api_key(
            ctx(info), decode_id(input.api_key_id, "ApiKey", "apiKeyId")
        )
        return ApiKeyPayload(api_key=api_key)
