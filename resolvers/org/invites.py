"""Invitations to an organization: issued by admins, redeemed once by the invited email."""

from __future__ import annotations

import secrets
from collections.abc import Hashable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet

from models import AuditAction, Invite, Organization, OrganizationMember, OrgRole, User, orm
from models.snapshot import dump
from resolvers import validation
from resolvers.access import OrgPermission, invitable_roles
from resolvers.email import templates
from resolvers.errors import BadInput, Conflict, Forbidden, NotFound
from resolvers.identity import verification
from resolvers.identity.auth import hash_secret
from resolvers.loaders import CountedPage, PageSpec
from resolvers.org import plans
from resolvers.pagination import Order
from resolvers.unit_of_work import UnitOfWork, unit_of_work

if TYPE_CHECKING:
    from resolvers.context import Context

INVITE_TTL = timedelta(days=7)
TOKEN_MAX = 200


def pending(qs: QuerySet[Invite], now: datetime) -> QuerySet[Invite]:
    return qs.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now)


async def _pending_in_admin_orgs(ctx: Context, variant: Hashable) -> QuerySet[Invite]:
    return pending(await ctx.access.org_scoped(Invite, min_role=OrgRole.ADMIN), datetime.now(UTC))


# First pages of the invite lists of every organization in a response share one statement.
ORG_INVITES = PageSpec(
    group=("organization_id",), source=_pending_in_admin_orgs, order=Order((("created_at", False),))
)


async def pending_invites(
    ctx: Context,
    org: Organization,
    first: int | None,
    after: str | None,
    last: int | None = None,
    before: str | None = None,
) -> CountedPage[Invite]:
    await ctx.access.require_org(OrgPermission.MANAGE_MEMBERS, org.id)
    return await ctx.loaders.page(
        ctx, ORG_INVITES, (org.id,), first=first, after=after, last=last, before=before
    )


def _require_invitable(actor_role: OrgRole | None, role: OrgRole) -> None:
    if role in invitable_roles(actor_role):
        return
    if role is OrgRole.OWNER:
        raise Forbidden("Only owners can invite owners", requiredRole=OrgRole.OWNER.value)
    needed = OrgPermission.MANAGE_MEMBERS.role
    raise Forbidden("Your organization role does not allow inviting", requiredRole=needed.value)


async def _inviter_role(ctx: Context, organization_id: int) -> OrgRole | None:
    """The caller's role, read under a lock on its membership row. A demotion or removal
    writes that row before it revokes the sender's invites, so it either waits for this
    invite to commit (and revokes it) or commits first (and this check sees the new role)."""
    row = await (
        OrganizationMember.filter(organization_id=organization_id, user_id=ctx.access.user_id)
        .select_for_update()
        .first()
    )
    return ctx.access.capped(row.role) if row is not None else None


async def invite_member(ctx: Context, organization_id: int, email: str, role: OrgRole) -> tuple[Invite, str]:
    actor_role = await ctx.access.require_org(OrgPermission.MANAGE_MEMBERS, organization_id)
    email = validation.email(email)
    _require_invitable(actor_role, role)
    if await OrganizationMember.exists(organization_id=organization_id, user__email=email):
        raise Conflict("This person is already a member", field="email")
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    async with unit_of_work(ctx) as work:
        # The organization row first (the lock order of members.py), then the inviter's row.
        # A pending invite to the same address is superseded below: it frees its seat.
        await plans.check_seat(organization_id, exclude_email=email, settings=ctx.settings)
        _require_invitable(await _inviter_role(ctx, organization_id), role)
        # Re-inviting is "resend": only the newest token of an address stays valid.
        superseded = await pending(
            Invite.filter(organization_id=organization_id, email=email), now
        ).update(revoked_at=now)
        invite = await Invite.create(
            organization_id=organization_id,
            email=email,
            role=role,
            token_hash=hash_secret(token),
            invited_by_id=ctx.access.user_id,
            expires_at=now + INVITE_TTL,
        )
        await work.audit(
            AuditAction.INVITE_CREATE, invite.id, organization_id=organization_id,
            after=dump(invite) | {"supersededInvites": superseded},
        )
        await _email_invite(work, invite, token)
    return invite, token


