"""Organizations and their members."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from models import Organization as OrganizationModel
from models import OrganizationMember as OrganizationMemberModel
from resolvers import orgs as org_resolvers
from resolvers import projects as project_resolvers
from resolvers.ids import to_global_id
from schema.common import Connection, Node, OrgRole, Plan, ctx, model_type_check

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

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("OrganizationMember", self.id))

    @strawberry.field
    async def user(self, info: Info) -> UserRef:
        return await ctx(info).loaders.user.load(self.user_id)

    @strawberry.field
    async def organization(self, info: Info) -> Organization:
        return await ctx(info).loaders.organization.load(self.organization_id)


@strawberry.type
class OrganizationMemberConnection(Connection[OrganizationMember]):
    pass


@strawberry.type(description="A tenant: its members, projects and API keys.")
class Organization(Node):
    is_type_of = model_type_check(OrganizationModel)
    slug: str
    name: str
    plan: Plan
    created_at: datetime

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Organization", self.id))

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


@strawberry.input
class CreateOrganizationInput:
    slug: str
    name: str


@strawberry.type
class OrganizationPayload:
    organization: Organization


@strawberry.type
class OrgMutations:
    @strawberry.mutation(description="Create an organization; the caller becomes its owner.")
    async def create_organization(
        self, info: Info, input: CreateOrganizationInput
    ) -> OrganizationPayload:
        org = await org_resolvers.create_organization(ctx(info), input.slug, input.name)
        return OrganizationPayload(organization=org)
