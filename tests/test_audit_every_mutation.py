"""Every mutation of the schema, audited: a committed call leaves exactly one audit entry (the
right action, resource type and id, actor, organization, next seq, client address and user
agent), and a refused or invalid call leaves none and does not move the organization's seq.

The catalogue below must name every mutation the schema has (test_the_catalogue_names_every_mutation
fails otherwise): a mutation added on another branch adds itself to AUDITED, or to NOT_AUDITED
with the reason it writes no entry. Mutations of tests/api_catalog.py (MUTATIONS) reuse its
inputs; the rest are arranged here.

The same run checks the lock order of each write on PostgreSQL: no project row is locked after
the organization row (resolvers/audit/stream.py), or two writes could wait for each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models import (
    AuditAction,
    AuditEntry,
    EmailTokenPurpose,
    NoraConversation,
    NoraMessage,
    Organization,
    OrganizationMember,
    OrgRole,
    ProjectRole,
    User,
)
from resolvers.identity import email_tokens
from resolvers.identity.sessions import issue_outside_request
from resolvers.ids import parse_global_id
from schema.root import schema
from tests.api_catalog import MUTATIONS, World, arrange, gid
from tests.conftest import PASSWORD, SECRET
from tests.nora_support import SEND, settled
from tests.querycount import count_statements
from tests.test_role_matrix import ORG_RULES, PROJECT_RULES

CLIENT_IP = "203.0.113.7"  # tests/conftest.py's client address
MISSING = 987_654


def pk(global_id: str) -> int:
    return parse_global_id(global_id)[1]


@dataclass
class Run:
    """One call: its document, input and token, and what the catalogue needs to check it."""

    document: str
    input: dict | None  # None: the mutation takes no input
    token: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def variables(self) -> dict:
        return {} if self.input is None else {"input": self.input}


@dataclass(frozen=True)
class Audited:
    action: AuditAction
    # The pk the entry names, from the world, the call's data and its Run.
    resource: Callable[[World, dict, Run], int]
    # The call that succeeds (arranged on a fresh world).
    prepare: Callable[[Any, World, Any], Awaitable[Run]] | None = None
    # Calls that fail, each on the same fresh world: (label, Run, expected code).
    failures: Callable[[Any, World, Any], Awaitable[list[tuple[str, Run, Any]]]] | None = None
    # The organization the entry belongs to (default: the world's).
    organization: Callable[[World, dict], int | None] | None = None
    # The user the entry names as actor (default: the world's owner).
    actor: Callable[[World, dict, Run], int] | None = None
    # Work the call leaves running that must end before the entries are counted.
    settle: Callable[[dict], Awaitable[None]] | None = None


def _data(name: str, *path: str) -> Callable[[World, dict, Run], int]:
    def resource(world: World, data: dict, run: Run) -> int:
        value = data[name]
        for key in path:
            value = value[key]
        return pk(value)

    return resource


def _fixed(get: Callable[[World], int]) -> Callable[[World, dict, Run], int]:
    return lambda world, data, run: get(world)


# -- the mutations of tests/api_catalog.py -----------------------------------------------------

CATALOGUED: dict[str, tuple[AuditAction, Callable[[World, dict, Run], int]]] = {
    "createTask": (AuditAction.TASK_CREATE, _data("createTask", "task", "id")),
    "updateTask": (AuditAction.TASK_UPDATE, _fixed(lambda w: w.task.id)),
    "moveTask": (AuditAction.TASK_MOVE, _fixed(lambda w: w.task.id)),
    "archiveTask": (AuditAction.TASK_ARCHIVE, _fixed(lambda w: w.task.id)),
    "unarchiveTask": (AuditAction.TASK_UNARCHIVE, _fixed(lambda w: w.archived.id)),
    "deleteTask": (AuditAction.TASK_DELETE, _fixed(lambda w: w.task.id)),
    "addComment": (AuditAction.COMMENT_CREATE, _data("addComment", "comment", "id")),
    "createLabel": (AuditAction.LABEL_CREATE, _data("createLabel", "label", "id")),
    "defineCustomField": (AuditAction.CUSTOM_FIELD_CREATE, _data("defineCustomField", "field", "id")),
    "updateProject": (AuditAction.PROJECT_UPDATE, _fixed(lambda w: w.project.id)),
    "archiveProject": (AuditAction.PROJECT_ARCHIVE, _fixed(lambda w: w.project.id)),
    "addProjectMember": (AuditAction.PROJECT_MEMBER_ADD, _data("addProjectMember", "member", "id")),
    "updateProjectMemberRole": (
        AuditAction.PROJECT_MEMBER_UPDATE_ROLE, _fixed(lambda w: w.project_rows["member"].id)
    ),
    "removeProjectMember": (
        AuditAction.PROJECT_MEMBER_REMOVE, _fixed(lambda w: w.project_rows["member"].id)
    ),
    "createProject": (AuditAction.PROJECT_CREATE, _data("createProject", "project", "id")),
    "inviteMember": (AuditAction.INVITE_CREATE, _data("inviteMember", "invite", "id")),
    "updateMemberRole": (AuditAction.MEMBER_UPDATE_ROLE, _fixed(lambda w: w.org_rows["member"].id)),
    "removeMember": (AuditAction.MEMBER_REMOVE, _fixed(lambda w: w.org_rows["member"].id)),
    "createApiKey": (AuditAction.API_KEY_CREATE, _data("createApiKey", "apiKey", "id")),
    "revokeApiKey": (AuditAction.API_KEY_REVOKE, _fixed(lambda w: w.api_key.id)),
    "setOrganizationPlan": (AuditAction.ORGANIZATION_SET_PLAN, _fixed(lambda w: w.org.id)),
    "revokeInvite": (AuditAction.INVITE_REVOKE, _fixed(lambda w: w.invite.id)),
    "endMemberSessions": (AuditAction.MEMBER_END_SESSIONS, _fixed(lambda w: w.org_rows["member"].id)),
    "updateSessionPolicy": (AuditAction.ORGANIZATION_UPDATE_SESSION_POLICY, _fixed(lambda w: w.org.id)),
}


# Writes that lock their project row first thing (resolvers/unit_of_work.py lock_project).
TASK_WRITES = frozenset({"createTask", "updateTask", "moveTask", "archiveTask", "unarchiveTask",
                         "deleteTask", "addComment"})


def _missing(global_id: str) -> str:
    return gid(parse_global_id(global_id)[0], MISSING)


def _member_is_refused(name: str) -> bool:
    """The world's `member` (org member, project viewer) is below the declared least role."""
    if name in PROJECT_RULES:
        return PROJECT_RULES[name] != "viewer"
    return ORG_RULES[name] != "member"


