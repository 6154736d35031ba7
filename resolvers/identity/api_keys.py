"""Organization API keys: created and revoked by org admins; the secret is shown once."""

from __future__ import annotations

from collections.abc import Hashable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tortoise.queryset import QuerySet

from models import ApiKey, ApiKeyScope, AuditAction, Organization, OrgRole
from models.snapshot import dump
from resolvers import validation
from resolvers.access import OrgPermission
from resolvers.errors import BadInput, Forbidden, NotFound
from resolvers.identity.auth import new_api_key
from resolvers.loaders import CountedPage, PageSpec
from resolvers.pagination import Order
from resolvers.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from resolvers.context import Context

NAME_MAX = 100


async def _keys_of_admin_orgs(ctx: Context, include_revoked: Hashable) -> QuerySet[ApiKey]:
    assert isinstance(include_revoked, bool)  # the variant api_keys() passed to the loader
    qs = await ctx.access.org_scoped(ApiKey, min_role=OrgRole.ADMIN)
    return qs if include_revoked else qs.filter(revoked_at__isnull=True)


# First pages of the key lists of every organization in a response share one statement.
ORG_API_KEYS = PageSpec(
    group=("organization_id",), source=_keys_of_admin_orgs, order=Order((("created_at", False),))
)


async def api_keys(
    ctx: Context,
    org: Organization,
    include_revoked: bool,
    first: int | None,
    after: str | None,
    last: int | None = None,
    before: str | None = None,
) -> CountedPage[ApiKey]:
    await ctx.access.require_org(OrgPermission.MANAGE_API_KEYS, org.id)
    return await ctx.loaders.page(
        ctx, ORG_API_KEYS, (org.id,), variant=include_revoked,
        first=first, after=after, last=last, before=before,
    )


def _expiry(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if value <= datetime.now(UTC):
        raise BadInput("`expiresAt` must be in the future", field="expiresAt")
    return value


async def create_api_key(
    ctx: Context, organization_id: int, name: str, role: OrgRole, expires_at: datetime | None,
    scope: ApiKeyScope = ApiKeyScope.WRITE,
) -> tuple[ApiKey, str]:
    creator_role = await ctx.access.require_org(OrgPermission.MANAGE_API_KEYS, organization_id)
    if ctx.access.api_key is not None:
        # Otherwise a leaked key could mint successors and outlive its own revocation.
        raise Forbidden("API keys cannot create API keys; use a user session")
    name = validation.text(name, "name", max_len=NAME_MAX)
    expires_at = _expiry(expires_at)
    if role.rank > creator_role.rank:
        raise Forbidden(
            f"A key's role cannot exceed your own ({creator_role.value})",
            requiredRole=role.value,
        )
    plaintext, prefix, key_hash = new_api_key()
    async with unit_of_work(ctx) as work:
        key = await ApiKey.create(
            organization_id=organization_id,
            created_by_id=ctx.access.user_id,
            name=name,
            prefix=prefix,
            key_hash=key_hash,
            role=role,
            scope=scope,
            expires_at=expires_at,
        )
        await work.audit(
            AuditAction.API_KEY_CREATE, key.id, organization_id=organization_id,
            after=dump(key),
        )
    return key, plaintext


async def revoke_api_key(ctx: Context, api_key_id: int) -> ApiKey:
    # Looked up among the viewer's orgs at any role, so a plain member gets FORBIDDEN
    # (the org is visible to them, the action is not) rather than NOT_FOUND.
    key = await (await ctx.access.org_scoped(ApiKey)).get_or_none(id=api_key_id)
    if key is None:
        raise NotFound("ApiKey")
    await ctx.access.require_org(OrgPermission.MANAGE_API_KEYS, key.organization_id)
    if key.revoked_at is not None:
        return key  # idempotent: revoking twice writes nothing
    before = dump(key)
    async with unit_of_work(ctx) as work:
        key.revoked_at = datetime.now(UTC)
        await key.save(update_fields=["revoked_at"])
        await work.audit(
            AuditAction.API_KEY_REVOKE, key.id, organization_id=key.organization_id,
            before=before, after=dump(key),
        )
        work.access_changed_for(key.created_by_id)
    return key
