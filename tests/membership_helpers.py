"""Helpers shared by the organization, membership and API-key tests."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from models import (
    ApiKey,
    AuditEntry,
    BoardEvent,
    Invite,
    Organization,
    OrganizationMember,
    OrgRole,
    Project,
    ProjectMember,
    User,
)
from resolvers.identity.auth import hash_secret, new_api_key

CLIENT_IP = "203.0.113.7"
# Every table a mutation of ours may touch: a failed mutation must leave all of them as they were.
_TABLES = (Organization, OrganizationMember, Invite, ApiKey, Project, ProjectMember, AuditEntry,
           BoardEvent, User)


async def db_state() -> dict:
    """All rows of the touched tables, every column: catches inserts, deletes and updates."""
    state = {}
    for model in _TABLES:
        rows = await model.all().order_by("id").values()
        if model is ApiKey:
            # Authentication's own bookkeeping (resolvers/identity/key_usage.py), written before the
            # mutation runs whether it succeeds or not: not a write of the mutation.
            for row in rows:
                row.pop("last_used_at")
        state[model.__name__] = rows
    return state


async def fails(gql, code: str, query: str, variables: dict | None, token: str) -> dict:
    """Run a mutation that must fail with `code` and write nothing; return the error."""
    before = await db_state()
    error = await gql.error(query, variables, token)
    assert error["extensions"]["code"] == code, error
    assert await db_state() == before, "a failed mutation changed the database"
    return error


async def call(gql, query: str, variables: dict, token: str, request_id: str) -> dict:
    """A successful call that sends an X-Request-ID, to find it again in the audit log."""
    response = await gql.http.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": request_id},
    )
    body = response.json()
    assert not body.get("errors"), body["errors"]
    return body["data"]


async def only_audit(action: str) -> AuditEntry:
    entries = await AuditEntry.filter(action=action)
    assert len(entries) == 1, f"expected one {action} entry, got {len(entries)}"
    return entries[0]


def assert_audit(entry: AuditEntry, *, actor, org_id: int, request_id: str | None = None,
                 api_key_id: int | None = None) -> None:
    assert entry.actor_id == actor.user.id
    assert entry.organization_id == org_id
    assert entry.ip == CLIENT_IP
    assert entry.api_key_id == api_key_id
    if request_id is not None:
        assert entry.request_id == request_id


async def events(project_id: int) -> list[BoardEvent]:
    return await BoardEvent.filter(project_id=project_id).order_by("seq")


async def make_key(org: Organization, actor, role: OrgRole, **fields) -> tuple[ApiKey, str]:
    plaintext, prefix, key_hash = new_api_key()
    key = await ApiKey.create(
        organization=org, created_by=actor.user, name="test key", prefix=prefix,
        key_hash=key_hash, role=role, **fields,
    )
    return key, plaintext


async def make_invite(org: Organization, inviter, email: str, role: OrgRole = OrgRole.MEMBER,
                      **fields) -> tuple[Invite, str]:
    token = secrets.token_urlsafe(32)
    fields.setdefault("expires_at", datetime.now(UTC) + timedelta(days=7))
    invite = await Invite.create(
        organization=org, email=email, role=role, token_hash=hash_secret(token),
        invited_by=inviter.user, **fields,
    )
    return invite, token


async def membership(org: Organization, actor) -> OrganizationMember:
    return await OrganizationMember.get(organization_id=org.id, user_id=actor.user.id)


async def project_membership(project: Project, actor) -> ProjectMember:
    return await ProjectMember.get(project_id=project.id, user_id=actor.user.id)
