"""Identity: users, the viewer, sign-up / log-in, and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from models import ApiKey as ApiKeyModel
from models import User as UserModel
from resolvers.identity import api_keys as api_key_resolvers
from resolvers.identity import password_reset as reset_resolvers
from resolvers.identity import users as user_resolvers
from resolvers.identity import verification as verification_resolvers
from resolvers.ids import decode_id
from resolvers.org import organizations as org_resolvers
from schema.common import Connection, Info, Node, OrgRole, ctx, model_type_check, node_id
from schema.permissions import ANYONE, SIGNED_IN, OrgPermission, in_org, mutation

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
        description="Whether the viewer's email address is verified (a link from "
        "`signUp` or `resendVerificationEmail` was used, or the password was reset by email). "
        "Until it is, `acceptInvite` and creating a second organization fail with "
        "EMAIL_NOT_VERIFIED."
    )
    def email_verified(self) -> bool:
        return self.user.email_verified_at is not None

    @strawberry.field(
        description="The viewer's organizations, with the role the viewer acts with in each. "
        "An API key sees its own organization only, at most at the key's role."
    )
    async def organizations(self, info: Info) -> list[OrganizationMemberRef]:
        return await org_resolvers.viewer_memberships(ctx(info))


@strawberry.input(description="A new account.")
class SignUpInput:
    email: str = strawberry.field(
        description="At most 254 characters; stored lowercased. Whether or not it already has "
        "an account, the answer is the same (that account is sent a notice instead)."
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


@strawberry.type(
    description="The result of signUp: the same whether or not the email already had an account."
)
class SignUpPayload:
    ok: bool = strawberry.field(description="Always true: the request was taken.")
    message: str = strawberry.field(description="What happens next, to show to the person.")


SIGN_UP_MESSAGE = (
    "Check your inbox: we sent a link to verify your email address. You can log in now with "
    "logIn; if this address already had an account, it was sent a notice instead and its "
    "password is unchanged."
)


@strawberry.type(description="Account mutations.")
class UserMutations:
    @mutation(
        requires=ANYONE,
        description="Create an account and email it a verification link; no token is returned "
        "(log in with logIn). When the email already has an account, that account is emailed "
        "a notice instead and the answer is the same. 10 sign-ups per IP address an hour.",
    )
    async def sign_up(
        self,
        info: Info,
        input: Annotated[SignUpInput, strawberry.argument(description="The account to create.")],
    ) -> SignUpPayload:
        await user_resolvers.sign_up(ctx(info), input.email, input.name, input.password)
        return SignUpPayload(ok=True, message=SIGN_UP_MESSAGE)

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


# -- email flows: verification and password reset -------------------------------------------


@strawberry.input(description="A verification link's token.")
class VerifyEmailInput:
    token: str = strawberry.field(
        description="The `token` from the link's fragment (`.../verify-email#token=...`)."
    )


@strawberry.type(description="The result of verifyEmail.")
class VerifyEmailPayload:
    ok: bool = strawberry.field(description="True: the address is verified.")
    email: str = strawberry.field(description="The address that was verified.")


@strawberry.type(description="The result of resendVerificationEmail.")
class ResendVerificationEmailPayload:
    sent: bool = strawberry.field(
        description="True: a new link was sent (earlier ones stop working); false: the address "
        "is verified already and nothing was sent."
    )
    message: str = strawberry.field(description="What happened, to show to the person.")


@strawberry.input(description="The account whose password to reset.")
class RequestPasswordResetInput:
    email: str = strawberry.field(description="The account's email address.")


@strawberry.type(
    description="The result of requestPasswordReset: the same whether or not the address has an account."
)
class RequestPasswordResetPayload:
    ok: bool = strawberry.field(description="Always true: the request was taken.")
    message: str = strawberry.field(description="What happens next, to show to the person.")


@strawberry.input(description="A reset link's token and the new password.")
class ResetPasswordInput:
    token: str = strawberry.field(
        description="The `token` from the link's fragment (`.../reset-password#token=...`)."
    )
    new_password: str = strawberry.field(description="8 to 1,024 characters.")


@strawberry.type(description="The result of resetPassword.")
class ResetPasswordPayload:
    ok: bool = strawberry.field(description="True: the password was changed; log in with it.")
    email: str = strawberry.field(description="The account's email address, to log in with.")


RESET_REQUEST_MESSAGE = (
    "If an account uses this address, we sent it a link to choose a new password. The link "
    "expires in 30 minutes."
)


@strawberry.type(description="Email verification and password reset.")
class AccountEmailMutations:
    @mutation(
        requires=ANYONE.with_(also="with the token of a verification link"),
        description="Verify an email address with the token of the link sent by signUp or "
        "resendVerificationEmail. Each link works once and for 48 hours (BAD_USER_INPUT, "
        "`reason` TOKEN_INVALID or TOKEN_EXPIRED, otherwise).",
    )
    async def verify_email(
        self,
        info: Info,
        input: Annotated[VerifyEmailInput, strawberry.argument(description="The link's token.")],
    ) -> VerifyEmailPayload:
        user = await verification_resolvers.verify_email(ctx(info), input.token)
        return VerifyEmailPayload(ok=True, email=user.email)

    @mutation(
        requires=SIGNED_IN.with_(api_keys=False),
        description="Email the viewer a new verification link (earlier ones stop working); "
        "3 an hour per account (PCG_RATE_LIMIT_VERIFY_RESEND).",
    )
    async def resend_verification_email(self, info: Info) -> ResendVerificationEmailPayload:
        sent = await verification_resolvers.resend(ctx(info))
        if sent:
            return ResendVerificationEmailPayload(
                sent=True, message="Check your inbox: we sent a new verification link."
            )
        return ResendVerificationEmailPayload(sent=False, message="Your email address is already verified.")

    @mutation(
        requires=ANYONE,
        description="Email a password-reset link (single use, 30 minutes) to the account of "
        "this address. The answer is the same whether or not an account uses it. 3 an hour "
        "per address and 20 per IP address (RATE_LIMITED).",
    )
    async def request_password_reset(
        self,
        info: Info,
        input: Annotated[RequestPasswordResetInput, strawberry.argument(description="The address.")],
    ) -> RequestPasswordResetPayload:
        await reset_resolvers.request_reset(ctx(info), input.email)
        return RequestPasswordResetPayload(ok=True, message=RESET_REQUEST_MESSAGE)

    @mutation(
        requires=ANYONE.with_(also="with the token of a password-reset link"),
        description="Set a new password with the token of a reset link. Ends every session "
        "of the account, verifies its email address and emails it that the password changed. "
        "BAD_USER_INPUT (`reason` TOKEN_INVALID or TOKEN_EXPIRED) for a used, unknown or "
        "expired link.",
    )
    async def reset_password(
        self,
        info: Info,
        input: Annotated[ResetPasswordInput, strawberry.argument(description="The token and the new password.")],
    ) -> ResetPasswordPayload:
        user = await reset_resolvers.reset_password(ctx(info), input.token, input.new_password)
        return ResetPasswordPayload(ok=True, email=user.email)
