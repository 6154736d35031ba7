"""Users, the viewer, and sign-up / log-in."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from models import User as UserModel
from resolvers import orgs as org_resolvers
from resolvers import users as user_resolvers
from schema.common import Node, ctx, model_type_check, node_id

if TYPE_CHECKING:
    from schema.orgs import OrganizationMember

OrganizationMemberRef = Annotated["OrganizationMember", strawberry.lazy("schema.orgs")]


@strawberry.type(description="A person with an account.")
class User(Node):
    is_type_of = model_type_check(UserModel)
    name: str
    email: str
    created_at: datetime

    id: strawberry.ID = node_id("User")


@strawberry.type(description="The authenticated caller.")
class Viewer:
    user: User

    @strawberry.field(
        description="The viewer's organizations, with the role the viewer acts with in each. "
        "An API key sees its own organization only, at most at the key's role."
    )
    async def organizations(self, info: Info) -> list[OrganizationMemberRef]:
        return await org_resolvers.viewer_memberships(ctx(info))


@strawberry.input
class SignUpInput:
    email: str
    name: str
    password: str


@strawberry.input
class LogInInput:
    email: str
    password: str


@strawberry.type
class AuthPayload:
    user: User | None
    access_token: str = strawberry.field(description="Send as `Authorization: Bearer <token>`.")
    expires_at: datetime


@strawberry.type
class UserMutations:
    @strawberry.mutation(description="Create an account and return an access token.")
    async def sign_up(self, info: Info, input: SignUpInput) -> AuthPayload:
        user, token, expires = await user_resolvers.sign_up(
            ctx(info), input.email, input.name, input.password
        )
        return AuthPayload(user=user, access_token=token, expires_at=expires)

    @strawberry.mutation(description="Exchange email and password for a short-lived access token.")
    async def log_in(self, info: Info, input: LogInInput) -> AuthPayload:
        user, token, expires = await user_resolvers.log_in(ctx(info), input.email, input.password)
        return AuthPayload(user=user, access_token=token, expires_at=expires)