def _catalogued(name: str) -> Audited:
    action, resource = CATALOGUED[name]
    mutation = MUTATIONS[name]

    async def prepare(gql, world: World, factory) -> Run:
        return Run(mutation.document, mutation.build(world), world.owner.token)

    async def failures(gql, world: World, factory) -> list[tuple[str, Run, Any]]:
        good = mutation.build(world)
        out = []
        for field_name in mutation.id_fields:
            if field_name in good and isinstance(good[field_name], str):
                # A missing object is NOT_FOUND; a missing neighbour or user to add is a bad
                # input of an object that was found.
                out.append((f"{field_name} of nothing", Run(
                    mutation.document, good | {field_name: _missing(good[field_name])},
                    world.owner.token), ("NOT_FOUND", "BAD_USER_INPUT")))
        stranger = await factory.user("Stranger")
        out.append(("by a stranger", Run(mutation.document, good, stranger.token), "NOT_FOUND"))
        if _member_is_refused(name):
            # An org member and project viewer who is not the target (one may leave by oneself).
            bystander = await factory.user("Bystander")
            await factory.org_member(world.org, bystander, OrgRole.MEMBER)
            await factory.project_member(world.project, bystander, ProjectRole.VIEWER)
            out.append(("by a member below the role", Run(mutation.document, good, bystander.token),
                        "FORBIDDEN"))
        return out

    return Audited(action, resource, prepare, failures)


# -- the mutations arranged here -----------------------------------------------------------------

SIGN_UP = "mutation($input: SignUpInput!) { signUp(input: $input) { ok } }"
LOG_IN = "mutation($input: LogInInput!) { logIn(input: $input) { session { id } } }"
REFRESH = "mutation($input: RefreshTokenInput!) { refreshToken(input: $input) { session { id } } }"
REVOKE_SESSION = "mutation($input: RevokeSessionInput!) { revokeSession(input: $input) { session { id } } }"
LOG_OUT = "mutation { logOut { session { id } } }"
LOG_OUT_EVERYWHERE = ("mutation($input: LogOutEverywhereInput) { logOutEverywhere(input: $input) "
                      "{ sessionsEnded } }")
VERIFY = "mutation($input: VerifyEmailInput!) { verifyEmail(input: $input) { ok } }"
RESEND = "mutation { resendVerificationEmail { sent } }"
REQUEST_RESET = "mutation($input: RequestPasswordResetInput!) { requestPasswordReset(input: $input) { ok } }"
RESET = "mutation($input: ResetPasswordInput!) { resetPassword(input: $input) { ok } }"
CREATE_ORG = ("mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) "
              "{ organization { id } } }")
