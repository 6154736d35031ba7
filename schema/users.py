"""Users, the viewer, and sign-up / log-in."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from models import User as UserModel
from resolvers.identity import users as user_resolvers
from resolvers.org import organizations as org_resolvers
from schema.common import Node, ctx, model_type_check, node_id

if TYPE_CHECKING:
    from schema.orgs import OrganizationMember

OrganizationMemberRef = Annotated["OrganizationMember", strawberry.lazy("schema.orgs")]


@strawberry.type(description="A person with an account.")
class User(Node):
    is_type_of = model_type_check(UserModel)
    name: str = strawberry.field(description="Display name.")
    email: str = strawberry.field(description="Login email, lowercased.")
    created_at: datetime = strawberry.field(description="When the account was created.")

    id: strawberry.ID = node_id("User")


@strawberry.type(description="The authenticated caller.")
class Viewer:
    user: User = strawberry.field(
        description="The user the caller acts as (an API key acts as its creator)."
    )

    @strawberry.field(
        description="The viewer's organizations, with the role the viewer acts with in each. "
        "An API key sees its own organization only, at most at the key's role."
    )
    async def organizations(self, info: Info) -> list[OrganizationMemberRef]:
        return await org_resolvers.viewer_memberships(ctx(info))


@strawberry.input(description="A new account.")
class SignUpInput:
    email: str = strawberry.field(
        description="At most 254 characters; stored lowercased; CONFLICT if already taken."
    )
    name: str = strawberry.field(description="Display name, 1 to 200 characters.")
    password: str = strawberry.field(description="8 to 1,024 characters.")


@strawberry.input(description="Credentials of an existing account.")
class LogInInput:
    email: str = strawberry.field(description="The account's email (case-insensitive).")
    password: str = strawberry.field(
        description="After 5 failures for one email in 15 minutes: RATE_LIMITED with retryAfter."
    )


@strawberry.type(description="An access token and the user it belongs to.")
class AuthPayload:
    user: User | None = strawberry.field(description="The user the token authenticates.")
    access_token: str = strawberry.field(description="Send as `Authorization: Bearer <token>`.")
    expires_at: datetime = strawberry.field(
        description="When the token stops working (PCG_ACCESS_TOKEN_TTL, 1 hour by default); "
        "log in again then."
    )


@strawberry.type(description="Account mutations.")
class UserMutations:
    @strawberry.mutation(description="Create an account and return an access token. No credential needed; 10 sign-ups per IP address an hour.")
    async def sign_up(
        self,
        info: Info,
        input: Annotated[SignUpInput, strawberry.argument(description="The account to create.")],
    ) -> AuthPayload:
        user, token, expires = await user_resolvers.sign_up(
            ctx(info), input.email, input.name, input.password
        )
        return AuthPayload(user=user, access_token=token, expires_at=expires)

    @strawberry.mutation(description="Exchange email and password for a short-lived access token.")
    async def log_in(
        self,
        info: Info,
        input: Annotated[LogInInput, strawberry.argument(description="The credentials.")],
    ) -> AuthPayload:
        user, token, expires = await user_resolvers.log_in(ctx(info), input.email, input.password)
        return AuthPayload(user=user, access_token=token, expires_at=expires)
