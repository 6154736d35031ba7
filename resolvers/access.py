"""The one access layer.

`Viewer` is built once per request. Every org-scoped read asks it for a queryset already
narrowed to what the caller may see, and every write calls `require*`. Whatever the viewer
may not see raises NOT_FOUND exactly as a missing row would: there is no second way in.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, TypeVar

from pypika_tortoise.functions import Cast
from pypika_tortoise.queries import Query, Table
from pypika_tortoise.terms import Parameterizer, ValueWrapper
from tortoise.expressions import Q, Subquery
from tortoise.models import Model
from tortoise.queryset import QuerySet

from models import (
    ApiKey,
    AuditEntry,
    Comment,
    Label,
    NoraConversation,
    NoraMessage,
    Organization,
    OrganizationMember,
    OrgRole,
    Plan,
    Project,
    ProjectMember,
    ProjectRole,
    Task,
    User,
    orm,
)
from resolvers import lookups
from resolvers.errors import Forbidden, NotFound, Unauthenticated
from resolvers.identity.auth import Principal

M = TypeVar("M", bound=Model)

# Who asks and everything they belong to (Access.membership_key): user id, API key id, org
# roles and project roles (project id -> (org id, role)), sorted.
MembershipKey = tuple[
    int,
    int | None,
    tuple[tuple[int, OrgRole], ...],
    tuple[tuple[int, tuple[int, ProjectRole]], ...],
]


class Permission(Enum):
    """Project rights, each its own member (values are names: rights held by the same role
    must not alias each other, as they did when the role was the value)."""

    READ = "read"
    WRITE_TASKS = "write_tasks"
    COMMENT = "comment"
    MANAGE_LABELS = "manage_labels"
    DELETE_TASKS = "delete_tasks"
    MANAGE_PROJECT = "manage_project"
    MANAGE_MEMBERS = "manage_members"
    ARCHIVE_PROJECT = "archive_project"

    @property
    def role(self) -> ProjectRole:
        """The least project role that holds this right."""
        return _PROJECT_RIGHTS[self]


_PROJECT_RIGHTS = {
    Permission.READ: ProjectRole.VIEWER,
    Permission.WRITE_TASKS: ProjectRole.EDITOR,
    Permission.COMMENT: ProjectRole.EDITOR,
    Permission.MANAGE_LABELS: ProjectRole.EDITOR,
    Permission.DELETE_TASKS: ProjectRole.ADMIN,
    Permission.MANAGE_PROJECT: ProjectRole.ADMIN,
    Permission.MANAGE_MEMBERS: ProjectRole.ADMIN,
    Permission.ARCHIVE_PROJECT: ProjectRole.OWNER,
}


class OrgPermission(Enum):
    """Organization rights, each its own member."""

    READ = "read"
    CREATE_PROJECT = "create_project"
    MANAGE_MEMBERS = "manage_members"
    MANAGE_API_KEYS = "manage_api_keys"
    MANAGE_OWNERS = "manage_owners"
    MANAGE_PLAN = "manage_plan"
    USE_NORA = "use_nora"
    READ_AUDIT_LOG = "read_audit_log"
    MANAGE_SESSIONS = "manage_sessions"

    @property
    def role(self) -> OrgRole:
        """The least organization role that holds this right."""
        return _ORG_RIGHTS[self]


_ORG_RIGHTS = {
    OrgPermission.READ: OrgRole.MEMBER,
    OrgPermission.CREATE_PROJECT: OrgRole.MEMBER,
    OrgPermission.MANAGE_MEMBERS: OrgRole.ADMIN,
    OrgPermission.MANAGE_API_KEYS: OrgRole.ADMIN,
    OrgPermission.MANAGE_OWNERS: OrgRole.OWNER,
    OrgPermission.MANAGE_PLAN: OrgRole.OWNER,
    OrgPermission.USE_NORA: OrgRole.MEMBER,
    OrgPermission.READ_AUDIT_LOG: OrgRole.ADMIN,
    # End members' sessions, set the organization's session policy.
    OrgPermission.MANAGE_SESSIONS: OrgRole.OWNER,
}


def invitable_roles(role: OrgRole | None) -> frozenset[OrgRole]:
    """The roles a member holding `role` may invite people as: admins invite admins and
    members, only owners invite owners. An invite lives only as long as its sender keeps the
    right to issue it (see resolvers/org/members.py)."""
    if role is None or role.rank < OrgPermission.MANAGE_MEMBERS.role.rank:
        return frozenset()
    if role is OrgRole.OWNER:
        return frozenset(OrgRole)
    return frozenset(r for r in OrgRole if r is not OrgRole.OWNER)


_PLAN_RANK = [Plan.FREE, Plan.PRO, Plan.ENTERPRISE]

# Org owners and admins see every project of their org with at least this role.
_IMPLIED_PROJECT_ROLE = {OrgRole.OWNER: ProjectRole.OWNER, OrgRole.ADMIN: ProjectRole.ADMIN}


class _Slot(Enum):
    """Where a value goes in a cached statement (a sentinel while it is built)."""

    USER = "user"
    ORG = "org"


def _memberships_statement(query: type[Query], one_org: bool) -> tuple[str, list[Any]]:
    """One UNION ALL statement for every membership, built by Tortoise's query builder for
    the connection's dialect, with every value a bound parameter (slots for the caller's)."""
    om = Table(orm.table_of(OrganizationMember)).as_("om")
    o = Table(orm.table_of(Organization)).as_("o")
    m = Table(orm.table_of(ProjectMember)).as_("m")
    p = Table(orm.table_of(Project)).as_("p")
    orgs = (
        query.from_(om).join(o).on(o.id == om.organization_id)
        .select(
            om.organization_id.as_("org_id"), Cast(ValueWrapper(None), "INTEGER").as_("project_id"),
            om.role, o.plan, o.audit_seq.as_("version"),
        )
        .where(om.user_id == ValueWrapper(_Slot.USER))
    )
    projects = (
        query.from_(m).join(p).on(p.id == m.project_id)
        .select(
            p.organization_id, m.project_id, m.role, Cast(ValueWrapper(None), "VARCHAR(16)"),
            Cast(ValueWrapper(None), "BIGINT"),
        )
        .where(m.user_id == ValueWrapper(_Slot.USER))
    )
    if one_org:
        orgs = orgs.where(om.organization_id == ValueWrapper(_Slot.ORG))
        projects = projects.where(p.organization_id == ValueWrapper(_Slot.ORG))
    # One parameterizer numbers the parameters of both halves ($1.. on PostgreSQL). The halves
    # are joined here: pypika's own union loses the dialect on PostgreSQL, and SQLite refuses
    # the parentheses it puts around each half.
    parameterizer = _SlotParameterizer()
    context = query.SQL_CONTEXT.copy(parameterizer=parameterizer)
    sql = f"{orgs.get_sql(context)} UNION ALL {projects.get_sql(context)}"
    return sql, parameterizer.values


class _SlotParameterizer(Parameterizer):
    def should_parameterize(self, value: Any) -> bool:
        # The builder leaves enum members inline as text; the slots must become parameters.
        return isinstance(value, _Slot) or super().should_parameterize(value)


# Built once per dialect and shape: building it cost more than running it (~0.9 ms).
_STATEMENTS: dict[tuple[type[Query], bool], tuple[str, list[Any]]] = {}


def _memberships_query(user_id: int, organization_id: int | None) -> tuple[str, list[Any]]:
    query = orm.db_of(OrganizationMember).query_class
    key = (query, organization_id is not None)
    statement = _STATEMENTS.get(key)
    if statement is None:
        statement = _STATEMENTS[key] = _memberships_statement(query, organization_id is not None)
    sql, slots = statement
    values = {_Slot.USER: int(user_id), _Slot.ORG: None if organization_id is None else int(organization_id)}
    return sql, [values[v] if isinstance(v, _Slot) else v for v in slots]


async def _memberships(user_id: int, organization_id: int | None) -> list[tuple[Any, ...]]:
    """(organization id, project id or None, role, org plan or None, org version or None) of
    every membership, in one statement. The plan rides along so that the rate limiter's budget
    costs no statement; the version (the organization's audit seq, which every write of the
    organization advances in its transaction) so that the response cache's check costs none."""
    sql, params = _memberships_query(user_id, organization_id)
    rows = await orm.db_of(OrganizationMember).execute_query_dict(sql, params)
    return [(r["org_id"], r["project_id"], r["role"], r["plan"], r["version"]) for r in rows]