ACCEPT = ("mutation($input: AcceptInviteInput!) { acceptInvite(input: $input) "
          "{ member { id } organization { id } } }")
START = ("mutation($input: StartNoraConversationInput!) { startNoraConversation(input: $input) "
         "{ conversation { id } } }")
SEND_DOC = SEND.replace("$i: SendNoraMessageInput!", "$input: SendNoraMessageInput!").replace(
    "input: $i", "input: $input")
CANCEL = ("mutation($input: CancelNoraMessageInput!) { cancelNoraMessage(input: $input) "
          "{ message { id status } } }")


async def _sign_up(gql, world, factory) -> Run:
    return Run(SIGN_UP, {"email": "fresh@example.test", "name": "Fresh", "password": "a long password"}, None)


def _new_user_id(run: Run) -> int:
    """signUp answers no ID (the same answer whether or not the address had an account)."""
    return run.extra["new_user"]


async def _sign_up_failures(gql, world, factory):
    good = (await _sign_up(gql, world, factory)).input
    return [
        ("malformed email", Run(SIGN_UP, good | {"email": "not-an-email"}, None), "BAD_USER_INPUT"),
        ("short password", Run(SIGN_UP, good | {"password": "short"}, None), "BAD_USER_INPUT"),
    ]


async def _create_org(gql, world, factory) -> Run:
    return Run(CREATE_ORG, {"slug": "brand-new", "name": "Brand new"}, world.owner.token)


async def _create_org_failures(gql, world, factory):
    good = (await _create_org(gql, world, factory)).input
    return [
        ("bad slug", Run(CREATE_ORG, good | {"slug": "-Bad Slug-"}, world.owner.token), "BAD_USER_INPUT"),
        ("taken slug", Run(CREATE_ORG, good | {"slug": world.org.slug}, world.owner.token), "CONFLICT"),
        ("anonymous", Run(CREATE_ORG, good, None), "UNAUTHENTICATED"),
    ]


async def _invitee(world: World, factory):
    """The user the world's pending invite was sent to (its token is "token-<email>")."""
    from models import User

    invitee = await factory.user("Invitee")
    await User.filter(id=invitee.user.id).update(email=world.invite.email)
    return invitee


async def _accept(gql, world, factory) -> Run:
    invitee = await _invitee(world, factory)
    return Run(ACCEPT, {"token": f"token-{world.invite.email}"}, invitee.token, {"user": invitee.user.id})


async def _accept_failures(gql, world, factory):
    invitee = await _invitee(world, factory)
    return [
        ("unknown token", Run(ACCEPT, {"token": "token-nobody"}, invitee.token), "NOT_FOUND"),
        ("someone else's invite", Run(ACCEPT, {"token": f"token-{world.invite.email}"}, world.newcomer.token),
         "FORBIDDEN"),
        ("already a member", Run(ACCEPT, {"token": f"token-{world.owner_invite.email}"},
                                 await _already_member_of(world, factory)), "CONFLICT"),
    ]


async def _already_member_of(world: World, factory) -> str:
    from models import User

    await User.filter(id=world.newcomer.user.id).update(email=world.owner_invite.email)
    return world.newcomer.token


async def _start(gql, world, factory) -> Run:
    return Run(START, {"organizationId": gid("Organization", world.org.id)}, world.owner.token)


async def _start_failures(gql, world, factory):
    stranger = await factory.user("Stranger")
    org = gid("Organization", world.org.id)
    return [
        ("organization of nothing", Run(START, {"organizationId": _missing(org)}, world.owner.token), "NOT_FOUND"),
        ("by a stranger", Run(START, {"organizationId": org}, stranger.token), "NOT_FOUND"),
        ("title too long", Run(START, {"organizationId": org, "title": "t" * 10_000}, world.owner.token),
         "BAD_USER_INPUT"),
    ]


async def _conversation(world: World) -> NoraConversation:
    return await NoraConversation.create(organization=world.org, user=world.owner.user, title="")


async def _send(gql, world, factory) -> Run:
    conversation = await _conversation(world)
    return Run(SEND_DOC, {"conversationId": gid("NoraConversation", conversation.id),
                          "content": "who is on the team"}, world.owner.token)


async def _send_failures(gql, world, factory):
    conversation = gid("NoraConversation", (await _conversation(world)).id)
    return [
        ("conversation of nothing", Run(SEND_DOC, {"conversationId": _missing(conversation), "content": "hi"},
                                        world.owner.token), "NOT_FOUND"),
        ("someone else's conversation", Run(SEND_DOC, {"conversationId": conversation, "content": "hi"},
                                            world.co_owner.token), "NOT_FOUND"),
        ("empty", Run(SEND_DOC, {"conversationId": conversation, "content": ""}, world.owner.token),
         "BAD_USER_INPUT"),
    ]


