"""Org: organizations, their members, invites, plan and usage."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from models import Invite as InviteModel
from models import Organization as OrganizationModel
from models import OrganizationMember as OrganizationMemberModel
from resolvers.audit import entries as audit_resolvers
from resolvers.audit import stream as audit_stream
from resolvers.identity import api_keys as api_key_resolvers
from resolvers.ids import decode_id, to_global_id
from resolvers.org import invites as invite_resolvers
from resolvers.org import members as member_resolvers
from resolvers.org import organizations as org_resolvers
from resolvers.org import sessions as org_session_resolvers
from resolvers.project import projects as project_resolvers
from schema.common import (
    After,
    Before,
    Connection,
    First,
    IncludeArchived,
    Info,
    Last,
    Node,
    OrgRole,
    Plan,
    ProjectSearch,
    ctx,
    model_type_check,
    node_id,
)
from schema.identity import ApiKeyConnection
from schema.permissions import SIGNED_IN, OrgPermission, field, in_org, mutation

if TYPE_CHECKING:
    from schema.audit import AuditEntryConnection, AuditEntryFilter, AuditEntryOrder
    from schema.identity import User
    from schema.project import ProjectConnection

UserRef = Annotated["User", strawberry.lazy("schema.identity")]
ProjectConnectionRef = Annotated["ProjectConnection", strawberry.lazy("schema.project")]
AuditEntryConnectionRef = Annotated["AuditEntryConnection", strawberry.lazy("schema.audit")]
AuditEntryFilterRef = Annotated["AuditEntryFilter", strawberry.lazy("schema.audit")]
AuditEntryOrderRef = Annotated["AuditEntryOrder", strawberry.lazy("schema.audit")]


@strawberry.type(description="A user's membership of an organization.")
class OrganizationMember(Node):
    is_type_of = model_type_check(OrganizationMemberModel)
    role: OrgRole = strawberry.field(
        description="The member's role (in `viewer.organizations` of an API key: at most the "
        "key's role)."
    )
    created_at: datetime = strawberry.field(description="When the user joined.")

    id: strawberry.ID = node_id("OrganizationMember")

    @strawberry.field(description="The member.")
    async def user(self, info: Info) -> UserRef:
        return await ctx(info).loaders.user.load(self.user_id)

    @strawberry.field(description="The organization.")
    async def organization(self, info: Info) -> Organization:
        return await ctx(info).loaders.organization.load(self.organization_id)


@strawberry.type(description="A page of organization members, in the order they joined.")
class OrganizationMemberConnection(Connection[OrganizationMember]):
    pass


@strawberry.type(description="A pending or past invitation to join an organization.")
class Invite(Node):
    is_type_of = model_type_check(InviteModel)
    email: str = strawberry.field(description="Only a user with this email can accept it.")
    role: OrgRole = strawberry.field(description="The role the invitee joins with.")
    created_at: datetime = strawberry.field(description="When it was sent.")
    expires_at: datetime = strawberry.field(description="7 days after it was sent.")
    accepted_at: datetime | None = strawberry.field(description="When it was accepted, if it was.")
    revoked_at: datetime | None = strawberry.field(
        description="When it was revoked (by an admin, or because its sender lost the right "
        "to invite), if it was."
    )

    id: strawberry.ID = node_id("Invite")

    @strawberry.field(description="Who sent it.")
    async def invited_by(self, info: Info) -> UserRef:
        return await ctx(info).loaders.user.load(self.invited_by_id)

    @strawberry.field(description="The organization it invites to.")
    async def organization(self, info: Info) -> Organization:
        return await ctx(info).loaders.organization.load(self.organization_id)


@strawberry.type(description="A page of invites, oldest first.")
class InviteConnection(Connection[Invite]):
    pass






@strawberry.type(description="What a plan allows; null means unlimited.")
class PlanLimits:
    members: int | None = strawberry.field(
        description="Members plus pending invites (seats)."
    )
    projects: int | None = strawberry.field(description="Projects that are not archived.")
    tasks_per_project: int | None = strawberry.field(
        description="Tasks of one project, archived ones included."
    )
    comment_chars: int | None = strawberry.field(
        description="Characters in one comment's body (null: the API's maximum, 10,000)."
    )


@strawberry.type(
    description="What an organization holds against its plan's limits, to show upgrade "
    "prompts. A write past a limit fails with PLAN_LIMIT_REACHED."
)
class OrganizationUsage:
    plan: Plan = strawberry.field(description="The organization's plan.")
    members: int = strawberry.field(
        description="Seats taken: members plus pending invites (what `limits.members` counts)."
    )
    pending_invites: int = strawberry.field(
        description="Of `members`, the invites not yet accepted, revoked or expired."
    )
    projects: int = strawberry.field(description="Projects that are not archived.")
    limits: PlanLimits = strawberry.field(description="The limits of the plan.")

    @classmethod
    def of(cls, usage) -> OrganizationUsage:
        lim = usage.limits
        return cls(
            plan=usage.plan,
            members=usage.seats,
            pending_invites=usage.pending_invites,
            projects=usage.projects,
            limits=PlanLimits(
                members=lim.members, projects=lim.projects, tasks_per_project=lim.tasks_per_project,
                comment_chars=lim.comment_chars,
            ),
        )


@strawberry.type(
    description="How long its members' sessions may last, in seconds. The strictest of the "
    "server's settings and every enterprise organization a user belongs to applies to that "
    "user's sessions, checked at each token refresh."
)
class SessionPolicy:
    idle_timeout: int | None = strawberry.field(
        description="A session ends when not refreshed for this long; null: the server's "
        "(PCG_SESSION_IDLE_TIMEOUT)."
    )
    max_age: int | None = strawberry.field(
        description="A session ends this long after its login, whatever the refreshes; null: "
        "the server's (PCG_SESSION_MAX_AGE)."
    )
    enforced: bool = strawberry.field(
        description="Whether it applies now: only while the organization is on the enterprise plan."
    )

    @classmethod
    def of(cls, org) -> SessionPolicy:
        return cls(
            idle_timeout=org.session_idle_timeout, max_age=org.session_max_age,
            enforced=org.plan is Plan.ENTERPRISE,
        )


@strawberry.type(description="A tenant: its members, projects and API keys.")
class Organization(Node):
    is_type_of = model_type_check(OrganizationModel)
    slug: str = strawberry.field(
        description="Unique, URL-safe handle: 1 to 64 lowercase letters, digits or dashes."
    )
    name: str = strawberry.field(description="Display name.")
    plan: Plan = strawberry.field(description="The billing plan.")
    created_at: datetime = strawberry.field(description="When the organization was created.")

    id: strawberry.ID = node_id("Organization")

    @strawberry.field(description="The viewer's role in this organization.")
    def viewer_role(self, info: Info) -> OrgRole:
        return ctx(info).access.org_role(self.id)

    @field(requires=in_org(OrgPermission.READ), description="Counts against the plan's limits.")
    async def usage(self, info: Info) -> OrganizationUsage:
        return OrganizationUsage.of(await org_resolvers.usage(ctx(info), self))

    @field(
        requires=in_org(OrgPermission.READ),
        description="The session policy its owners set for its members (enterprise plan).",
    )
    async def session_policy(self, info: Info) -> SessionPolicy:
        return SessionPolicy.of(await org_session_resolvers.session_policy(ctx(info), self))

    @strawberry.field(description="Projects of this organization that the viewer may see.")
    async def projects(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        include_archived: IncludeArchived = False,
        search: ProjectSearch = None,
    ) -> ProjectConnectionRef:
        from schema.project import ProjectConnection

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

    @field(
        requires=in_org(OrgPermission.READ),
        description="The organization's members, in the order they joined.",
    )
    async def members(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> OrganizationMemberConnection:
        page = await org_resolvers.members(ctx(info), self, first, after, last, before)
        return OrganizationMemberConnection.of(page)

    @field(
        requires=in_org(OrgPermission.MANAGE_MEMBERS),
        description="Invites not yet accepted, revoked or expired (others: FORBIDDEN).",
    )
    async def invites(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> InviteConnection:
        page = await invite_resolvers.pending_invites(ctx(info), self, first, after, last, before)
        return InviteConnection.of(page)

    @field(
        requires=in_org(OrgPermission.MANAGE_API_KEYS),
        description="API keys of this organization (others: FORBIDDEN).",
    )
    async def api_keys(
        self,
        info: Info,
        include_revoked: Annotated[
            bool, strawberry.argument(description="Include revoked keys (left out by default).")
        ] = False,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> ApiKeyConnection:
        page = await api_key_resolvers.api_keys(
            ctx(info), self, include_revoked, first, after, last, before
        )
        return ApiKeyConnection.of(page)

    @field(
        requires=in_org(OrgPermission.READ_AUDIT_LOG),
        description="Every write in this organization, newest first by default (others: FORBIDDEN).",
    )
    async def audit_entries(
        self,
        info: Info,
        filter: Annotated[
            AuditEntryFilterRef | None,
            strawberry.argument(description="Only entries matching all given conditions."),
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        order_by: Annotated[
            AuditEntryOrderRef | None,
            strawberry.argument(description="CREATED_AT_DESC (newest first) by default."),
        ] = None,
    ) -> AuditEntryConnectionRef:
        from schema.audit import AuditEntryConnection, AuditEntryOrder

        page = await audit_resolvers.entries(
            ctx(info), self, filter.to_filter() if filter else None,
            oldest_first=order_by is AuditEntryOrder.CREATED_AT_ASC,
            first=first, after=after, last=last, before=before,
        )
        return AuditEntryConnection.of(page)

    @field(
        requires=in_org(OrgPermission.READ_AUDIT_LOG),
        description="The audit log's position as of this read. Read `auditEntries` with it, then "
        "subscribe to `auditEntries(organizationId, after: auditCursor)`: nothing between the "
        "read and the subscription is missed.",
    )
    async def audit_cursor(self, info: Info) -> str:
        return await audit_stream.current_cursor(ctx(info), self.id)


@strawberry.input(description="A new organization.")
class CreateOrganizationInput:
    slug: str = strawberry.field(
        description="1 to 64 lowercase letters, digits or dashes, not starting or ending with a "
        "dash; unique (CONFLICT if taken)."
    )
    name: str = strawberry.field(description="Display name, 1 to 200 characters.")


@strawberry.type(description="The result of createOrganization.")
class OrganizationPayload:
    organization: Organization | None = strawberry.field(description="The new organization.")


@strawberry.input(description="An organization's new plan.")
class SetOrganizationPlanInput:
    organization_id: strawberry.ID = strawberry.field(description="The organization.")
    plan: Plan = strawberry.field(
        description="The new plan. Lowering it below current usage is allowed: existing data "
        "stays, writes past the new limits are refused."
    )


@strawberry.type(description="The result of setOrganizationPlan.")
class SetOrganizationPlanPayload:
    organization: Organization | None = strawberry.field(
        description="The organization, on its new plan."
    )


@strawberry.input(description="Someone to invite.")
class InviteMemberInput:
    organization_id: strawberry.ID = strawberry.field(description="The organization.")
    email: str = strawberry.field(description="The invitee's email; they accept with it.")
    role: OrgRole = strawberry.field(
        default=OrgRole.MEMBER, description="MEMBER by default; only owners invite owners."
    )


@strawberry.type(description="The result of inviteMember.")
class InviteMemberPayload:
    invite: Invite | None = strawberry.field(description="The pending invite.")
    invite_token: str = strawberry.field(
        description="Send this to the invitee; it is shown only once and expires in 7 days."
    )


@strawberry.input(description="An invite to accept.")
class AcceptInviteInput:
    token: str = strawberry.field(description="The `inviteToken` the inviter received.")


@strawberry.type(description="The result of acceptInvite.")
class AcceptInvitePayload:
    organization: Organization | None = strawberry.field(description="The organization joined.")
    member: OrganizationMember | None = strawberry.field(description="The new membership.")


@strawberry.input(description="The invite to withdraw.")
class RevokeInviteInput:
    invite_id: strawberry.ID = strawberry.field(description="An Invite ID.")


@strawberry.type(description="The result of revokeInvite.")
class InvitePayload:
    invite: Invite | None = strawberry.field(description="The invite, now revoked.")


@strawberry.input(description="A new organization role for a member.")
class UpdateMemberRoleInput:
    member_id: strawberry.ID = strawberry.field(description="An OrganizationMember ID.")
    role: OrgRole = strawberry.field(
        description="The new role; only owners grant or revoke OWNER, and the last owner "
        "stays (CONFLICT, reason LAST_OWNER)."
    )


@strawberry.type(description="The result of updateMemberRole.")
class OrganizationMemberPayload:
    member: OrganizationMember | None = strawberry.field(description="The membership as it is now.")


@strawberry.input(description="The organization membership to end.")
class RemoveMemberInput:
    member_id: strawberry.ID = strawberry.field(description="An OrganizationMember ID.")


@strawberry.type(description="The result of removeMember.")
class RemoveMemberPayload:
    removed_member_id: strawberry.ID = strawberry.field(
        description="The ID the membership had; drop it from client caches."
    )










@strawberry.type(description="Organization, membership, invite and API key mutations.")
class OrgMutations:
    @mutation(
        requires=SIGNED_IN.with_(api_keys=False),
        description='Create an organization; the caller becomes its owner.',
    )
    async def create_organization(
        self,
        info: Info,
        input: Annotated[
            CreateOrganizationInput, strawberry.argument(description="The organization to create.")
        ],
    ) -> OrganizationPayload:
        org = await org_resolvers.create_organization(ctx(info), input.slug, input.name)
        return OrganizationPayload(organization=org)

    @mutation(
        requires=in_org(OrgPermission.MANAGE_PLAN),
        description="Change an organization's plan (no billing provider: the platform's own decision). "
        'Audited as organization.set_plan; an unchanged plan writes nothing.',
    )
    async def set_organization_plan(
        self,
        info: Info,
        input: Annotated[
            SetOrganizationPlanInput, strawberry.argument(description="The organization and plan.")
        ],
    ) -> SetOrganizationPlanPayload:
        org = await org_resolvers.set_plan(
            ctx(info), decode_id(input.organization_id, "Organization", "organizationId"),
            input.plan,
        )
        return SetOrganizationPlanPayload(organization=org)

    @mutation(
        requires=in_org(OrgPermission.MANAGE_MEMBERS, also="only owners invite owners"),
        description='Invite someone by email.',
    )
    async def invite_member(
        self,
        info: Info,
        input: Annotated[
            InviteMemberInput, strawberry.argument(description="Who to invite, and as what.")
        ],
    ) -> InviteMemberPayload:
        invite, token = await invite_resolvers.invite_member(
            ctx(info),
            decode_id(input.organization_id, "Organization", "organizationId"),
            input.email,
            input.role,
        )
        return InviteMemberPayload(invite=invite, invite_token=token)

    @mutation(
        requires=SIGNED_IN.with_(also="the invite must have been sent to the caller's email", api_keys=False),
        description='Join an organization with an invite.',
    )
    async def accept_invite(
        self,
        info: Info,
        input: Annotated[AcceptInviteInput, strawberry.argument(description="The invite token.")],
    ) -> AcceptInvitePayload:
        org, member = await invite_resolvers.accept_invite(ctx(info), input.token)
        return AcceptInvitePayload(organization=org, member=member)

    @mutation(
        requires=in_org(OrgPermission.MANAGE_MEMBERS, also="only owners withdraw an invite for an owner"),
        description='Withdraw a pending invite.',
    )
    async def revoke_invite(
        self,
        info: Info,
        input: Annotated[
            RevokeInviteInput, strawberry.argument(description="The invite to withdraw.")
        ],
    ) -> InvitePayload:
        invite = await invite_resolvers.revoke_invite(
            ctx(info), decode_id(input.invite_id, "Invite", "inviteId")
        )
        return InvitePayload(invite=invite)

    @mutation(
        requires=in_org(OrgPermission.MANAGE_MEMBERS, also="only owners make, change or demote owners, and the last owner stays"),
        description="Change a member's organization role.",
    )
    async def update_member_role(
        self,
        info: Info,
        input: Annotated[
            UpdateMemberRoleInput, strawberry.argument(description="The membership and its new role.")
        ],
    ) -> OrganizationMemberPayload:
        member = await member_resolvers.update_member_role(
            ctx(info), decode_id(input.member_id, "OrganizationMember", "memberId"), input.role
        )
        return OrganizationMemberPayload(member=member)

    @mutation(
        requires=in_org(OrgPermission.MANAGE_MEMBERS, also="anyone may leave; only owners remove owners, and the last owner stays"),
        description='Remove a member (or leave, with your own membership) and their project memberships '
        'in this organization.',
    )
    async def remove_member(
        self,
        info: Info,
        input: Annotated[
            RemoveMemberInput, strawberry.argument(description="The membership to end.")
        ],
    ) -> RemoveMemberPayload:
        member_id = await member_resolvers.remove_member(
            ctx(info), decode_id(input.member_id, "OrganizationMember", "memberId")
        )
        return RemoveMemberPayload(
            removed_member_id=strawberry.ID(to_global_id("OrganizationMember", member_id))
        )




@strawberry.input(description="The member whose sessions to end.")
class EndMemberSessionsInput:
    organization_id: strawberry.ID = strawberry.field(description="The organization.")
    user_id: strawberry.ID = strawberry.field(
        description="A User ID of one of its members; anyone else is NOT_FOUND."
    )


@strawberry.type(description="The result of endMemberSessions.")
class EndMemberSessionsPayload:
    sessions_ended: int = strawberry.field(description="How many sessions were ended.")


@strawberry.input(description="An organization's session policy; null (or omitted) clears a limit.")
class UpdateSessionPolicyInput:
    organization_id: strawberry.ID = strawberry.field(description="The organization.")
    idle_timeout: int | None = strawberry.field(
        default=None,
        description="Seconds without a refresh after which a member's session ends: 300 to "
        "31,622,400 (a year), or null for the server's.",
    )
    max_age: int | None = strawberry.field(
        default=None,
        description="Seconds after its login at which a member's session ends: 300 to "
        "31,622,400, or null for the server's.",
    )


@strawberry.type(description="The result of updateSessionPolicy.")
class UpdateSessionPolicyPayload:
    organization: Organization | None = strawberry.field(
        description="The organization, with its new policy."
    )


@strawberry.type(description="What an organization's owners decide about members' sessions.")
class OrgSessionMutations:
    @mutation(
        requires=in_org(OrgPermission.MANAGE_SESSIONS),
        description="End every session of a member (everywhere: a session is the person's): "
        "their access tokens stop working at once and their websockets close; they must log in "
        "again. Audited in the organization's log as member.end_sessions.",
    )
    async def end_member_sessions(
        self,
        info: Info,
        input: Annotated[
            EndMemberSessionsInput, strawberry.argument(description="The organization and member.")
        ],
    ) -> EndMemberSessionsPayload:
        ended = await org_session_resolvers.end_member_sessions(
            ctx(info),
            decode_id(input.organization_id, "Organization", "organizationId"),
            decode_id(input.user_id, "User", "userId"),
        )
        return EndMemberSessionsPayload(sessions_ended=ended)

    @mutation(
        requires=in_org(OrgPermission.MANAGE_SESSIONS, also="enterprise plan only (FORBIDDEN, requiredPlan, otherwise)"),
        description="Set the organization's session policy; it applies to every member's "
        "sessions at their next token refresh. An unchanged policy writes nothing. Audited as "
        "organization.update_session_policy.",
    )
    async def update_session_policy(
        self,
        info: Info,
        input: Annotated[
            UpdateSessionPolicyInput, strawberry.argument(description="The organization and policy.")
        ],
    ) -> UpdateSessionPolicyPayload:
        org = await org_session_resolvers.update_session_policy(
            ctx(info),
            decode_id(input.organization_id, "Organization", "organizationId"),
            input.idle_timeout,
            input.max_age,
        )
        return UpdateSessionPolicyPayload(organization=org)