async def _email_invite(work: UnitOfWork, invite: Invite, token: str) -> None:
    """The invitation by email, queued with the invite: the token travels only in its link."""
    org_name: list[str] = await orm.column_values(Organization.filter(id=invite.organization_id), "name")
    await work.email(invite.email, "invite", {
        "inviter": work.ctx.access.user.name,
        "organization": org_name[0],
        "role": invite.role.value,
        "expires_in": f"{INVITE_TTL.days} days",
        "link": templates.link(work.ctx.settings.public_url, "accept_invite", token),
    })


async def accept_invite(ctx: Context, token: str) -> tuple[Organization, OrganizationMember]:
    access = ctx.access
    user: User = access.user
    if access.api_key is not None:
        # A key acts inside its own organization only; joining another one needs the person.
        raise Forbidden("Accept invites with a user session, not an API key")
    if not isinstance(token, str) or not 0 < len(token) <= TOKEN_MAX:
        raise NotFound("Invite")
    invite = await Invite.get_or_none(token_hash=hash_secret(token))
    if invite is None or invite.accepted_at is not None or invite.revoked_at is not None:
        raise NotFound("Invite")
    if invite.email != user.email.lower():
        raise Forbidden("This invite was sent to another email address")
    # Only the proven owner of the address the invite was sent to may take it.
    verification.require_verified(user, "accept invitations")
    now = datetime.now(UTC)
    if invite.expires_at <= now:
        raise BadInput("This invite has expired", field="token")
    if await OrganizationMember.exists(organization_id=invite.organization_id, user_id=user.id):
        raise Conflict("You are already a member of this organization")
    try:
        async with unit_of_work(ctx) as work:
            # The invite already holds a seat; after a downgrade the seats may exceed the
            # limit, and then joining is refused (the invite stays pending).
            await plans.check_seat(invite.organization_id, exclude_email=invite.email, settings=ctx.settings)
            # Conditional: of two concurrent redemptions only one flips the row.
            taken = await Invite.filter(
                id=invite.id, accepted_at__isnull=True, revoked_at__isnull=True
            ).update(accepted_at=now, accepted_by_id=user.id)
            if not taken:
                raise NotFound("Invite")
            member = await OrganizationMember.create(
                organization_id=invite.organization_id, user_id=user.id, role=invite.role
            )
            await work.audit(
                AuditAction.INVITE_ACCEPT, invite.id, organization_id=invite.organization_id,
                before=dump(invite),
                after=dump(invite) | {"acceptedAt": now.isoformat(), "acceptedById": user.id,
                                          "member": dump(member)},
            )
    except IntegrityError:
        raise Conflict("You are already a member of this organization") from None
    await access.reload()
    return await Organization.get(id=invite.organization_id), member


async def revoke_invite(ctx: Context, invite_id: int) -> Invite:
    invite = await (await ctx.access.org_scoped(Invite)).get_or_none(id=invite_id)
    if invite is None:
        raise NotFound("Invite")
    actor_role = await ctx.access.require_org(OrgPermission.MANAGE_MEMBERS, invite.organization_id)
    if invite.role is OrgRole.OWNER and actor_role is not OrgRole.OWNER:
        raise Forbidden("Only owners can revoke an invite for an owner",
                        requiredRole=OrgRole.OWNER.value)
    if invite.accepted_at is not None:
        raise Conflict("This invite has already been accepted")
    if invite.revoked_at is not None:
        return invite  # idempotent: revoking twice writes nothing
    before = dump(invite)
    async with unit_of_work(ctx) as work:
        invite.revoked_at = datetime.now(UTC)
        await invite.save(update_fields=["revoked_at"])
        await work.audit(
            AuditAction.INVITE_REVOKE, invite.id, organization_id=invite.organization_id,
            before=before, after=dump(invite),
        )
    return invite