async def _streaming_reply(gql, world: World) -> str:
    """A builtin reply long enough to cancel while it streams (its send is audited first)."""
    conversation = await _conversation(world)
    data = await gql.ok(SEND_DOC, {"input": {"conversationId": gid("NoraConversation", conversation.id),
                                             "content": "tell me a story"}}, token=world.owner.token)
    reply = data["sendNoraMessage"]["assistantMessage"]["id"]
    while not (await NoraMessage.get(id=pk(reply))).content:
        await asyncio.sleep(0.01)
    return reply


async def _cancel(gql, world, factory) -> Run:
    return Run(CANCEL, {"messageId": await _streaming_reply(gql, world)}, world.owner.token)


async def _cancel_failures(gql, world, factory):
    reply = await _streaming_reply(gql, world)
    failures = [
        ("message of nothing", Run(CANCEL, {"messageId": _missing(reply)}, world.owner.token), "NOT_FOUND"),
        ("someone else's reply", Run(CANCEL, {"messageId": reply}, world.co_owner.token), "NOT_FOUND"),
    ]
    await settled(pk(reply))
    return failures


async def _settle_send(data: dict) -> None:
    await settled(pk(data["sendNoraMessage"]["assistantMessage"]["id"]))


# -- sessions and account mutations (user-level entries: no organization, no seq) -------------


async def _log_in(gql, world, factory) -> Run:
    return Run(LOG_IN, {"email": world.owner.user.email, "password": PASSWORD}, None)


async def _log_in_failures(gql, world, factory):
    return [("malformed email", Run(LOG_IN, {"email": "x" * 300, "password": PASSWORD}, None), "BAD_USER_INPUT")]


async def _refresh(gql, world, factory) -> Run:
    return Run(REFRESH, {"refreshToken": world.owner.refresh_token}, None)


async def _refresh_failures(gql, world, factory):
    return [
        ("unknown token", Run(REFRESH, {"refreshToken": "pcgr_" + "x" * 40}, None), "UNAUTHENTICATED"),
        ("not a token", Run(REFRESH, {"refreshToken": "x" * 5000}, None), "UNAUTHENTICATED"),
    ]


async def _second_session(world: World) -> int:
    issued = await issue_outside_request(world.owner.user, SECRET, 3600)
    return issued.session.id


async def _revoke_session(gql, world, factory) -> Run:
    return Run(REVOKE_SESSION, {"sessionId": gid("Session", await _second_session(world))}, world.owner.token)


async def _revoke_session_failures(gql, world, factory):
    own = gid("Session", await _second_session(world))
    return [
        ("session of nothing", Run(REVOKE_SESSION, {"sessionId": _missing(own)}, world.owner.token), "NOT_FOUND"),
        ("someone else's session", Run(REVOKE_SESSION, {"sessionId": own}, world.member.token), "NOT_FOUND"),
        ("anonymous", Run(REVOKE_SESSION, {"sessionId": own}, None), "UNAUTHENTICATED"),
    ]


async def _log_out(gql, world, factory) -> Run:
    return Run(LOG_OUT, None, world.owner.token)


async def _anonymous_and_key(document: str, input_: dict | None, world: World):
    from tests.membership_helpers import make_key

    _, key = await make_key(world.org, world.owner, OrgRole.OWNER)
    return [
        ("anonymous", Run(document, input_, None), "UNAUTHENTICATED"),
        ("with an API key", Run(document, input_, key), "FORBIDDEN"),
    ]


async def _log_out_failures(gql, world, factory):
    return await _anonymous_and_key(LOG_OUT, None, world)


async def _log_out_everywhere(gql, world, factory) -> Run:
    await _second_session(world)
    return Run(LOG_OUT_EVERYWHERE, {"keepCurrent": True}, world.owner.token)


async def _log_out_everywhere_failures(gql, world, factory):
    return await _anonymous_and_key(LOG_OUT_EVERYWHERE, {"keepCurrent": True}, world)


async def _unverified(factory):
    return await factory.user("Unverified", verified=False)


async def _verify(gql, world, factory) -> Run:
    user = await _unverified(factory)
    token, _ = await email_tokens.issue(user.user, EmailTokenPurpose.VERIFY_EMAIL, timedelta(hours=1))
    return Run(VERIFY, {"token": token}, None, {"user": user.user.id})


