"""Organizations: creation and org-scoped reads."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet

from models import AuditAction, Organization, OrganizationMember, OrgRole, Plan
from models.snapshot import dump
from resolvers import validation
from resolvers.access import OrgPermission
from resolvers.errors import Conflict, Forbidden
from resolvers.identity import verification
from resolvers.loaders import CountedPage, PageSpec
from resolvers.org import plans
from resolvers.pagination import Order
from resolvers.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from resolvers.context import Context


async def organization_by_slug(ctx: Context, slug: str) -> Organization | None:
    if not isinstance(slug, str) or len(slug) > 64:
        return None
    return await (await ctx.access.organizations()).get_or_none(slug=slug)


async def viewer_memberships(ctx: Context) -> list[OrganizationMember]:
    """The viewer's memberships, each with the role the viewer acts with there: an API key
    sees its own organization only (Viewer.load), at the key's role when that is lower."""
    access = await ctx.access.load()
    rows = await OrganizationMember.filter(
        user_id=access.user_id, organization_id__in=access.org_ids() or [0]
    ).order_by("created_at", "id")
    for row in rows:  # rows of this call only, never saved: the stored role is unchanged
        role = access.org_role(row.organization_id)
        assert role is not None  # the rows are of access.org_ids(), each of which has a role
        row.role = role
    return rows


async def _members_of_visible_orgs(ctx: Context, variant: Hashable) -> QuerySet[OrganizationMember]:
    return await ctx.access.org_scoped(OrganizationMember)


# First pages of the member lists of every organization in a response share one statement.
ORG_MEMBERS = PageSpec(
    group=("organization_id",), source=_members_of_visible_orgs, order=Order((("created_at", False),))
)


async def members(
    ctx: Context,
    org: Organization,
    first: int | None,
    after: str | None,
    last: int | None = None,
    before: str | None = None,
) -> CountedPage[OrganizationMember]:
    await ctx.access.require_org(OrgPermission.READ, org.id)
    return await ctx.loaders.page(
        ctx, ORG_MEMBERS, (org.id,), first=first, after=after, last=last, before=before
    )


async def create_organization(ctx: Context, slug: str, name: str) -> Organization:
    user = ctx.access.user
    if ctx.access.api_key is not None:
        # A key acts inside its own organization only; a new one needs the person.
        raise Forbidden("Create organizations with a user session, not an API key")
    slug = validation.slug(slug)
    name = validation.text(name, "name", max_len=validation.NAME_MAX)
    if await Organization.exists(slug=slug):
        raise Conflict("This slug is taken", field="slug")
    try:
        async with unit_of_work(ctx) as work:
            await verification.check_new_organization(user.id)
            await plans.check_new_organization(user.id)
            org = await Organization.create(slug=slug, name=name, plan=Plan.FREE)
            await OrganizationMember.create(organization=org, user_id=user.id, role=OrgRole.OWNER)
            await work.audit(
                AuditAction.ORGANIZATION_CREATE, org.id, organization_id=org.id,
                after=dump(org),
            )
    except IntegrityError:
        raise Conflict("This slug is taken", field="slug") from None
    await ctx.access.reload()
    return org



async def usage(ctx: Context, org: Organization) -> plans.Usage:
    await ctx.access.require_org(OrgPermission.READ, org.id)
    return await plans.usage(org.id, settings=ctx.settings)


async def set_plan(ctx: Context, organization_id: int, plan: Plan) -> Organization:
    """Owners only (the top admins of an organization). Lowering the plan below what the
    organization holds is allowed: its data stays, writes that would add more are refused."""
    await ctx.access.require_org(OrgPermission.MANAGE_PLAN, organization_id)
    return await write_plan(ctx, await Organization.get(id=organization_id), plan)


async def write_plan(ctx: Context, org: Organization, plan: Plan) -> Organization:
    """The write itself, shared by the mutation and `pcg set-plan`; an unchanged plan writes
    nothing."""
    if org.plan is plan:
        return org
    before = dump(org)
    async with unit_of_work(ctx) as work:
        await Organization.filter(id=org.id).select_for_update().first()
        org.plan = plan
        await org.save(update_fields=["plan", "updated_at"])
        await work.audit(
            AuditAction.ORGANIZATION_SET_PLAN, org.id, organization_id=org.id,
            before=before, after=dump(org),
        )
    if ctx.access.is_authenticated:
        # The viewer caches each organization's plan (rate-limit budgets): read it afresh.
        await ctx.access.reload()
    return org
