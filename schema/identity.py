"""Identity: users, the viewer, sign-up / log-in, and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from models import ApiKey as ApiKeyModel
from models import User as UserModel
from resolvers.identity import api_keys as api_key_resolvers
from resolvers.identity import users as user_resolvers
from resolvers.ids import decode_id
from resolvers.org import organizations as org_resolvers
from schema.common import Connection, Info, Node, OrgRole, ctx, model_type_check, node_id
from schema.permissions import ANYONE, OrgPermission, in_org, mutation

if TYPE_CHECKING:
    from schema.org import Organization, OrganizationMember

OrganizationRef = Annotated["Organization", strawberry.lazy("schema.org")]
OrganizationMemberRef = Annotated["OrganizationMember", strawberry.lazy("schema.org")]


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
    @mutation(
        requires=ANYONE,
        description='Create an account and return an access token; 10 sign-ups per IP address an hour.',
    )
    async def sign_up(
        self,
        info: Info,
        input: Annotated[SignUpInput, strawberry.argument(description="The account to create.")],
    ) -> AuthPayload:
        user, token, expires = await user_resolvers.sign_up(
            ctx(info), input.email, input.name, input.password
        )
        return AuthPayload(user=user, access_token=token, expires_at=expires)

    @mutation(
        requires=ANYONE,
        description='Exchange email and password for a short-lived access token.',
    )
    async def log_in(
        self,
        info: Info,
        input: Annotated[LogInInput, strawberry.argument(description="The credentials.")],
    ) -> AuthPayload:
        user, token, expires = await user_resolvers.log_in(ctx(info), input.email, input.password)
        return AuthPayload(user=user, access_token=token, expires_at=expires)


@strawberry.type(
    description="An organization API key. It acts as its creator, capped at `role`; "
    "the secret itself is shown only once, at creation."
)
class ApiKey(Node):
    is_type_of = model_type_check(ApiKeyModel)
    name: str = strawberry.field(description="What the key is for, as given at creation.")
    prefix: str = strawberry.field(description="The key's first characters, to recognise it.")
    role: OrgRole = strawberry.field(
        description="The most the key may do; it never exceeds its creator's current role."
    )
    created_at: datetime = strawberry.field(description="When the key was created.")
    last_used_at: datetime | None = strawberry.field(
        description="When the key last authenticated a request or a websocket connection; "
        "recorded at most once a minute, so up to a minute behind. Null if it never has."
    )
    expires_at: datetime | None = strawberry.field(
        description="When the key stops working; null for never."
    )
    revoked_at: datetime | None = strawberry.field(description="When it was revoked, if it was.")

    id: strawberry.ID = node_id("ApiKey")

    @strawberry.field(description="The user the key acts as.")
    async def created_by(self, info: Info) -> User:
        return await ctx(info).loaders.user.load(self.created_by_id)

    @strawberry.field(description="The organization the key belongs to and is limited to.")
    async def organization(self, info: Info) -> OrganizationRef:
        return await ctx(info).loaders.organization.load(self.organization_id)


@strawberry.type(description="A page of API keys, oldest first.")
class ApiKeyConnection(Connection[ApiKey]):
    pass


@strawberry.input(description="A new API key.")
class CreateApiKeyInput:
    organization_id: strawberry.ID = strawberry.field(description="The organization it works in.")
    name: str = strawberry.field(description="What the key is for, 1 to 200 characters.")
    role: OrgRole = strawberry.field(description="The most it may do; at most the creator's role.")
    expires_at: datetime | None = strawberry.field(
        default=None, description="When it stops working, in the future; never if omitted."
    )


@strawberry.type(description="The result of createApiKey.")
class CreateApiKeyPayload:
    api_key: ApiKey | None = strawberry.field(description="The new key, without its secret.")
    key: str = strawberry.field(
        description="The secret, shown only once: send it as `Authorization: Bearer <key>`."
    )


@strawberry.input(description="The API key to revoke.")
class RevokeApiKeyInput:
    api_key_id: strawberry.ID = strawberry.field(description="An ApiKey ID.")


@strawberry.type(description="The result of revokeApiKey.")
class ApiKeyPayload:
    api_key: ApiKey | None = strawberry.field(description="The key, now revoked.")


@strawberry.type(description="API key mutations.")
class ApiKeyMutations:
    @mutation(
        requires=in_org(OrgPermission.MANAGE_API_KEYS, also="the key's role cannot exceed the creator's", api_keys=False),
        description='Create an API key; its secret is returned only here.',
    )
    async def create_api_key(
        self,
        info: Info,
        input: Annotated[CreateApiKeyInput, strawberry.argument(description="The key to create.")],
    ) -> CreateApiKeyPayload:
        api_key, key = await api_key_resolvers.create_api_key(
            ctx(info),
            decode_id(input.organization_id, "Organization", "organizationId"),
            input.name,
            input.role,
            input.expires_at,
        )
        return CreateApiKeyPayload(api_key=api_key, key=key)

    @mutation(
        requires=in_org(OrgPermission.MANAGE_API_KEYS),
        description='Revoke an API key; it stops working at once.',
    )
    async def revoke_api_key(
        self,
        info: Info,
        input: Annotated[RevokeApiKeyInput, strawberry.argument(description="The key to revoke.")],
    ) -> ApiKeyPayload:
        api_key = await api_key_resolvers.revoke_api_key(
            ctx(info), decode_id(input.api_key_id, "ApiKey", "apiKeyId")
        )
        return ApiKeyPayload(api_key=api_key)