async def _verify_failures(gql, world, factory):
    user = await _unverified(factory)
    reset, _ = await email_tokens.issue(user.user, EmailTokenPurpose.RESET_PASSWORD, timedelta(hours=1))
    return [
        ("unknown token", Run(VERIFY, {"token": "nope"}, None), "BAD_USER_INPUT"),
        ("a token of another purpose", Run(VERIFY, {"token": reset}, None), "BAD_USER_INPUT"),
    ]


async def _resend(gql, world, factory) -> Run:
    user = await _unverified(factory)
    return Run(RESEND, None, user.token, {"user": user.user.id})


async def _resend_failures(gql, world, factory):
    return await _anonymous_and_key(RESEND, None, world)


async def _request_reset(gql, world, factory) -> Run:
    return Run(REQUEST_RESET, {"email": world.owner.user.email}, None)


async def _request_reset_failures(gql, world, factory):
    return [("malformed email", Run(REQUEST_RESET, {"email": "no at sign"}, None), "BAD_USER_INPUT")]


async def _reset(gql, world, factory) -> Run:
    token, _ = await email_tokens.issue(world.owner.user, EmailTokenPurpose.RESET_PASSWORD, timedelta(minutes=30))
    return Run(RESET, {"token": token, "newPassword": "a brand new password"}, None)


async def _reset_failures(gql, world, factory):
    token, _ = await email_tokens.issue(world.owner.user, EmailTokenPurpose.RESET_PASSWORD, timedelta(minutes=30))
    return [
        ("unknown token", Run(RESET, {"token": "nope", "newPassword": "a brand new password"}, None), "BAD_USER_INPUT"),
        ("short password", Run(RESET, {"token": token, "newPassword": "short"}, None), "BAD_USER_INPUT"),
    ]


def _user_level(**kwargs) -> dict:
    return {"organization": lambda w, d: None, **kwargs}


AUDITED: dict[str, Audited] = {
    **{name: _catalogued(name) for name in CATALOGUED},
    "signUp": Audited(
        AuditAction.USER_SIGN_UP, lambda w, d, r: _new_user_id(r), _sign_up, _sign_up_failures,
        **_user_level(actor=lambda w, d, r: _new_user_id(r)),
    ),
    "logIn": Audited(
        AuditAction.USER_LOG_IN, _data("logIn", "session", "id"), _log_in, _log_in_failures, **_user_level(),
    ),
    "refreshToken": Audited(
        AuditAction.SESSION_REFRESH, _fixed(lambda w: w.owner.session_id), _refresh, _refresh_failures,
        **_user_level(),
    ),
    "revokeSession": Audited(
        AuditAction.SESSION_REVOKE, lambda w, d, r: pk(r.input["sessionId"]), _revoke_session,
        _revoke_session_failures, **_user_level(),
    ),
    "logOut": Audited(
        AuditAction.USER_LOG_OUT, _fixed(lambda w: w.owner.session_id), _log_out, _log_out_failures,
        **_user_level(),
    ),
    "logOutEverywhere": Audited(
        AuditAction.USER_LOG_OUT_EVERYWHERE, _fixed(lambda w: w.owner.user.id), _log_out_everywhere,
        _log_out_everywhere_failures, **_user_level(),
    ),
    "verifyEmail": Audited(
        AuditAction.USER_VERIFY_EMAIL, lambda w, d, r: r.extra["user"], _verify, _verify_failures,
        **_user_level(actor=lambda w, d, r: r.extra["user"]),
    ),
    "resendVerificationEmail": Audited(
        AuditAction.USER_RESEND_VERIFICATION, lambda w, d, r: r.extra["user"], _resend, _resend_failures,
        **_user_level(actor=lambda w, d, r: r.extra["user"]),
    ),
    "requestPasswordReset": Audited(
        AuditAction.USER_PASSWORD_RESET_REQUEST, _fixed(lambda w: w.owner.user.id), _request_reset,
        _request_reset_failures, **_user_level(),
    ),
    "resetPassword": Audited(
        AuditAction.USER_PASSWORD_RESET, _fixed(lambda w: w.owner.user.id), _reset, _reset_failures,
        **_user_level(),
    ),
    "createOrganization": Audited(
        AuditAction.ORGANIZATION_CREATE, _data("createOrganization", "organization", "id"), _create_org,
        _create_org_failures, organization=lambda w, d: pk(d["createOrganization"]["organization"]["id"]),
    ),
    "acceptInvite": Audited(
        AuditAction.INVITE_ACCEPT, _fixed(lambda w: w.invite.id), _accept, _accept_failures,
        actor=lambda w, d, r: r.extra["user"],
    ),
    "startNoraConversation": Audited(
        AuditAction.NORA_CONVERSATION_START, _data("startNoraConversation", "conversation", "id"),
        _start, _start_failures,
    ),
    "sendNoraMessage": Audited(
        AuditAction.NORA_MESSAGE_SEND, _data("sendNoraMessage", "userMessage", "id"), _send,
        _send_failures, settle=_settle_send,
    ),
    "cancelNoraMessage": Audited(
        AuditAction.NORA_MESSAGE_CANCEL, lambda w, d, r: pk(r.input["messageId"]), _cancel,
        _cancel_failures,
    ),
}

