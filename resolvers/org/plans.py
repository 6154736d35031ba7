"""Plans and their limits: what an organization may hold, checked inside the write.

One table, `LIMITS`; None means unlimited. Seats (`members`) are members plus pending invites,
so an admin cannot invite past the limit and let the invites be accepted later. Projects count
while not archived. Tasks count per project, archived ones included: they are still stored.

Every check runs inside the write's transaction, after a row lock that every writer of the
same count takes first (the organization row; the project row for tasks; the user row for
the organizations a user owns), so two writers racing for the last slot go one after the
other and the second sees the first one's row. On SQLite writes are serial and the lock is a
no-op. A plan lowered below what an organization already holds keeps the data; only writes
that would add more are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import Subquery
from tortoise.functions import Count
from tortoise.queryset import QuerySet

from models import Invite, Organization, OrganizationMember, OrgRole, Plan, Project, Task, User, orm
from resolvers.errors import PlanLimitReached


@dataclass(frozen=True)
class PlanLimits:
    organizations: int | None  # free-plan organizations a user may own
    members: int | None  # members + pending invites
    projects: int | None  # non-archived projects
    tasks_per_project: int | None  # tasks of one project, archived included


LIMITS: dict[Plan, PlanLimits] = {
    Plan.FREE: PlanLimits(organizations=1, members=5, projects=10, tasks_per_project=1_000),
    Plan.PRO: PlanLimits(organizations=None, members=100, projects=None, tasks_per_project=100_000),
    Plan.ENTERPRISE: PlanLimits(
        organizations=None, members=None, projects=None, tasks_per_project=None
    ),
}


def limits(plan: Plan) -> PlanLimits:
    return LIMITS[plan]


@dataclass(frozen=True)
class Usage:
    plan: Plan
    members: int
    pending_invites: int
    projects: int

    @property
    def seats(self) -> int:
        return self.members + self.pending_invites

    @property
    def limits(self) -> PlanLimits:
        return LIMITS[self.plan]


def _pending_invites(organization_id: int, now: datetime, exclude_email: str | None = None) -> QuerySet[Invite]:
    qs = Invite.filter(
        organization_id=organization_id,
        accepted_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=now,
    )
    return qs.exclude(email=exclude_email) if exclude_email is not None else qs


def _count(qs: QuerySet[Any]) -> Subquery:
    return Subquery(qs.annotate(n=Count("id")).values("n"))


async def usage(organization_id: int, *, lock: bool = False, exclude_email: str | None = None) -> Usage:
    """The organization's plan and counts in one statement; with `lock`, under its row lock
    (taken by a statement of its own, before the counts are read)."""
    if lock:
        await Organization.filter(id=organization_id).select_for_update().first()
    now = datetime.now(UTC)
    row = await (
        Organization.filter(id=organization_id)
        .annotate(
            n_members=_count(OrganizationMember.filter(organization_id=organization_id)),
            n_invites=_count(_pending_invites(organization_id, now, exclude_email)),
            n_projects=_count(Project.filter(organization_id=organization_id, archived_at__isnull=True)),
        )
        .values("plan", "n_members", "n_invites", "n_projects")
    )
    [values] = row
    return Usage(
        plan=Plan(values["plan"]),
        members=values["n_members"] or 0,
        pending_invites=values["n_invites"] or 0,
        projects=values["n_projects"] or 0,
    )


def _refuse(plan: Plan, resource: str, limit: int, current: int, what: str) -> PlanLimitReached:
    return PlanLimitReached(
        f"The {plan.value} plan allows {limit} {what}; upgrade the plan to add more",
        plan=plan.value, resource=resource, limit=limit, current=current,
    )


async def check_seat(organization_id: int, *, exclude_email: str | None = None, adding: int = 1) -> None:
    """Room for `adding` more seats (members + pending invites). Locks the organization row.
    `exclude_email`: a pending invite of that address is replaced by this write, so it does not
    count."""
    u = await usage(organization_id, lock=True, exclude_email=exclude_email)
    limit = u.limits.members
    if limit is not None and u.seats + adding > limit:
        raise _refuse(u.plan, "members", limit, u.seats, "members (pending invites included)")


async def check_project(organization_id: int) -> None:
    """Room for one more non-archived project. Locks the organization row."""
    u = await usage(organization_id, lock=True)
    limit = u.limits.projects
    if limit is not None and u.projects + 1 > limit:
        raise _refuse(u.plan, "projects", limit, u.projects, "projects (archived ones excluded)")


async def check_task(project_id: int, organization_id: int) -> None:
    """Room for one more task in the project. The caller holds the project's row lock."""
    plan = Plan((await orm.column_values(Organization.filter(id=organization_id), "plan"))[0])
    limit = LIMITS[plan].tasks_per_project
    if limit is None:
        return
    current = await Task.filter(project_id=project_id).count()
    if current + 1 > limit:
        raise _refuse(plan, "tasksPerProject", limit, current, "tasks per project")


async def check_new_organization(user_id: int) -> None:
    """A new organization starts on the free plan: a user owns at most LIMITS[FREE].organizations
    free organizations. Locks the user's row so two concurrent creations go one at a time."""
    limit = LIMITS[Plan.FREE].organizations
    if limit is None:
        return
    await User.filter(id=user_id).select_for_update().first()
    current = await OrganizationMember.filter(
        user_id=user_id, role=OrgRole.OWNER, organization__plan=Plan.FREE
    ).count()
    if current + 1 > limit:
        raise _refuse(Plan.FREE, "organizations", limit, current, "organization(s) per owner")