class Access:
    def __init__(self, principal: Principal | None) -> None:
        self.principal = principal
        self._loaded = False
        self._org_roles: dict[int, OrgRole] = {}
        self._org_plans: dict[int, Plan] = {}
        self._org_versions: dict[int, int] = {}
        # project id -> (organization id, explicit role)
        self._project_roles: dict[int, tuple[int, ProjectRole]] = {}

    # -- identity ---------------------------------------------------------------------------

    @property
    def is_authenticated(self) -> bool:
        return self.principal is not None

    @property
    def user(self) -> User:
        if self.principal is None:
            raise Unauthenticated()
        return self.principal.user

    @property
    def user_id(self) -> int:
        return self.user.id

    @property
    def api_key(self) -> ApiKey | None:
        return self.principal.api_key if self.principal else None

    def is_leaving(self, user_id: int) -> bool:
        """Whether removing `user_id` is the caller leaving. Leaving needs no role, but only a
        person leaves: an API key acting as its creator is held to the role checks, or a
        member-capped key could remove its owner-creator."""
        return user_id == self.user_id and self.api_key is None

    # -- memberships, loaded once per request -------------------------------------------------

    async def load(self) -> Access:
        if self._loaded:
            return self
        key = self.api_key
        rows = await _memberships(self.user.id, key.organization_id if key else None)
        for org_id, project_id, role, plan, version in rows:
            if project_id is None:
                self._org_roles[org_id] = self.capped(OrgRole(role))
                self._org_plans[org_id] = Plan(plan)
                self._org_versions[org_id] = int(version)
        for org_id, project_id, role, _, _ in rows:
            # A project membership is void once its holder has left the organization.
            if project_id is not None and org_id in self._org_roles:
                self._project_roles[project_id] = (org_id, ProjectRole(role))
        self._loaded = True
        return self

    def capped(self, role: OrgRole) -> OrgRole:
        """The organization role the caller acts with when its membership holds `role`:
        an API key acts as its creator, at most at the key's own role."""
        key = self.api_key
        return key.role if key is not None and key.role.rank < role.rank else role

    async def reload(self) -> Access:
        """Reload memberships after a write that changed them."""
        self._loaded = False
        self._org_roles.clear()
        self._org_plans.clear()
        self._org_versions.clear()
        self._project_roles.clear()
        return await self.load()

    def org_role(self, organization_id: int) -> OrgRole | None:
        self._check_loaded()
        return self._org_roles.get(organization_id)

    def org_plan(self, organization_id: int) -> Plan | None:
        """The plan of one of the viewer's organizations, as read with its memberships."""
        self._check_loaded()
        return self._org_plans.get(organization_id)

    def best_plan(self) -> Plan:
        """The best plan among the viewer's organizations (an API key: its organization's)."""
        self._check_loaded()
        return max(self._org_plans.values(), key=_PLAN_RANK.index, default=Plan.FREE)

    def org_ids(self) -> list[int]:
        self._check_loaded()
        return list(self._org_roles)

    def project_role(self, project: Project) -> ProjectRole | None:
        """The effective role: the explicit membership or the one implied by the org role."""
        self._check_loaded()
        org_role = self._org_roles.get(project.organization_id)
        if org_role is None:
            return None
        explicit = self._project_roles.get(project.id)
        roles = [r for r in (explicit and explicit[1], _IMPLIED_PROJECT_ROLE.get(org_role)) if r]
        return max(roles, key=lambda r: r.rank) if roles else None

    def membership_key(self) -> MembershipKey:
        """Who asks and everything they belong to: two viewers with equal keys get equal
        answers from this layer (subscriptions share executions on it)."""
        self._check_loaded()
        key = self.api_key
        return (
            self.user_id,
            key.id if key else None,
            tuple(sorted(self._org_roles.items())),
            tuple(sorted(self._project_roles.items())),
        )

    def data_versions(self) -> tuple[tuple[int, int], ...]:
        """The version of every organization the viewer belongs to, as read with the
        memberships: an answer read for this viewer stays exact while these are unchanged
        (nothing the viewer may read lies outside their organizations; see schema/caching.py)."""
        self._check_loaded()
        return tuple(sorted(self._org_versions.items()))

    def _check_loaded(self) -> None:
        if not self._loaded:
            raise RuntimeError("Viewer.load() must be awaited before access checks")

    def project_scope(self, path: str = "") -> Q:
        """Projects the viewer may read; `path` reaches the project from another model."""
        admin_orgs = [o for o, r in self._org_roles.items() if r in _IMPLIED_PROJECT_ROLE]
        # Filters named at run time; typed as Q's own **kwargs (a dict of lists alone could
        # be read as filling its join_type).
        by_org: dict[str, Any] = {f"{path}organization_id__in": admin_orgs or [0]}
        by_id: dict[str, Any] = {f"{path}id__in": list(self._project_roles) or [0]}
        return Q(**by_org) | Q(**by_id)

    # -- narrowed querysets (reads) -----------------------------------------------------------

    async def organizations(self) -> QuerySet[Organization]:
        await self.load()
        return Organization.filter(id__in=self.org_ids() or [0])

    async def projects(self) -> QuerySet[Project]:
        await self.load()
        return Project.filter(self.project_scope())

    async def tasks(self) -> QuerySet[Task]:
        await self.load()
        return Task.filter(self.project_scope("project__"))

    async def comments(self) -> QuerySet[Comment]:
        await self.load()
        return Comment.filter(self.project_scope("task__project__"))

    async def labels(self) -> QuerySet[Label]:
        await self.load()
        return Label.filter(self.project_scope("project__"))

    async def scoped(self, model: type[M], path: str) -> QuerySet[M]:
        """Any project-owned model, narrowed through `path` (e.g. "project__")."""
        await self.load()
        return model.filter(self.project_scope(path))

    async def org_scoped(self, model: type[M], *, min_role: OrgRole = OrgRole.MEMBER) -> QuerySet[M]:
        """Any organization-owned model, in orgs where the viewer holds at least `min_role`."""
        await self.load()
        orgs = [o for o, r in self._org_roles.items() if r.rank >= min_role.rank]
        return model.filter(organization_id__in=orgs or [0])

    async def audit_entries(self) -> QuerySet[AuditEntry]:
        """Audit entries of organizations where the viewer is an admin or owner."""
        return await self.org_scoped(AuditEntry, min_role=OrgPermission.READ_AUDIT_LOG.role)

    async def users(self) -> QuerySet[User]:
        """Users who share at least one organization with the viewer."""
        await self.load()
        return User.filter(
            Q(id=self.user_id) | Q(org_memberships__organization_id__in=self.org_ids() or [0])
        ).distinct()

    async def nora_conversations(self) -> QuerySet[NoraConversation]:
        """The viewer's own NORA conversations, in organizations it still belongs to, about
        no project or one it can still read. Nobody else's, whatever their role."""
        await self.load()
        return NoraConversation.filter(
            Q(project_id__isnull=True) | self.project_scope("project__"),
            user_id=self.user_id,
            organization_id__in=self.org_ids() or [0],
        )

    async def nora_messages(self) -> QuerySet[NoraMessage]:
        conversations = (await self.nora_conversations()).values("id")
        return NoraMessage.filter(conversation_id__in=Subquery(conversations))

    # -- single objects -----------------------------------------------------------------------

    async def organization(self, pk: int) -> Organization:
        org = await (await self.organizations()).get_or_none(id=pk)
        if org is None:
            raise NotFound("Organization")
        return org

    async def project(self, pk: int) -> Project:
        await self.load()
        project = await lookups.one(Project, id=pk)
        if project is None or self.project_role(project) is None:
            raise NotFound("Project")
        return project

    async def task(self, pk: int) -> Task:
        await self.load()
        task = await lookups.one(Task, related="project", id=pk)
        if task is None or self.project_role(task.project) is None:
            raise NotFound("Task")
        return task

    # -- writes -------------------------------------------------------------------------------

    async def require(self, permission: Permission, project: Project) -> ProjectRole:
        """Raise NOT_FOUND if the project is invisible, FORBIDDEN if the role is too low."""
        await self.load()
        role = self.project_role(project)
        if role is None:
            raise NotFound("Project")
        if role.rank < permission.role.rank:
            raise Forbidden(
                f"Your project role ({role.value}) does not allow this",
                requiredRole=permission.role.value,
            )
        return role

    async def require_org(self, permission: OrgPermission, organization_id: int) -> OrgRole:
        await self.load()
        role = self.org_role(organization_id)
        if role is None:
            raise NotFound("Organization")
        if role.rank < permission.role.rank:
            raise Forbidden(
                f"Your organization role ({role.value}) does not allow this",
                requiredRole=permission.role.value,
            )
        return role