# Mutations that write no audit entry at all, and why.
NOT_AUDITED: dict[str, str] = {}

# Other outcomes of audited mutations, with the one entry each leaves: failed calls that are
# security events the account's owner must see (code: the error), and answers that look
# alike on purpose but record what happened (code None). label -> (the call, code, action).
OTHER_OUTCOMES: dict[str, tuple[Callable[[Any, World, Any], Awaitable[Run]], str | None, AuditAction, bool]] = {}


async def _wrong_password(gql, world, factory) -> Run:
    return Run(LOG_IN, {"email": world.owner.user.email, "password": "not the password"}, None)


async def _reused_refresh_token(gql, world, factory) -> Run:
    """The token was exchanged, and its successor used too: presented again, it is a copy."""
    exchange = "mutation($input: RefreshTokenInput!) { refreshToken(input: $input) { refreshToken } }"
    first = await gql.ok(exchange, {"input": {"refreshToken": world.owner.refresh_token}})
    await gql.ok(exchange, {"input": {"refreshToken": first["refreshToken"]["refreshToken"]}})
    return Run(REFRESH, {"refreshToken": world.owner.refresh_token}, None)


async def _existing_address(gql, world, factory) -> Run:
    return Run(SIGN_UP, {"email": world.owner.user.email, "name": "Again", "password": "a long password"}, None)


OTHER_OUTCOMES.update({
    # The last element: whether the entry names the account's owner as actor.
    "logIn(wrong password)": (_wrong_password, "UNAUTHENTICATED", AuditAction.USER_LOG_IN_FAILED, True),
    # Outside the grace window (the successor was used, or the window is over): a stolen copy.
    "refreshToken(already exchanged)": (
        _reused_refresh_token, "UNAUTHENTICATED", AuditAction.SESSION_REFRESH_TOKEN_REUSE, True),
    # The same answer as a new account (no enumeration oracle); the account is emailed. The
    # anonymous caller is not the account's owner: no actor.
    "signUp(existing address)": (_existing_address, None, AuditAction.USER_SIGN_UP_EXISTING, False),
})


# Calls of audited mutations that succeed and change nothing, so write no entry.
async def _same_role(gql, world, factory) -> Run:
    return Run(MUTATIONS["updateMemberRole"].document,
               {"memberId": gid("OrganizationMember", world.org_rows["member"].id), "role": "MEMBER"},
               world.owner.token)


async def _same_plan(gql, world, factory) -> Run:
    return Run(MUTATIONS["setOrganizationPlan"].document,
               {"organizationId": gid("Organization", world.org.id), "plan": "ENTERPRISE"}, world.owner.token)


async def _ended_reply(gql, world, factory) -> Run:
    reply = await _streaming_reply(gql, world)
    await settled(pk(reply))
    return Run(CANCEL, {"messageId": reply}, world.owner.token)


async def _same_project_role(gql, world, factory) -> Run:
    return Run(MUTATIONS["updateProjectMemberRole"].document,
               {"memberId": gid("ProjectMember", world.project_rows["member"].id), "role": "VIEWER"},
               world.owner.token)


async def _unknown_address(gql, world, factory) -> Run:
    return Run(REQUEST_RESET, {"email": "nobody@example.test"}, None)


async def _already_verified(gql, world, factory) -> Run:
    return Run(RESEND, None, world.owner.token)


async def _ended_session(gql, world, factory) -> Run:
    from models import Session

    session_id = await _second_session(world)
    await Session.filter(id=session_id).update(revoked_at=datetime.now(UTC))
    return Run(REVOKE_SESSION, {"sessionId": gid("Session", session_id)}, world.owner.token)


NO_OPS: dict[str, tuple[Callable[[Any, World, Any], Awaitable[Run]], str]] = {
    "requestPasswordReset(of an unknown address)": (
        _unknown_address, "no account: the same answer, nothing written (no enumeration oracle)"),
    "resendVerificationEmail(when verified)": (_already_verified, "the address is verified already"),
    "revokeSession(of an ended session)": (_ended_session, "the session has already ended"),
    "updateMemberRole(same role)": (_same_role, "the member already holds the role"),
    "updateProjectMemberRole(same role)": (_same_project_role, "the member already holds the role"),
    "setOrganizationPlan(same plan)": (_same_plan, "the organization is already on the plan"),
    "cancelNoraMessage(of an ended reply)": (_ended_reply, "the reply has already ended"),
}


# -- helpers ---------------------------------------------------------------------------------------


async def _entries() -> dict[int, AuditEntry]:
    return {entry.id: entry for entry in await AuditEntry.all()}


async def _counters() -> dict[int, int]:
    return dict(await Organization.all().values_list("id", "audit_seq"))


def _locks(sql: str) -> str | None:
    """Which row kind a statement locks: "organization", "project" or None."""
    text = " ".join(sql.split()).lower()
    for table in ("organization", "project"):
        if text.startswith(f'update "{table}" ') or (
            f'from "{table}"' in text and ("for update" in text or "for no key update" in text)
        ):
            return table
    return None


def lock_order_problems(statements: list[str]) -> list[str]:
    seen_org = None
    problems = []
    for index, sql in enumerate(statements):
        kind = _locks(sql)
        if kind == "organization" and seen_org is None:
            seen_org = index
        elif kind == "project" and seen_org is not None:
            problems.append(f"project row locked at statement {index + 1} after the organization "
                            f"row at {seen_org + 1}: {sql[:200]}")
    return problems


def mutation_names() -> set[str]:
    return {schema.config.name_converter.get_graphql_name(f) for f in schema.get_type_by_name("Mutation").fields}


# -- the tests -------------------------------------------------------------------------------------


def test_the_catalogue_names_every_mutation():
    """A mutation missing here fails this test: add it to AUDITED (or NOT_AUDITED, with why)."""
    assert not set(AUDITED) & set(NOT_AUDITED)
    assert sorted(mutation_names() - set(AUDITED) - set(NOT_AUDITED)) == []
    assert sorted((set(AUDITED) | set(NOT_AUDITED)) - mutation_names()) == []
    # Every action the catalogue expects is a distinct member of the enum (and so has a type).
    actions = [case.action for case in AUDITED.values()]
    assert len(actions) == len(set(actions))


@pytest.mark.both_databases
@pytest.mark.parametrize("name", sorted(AUDITED))
async def test_a_committed_call_leaves_exactly_one_entry(gql, factory, backend, name):
    case = AUDITED[name]
    world = await arrange(factory)
    run = await case.prepare(gql, world, factory)
    before, counters = await _entries(), await _counters()
    with count_statements() as log:
        body = await gql.raw(run.document, run.variables, token=run.token)
    assert not body.get("errors"), body
    data = body["data"]
    if case.settle is not None:
        await case.settle(data)
    if name == "signUp":
        run.extra["new_user"] = (await User.get(email=run.input["email"])).id
    after = await _entries()
    new = [after[i] for i in after.keys() - before.keys()]
    assert len(new) == 1, f"{name} wrote {[e.action for e in new]}"
    assert before.keys() <= after.keys()
    [entry] = new
    organization_id = case.organization(world, data) if case.organization else world.org.id
    actor_id = case.actor(world, data, run) if case.actor else world.owner.user.id
    assert (entry.action, entry.resource_type, entry.resource_id) == (
        case.action.value, case.action.resource_type, str(case.resource(world, data, run))
    )
    assert (entry.organization_id, entry.actor_id, entry.api_key_id) == (organization_id, actor_id, None)
    assert entry.ip == CLIENT_IP and entry.user_agent.startswith("python-httpx/") and entry.request_id
    if organization_id is None:
        assert entry.seq is None
        assert await _counters() == counters
    else:
        expected_seq = counters.get(organization_id, 0) + 1
        assert entry.seq == expected_seq
        assert (await _counters())[organization_id] == expected_seq
    assert lock_order_problems(log.statements) == []
    # The check saw the locks it orders: the audit seq's, and the board's on task writes.
    kinds = [_locks(sql) for sql in log.statements]
    assert ("organization" in kinds) == (organization_id is not None)
    if name in TASK_WRITES:
        assert "project" in kinds


@pytest.mark.both_databases
@pytest.mark.parametrize("name", sorted(AUDITED))
async def test_a_failed_call_leaves_no_entry(gql, factory, backend, name):
    case = AUDITED[name]
    world = await arrange(factory)
    failures = await case.failures(gql, world, factory)
    assert failures, f"{name} has no failing call in the catalogue"
    for label, run, code in failures:
        before, counters = await _entries(), await _counters()
        body = await gql.raw(run.document, run.variables, token=run.token)
        got = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
        codes = code if isinstance(code, tuple) else (code,)
        assert len(got) == 1 and got[0] in codes and body["data"] is None, f"{name} {label}: {body}"
        assert await _entries() == before, f"{name} {label} wrote an entry"
        assert await _counters() == counters, f"{name} {label} moved a seq"


async def test_a_write_refused_inside_its_transaction_leaves_no_entry(gql, factory):
    """The last owner leaving is refused after the write collected its entry and board event
    (the check runs last, under the organization's lock): nothing of it commits."""
    world = await arrange(factory)
    await OrganizationMember.filter(id=world.org_rows["co_owner"].id).update(role=OrgRole.ADMIN)
    before, counters = await _entries(), await _counters()
    body = await gql.raw(MUTATIONS["removeMember"].document,
                         {"input": {"memberId": gid("OrganizationMember", world.org_rows["owner"].id)}},
                         token=world.owner.token)
    assert body["errors"][0]["extensions"]["code"] == "CONFLICT", body
    assert await _entries() == before and await _counters() == counters
    assert await OrganizationMember.exists(id=world.org_rows["owner"].id)


@pytest.mark.parametrize("label", sorted(OTHER_OUTCOMES))
async def test_each_other_outcome_leaves_exactly_its_entry(gql, factory, label):
    prepare, code, action, by_owner = OTHER_OUTCOMES[label]
    world = await arrange(factory)
    run = await prepare(gql, world, factory)
    before = await _entries()
    body = await gql.raw(run.document, run.variables, token=run.token)
    assert [e["extensions"]["code"] for e in body.get("errors") or []] == ([code] if code else []), body
    new = [e for i, e in (await _entries()).items() if i not in before]
    assert [(e.action, e.organization_id, e.seq, e.actor_id, e.resource_type) for e in new] == [
        (action.value, None, None, world.owner.user.id if by_owner else None, action.resource_type)
    ]


@pytest.mark.parametrize("label", sorted(NO_OPS))
async def test_a_call_that_changes_nothing_writes_no_entry(gql, factory, label):
    prepare, _why = NO_OPS[label]
    world = await arrange(factory)
    run = await prepare(gql, world, factory)
    before, counters = await _entries(), await _counters()
    body = await gql.raw(run.document, run.variables, token=run.token)
    assert not body.get("errors"), body
    assert await _entries() == before and await _counters() == counters


def test_the_lock_order_check_sees_what_it_must():
    """The check itself: a project locked after the organization is reported; SQLite's plain
    UPDATEs and PostgreSQL's FOR UPDATE both count."""
    org_lock = 'SELECT "id" FROM "organization" WHERE "id"=1 LIMIT 1 FOR UPDATE'
    seq = 'UPDATE "organization" SET "audit_seq" = "audit_seq" + 1 WHERE "id" = 1 RETURNING "audit_seq"'
    project_lock = 'SELECT "id" FROM "project" WHERE "id"=2 LIMIT 1 FOR UPDATE'
    event_seq = 'UPDATE "project" SET "event_seq"="event_seq"+1 WHERE "id"=2'
    member = 'UPDATE "project_member" SET "role"=$1 WHERE "id"=3'
    assert lock_order_problems([project_lock, event_seq, member, seq]) == []
    assert len(lock_order_problems([org_lock, event_seq, seq])) == 1
    assert len(lock_order_problems([seq, project_lock])) == 1


OWNER_VARIANTS = {
    # An owner's removal checks the last-owner rule under the organization's lock, and the
    # person's project memberships go with board events (project rows).
    "removeMember(of an owner)": lambda w: {"memberId": gid("OrganizationMember", w.org_rows["co_owner"].id)},
    "updateMemberRole(of an owner)": lambda w: {
        "memberId": gid("OrganizationMember", w.org_rows["co_owner"].id), "role": "ADMIN"},
}


@pytest.mark.both_databases
@pytest.mark.parametrize("variant", sorted(OWNER_VARIANTS))
async def test_owner_changes_lock_projects_before_the_organization(gql, factory, backend, variant):
    world = await arrange(factory)
    mutation = MUTATIONS[variant.partition("(")[0]]
    with count_statements() as log:
        body = await gql.raw(mutation.document, {"input": OWNER_VARIANTS[variant](world)}, token=world.owner.token)
    assert not body.get("errors"), body
    assert lock_order_problems(log.statements) == []
    kinds = [_locks(sql) for sql in log.statements]
    if backend == "postgres":  # the last-owner check's FOR UPDATE (SQLite has none)
        assert kinds.count("organization") == 2
