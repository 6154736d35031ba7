"""The audit log, live: each organization's entries form a gap-free stream, on the event-log
machinery of the board (resolvers/event/log.py `EventLog`, resolvers/event/streams.py `follow`).

An entry's `seq` is dense per organization, taken from `Organization.audit_seq` by the unit of
work at the END of its transaction (`record`): the organization row is locked only for the
last statements of a write (that UPDATE, the entries' INSERTs, COMMIT). Every write of an
organization takes that lock, so the commit tails of one organization's writes go one at a
time (board writes already go one at a time per project, for their whole transaction).

Lock order: a write takes any project row lock (task writes first thing, board event seqs as
they are appended) before the organization row, which it takes last. A write that also needs
the organization row early must take its project locks before it (see
resolvers/org/members.py `remove_member`); tests/test_audit_every_mutation.py checks the order
for every mutation. Entries of no organization (an account's own: sign-ups, logins, sessions) take no lock and get no seq.

Entries are published after commit on `audit:<organization id>`; a subscriber replays from
`after`, refills gaps from the table and, once its cursor is older than what retention kept
(resolvers/audit/retention.py), gets `AuditResyncRequired`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from models import AuditAction, AuditEntry, Organization, orm
from resolvers import metrics
from resolvers.access import Access, OrgPermission
from resolvers.event.log import MAX_WIRE_BYTES, EventLog
from resolvers.event.streams import LogGap, credential_still_valid, follow

if TYPE_CHECKING:
    from resolvers.context import Context

# Entries whose subscribers must re-check their access before receiving them: the entry that
# demotes or removes an admin (or revokes the key a stream runs on) must not reach them.
ACCESS_ACTIONS = frozenset(
    action.value
    for action in (AuditAction.MEMBER_UPDATE_ROLE, AuditAction.MEMBER_REMOVE, AuditAction.API_KEY_REVOKE)
)

# The columns an entry carries on the wire, besides id, organization and seq.
_WIRE_FIELDS = (
    "action", "resource_type", "resource_id", "before", "after", "ip", "request_id", "user_agent",
    "actor_id", "api_key_id",
)


def channel(organization_id: int) -> str:
    return f"audit:{organization_id}"


@dataclass(frozen=True)
class AuditLog(EventLog[AuditEntry]):
    """`EventLog` over `AuditEntry`: the entry is its own event (action for type)."""

    def type_of(self, event: AuditEntry) -> str:
        return str(event.action)

    def seq_of(self, event: AuditEntry) -> int:
        # A streamed entry is an organization's, numbered in its write (record); only the
        # entries of no organization have no seq, and no stream reads them.
        if event.seq is None:
            raise ValueError(f"audit entry {event.id} has no seq")
        return event.seq

    async def record(self, entries: list[AuditEntry]) -> None:
        """Number and store a write's entries; the unit of work calls this last, inside its
        transaction. One `UPDATE ... RETURNING` per organization takes its row lock and the
        seqs of all its entries at once (organizations in id order, so two writes that touch
        the same two never wait for each other crosswise)."""
        by_org: dict[int, list[AuditEntry]] = {}
        for entry in entries:
            if entry.organization_id is not None:
                by_org.setdefault(entry.organization_id, []).append(entry)
        if by_org:
            db = orm.db_of(Organization)
            table, column = orm.table_of(Organization), orm.column_of(Organization, self.counter)
            marks = orm.placeholders(db.capabilities.dialect, 2)
            statement = (
                f'UPDATE "{table}" SET "{column}" = "{column}" + {marks[0]} '
                f'WHERE "id" = {marks[1]} RETURNING "{column}"'
            )
            for organization_id in sorted(by_org):
                batch = by_org[organization_id]
                rows = await db.execute_query_dict(statement, [len(batch), int(organization_id)])
                if not rows:
                    raise LookupError(f"organization {organization_id} does not exist")
                first = rows[0][column] - len(batch) + 1
                for offset, entry in enumerate(batch):
                    entry.seq = first + offset
        for entry in entries:
            await entry.save()
            if entry.seq is not None:
                metrics.appended(self.kind)

    async def oldest_kept(self, key: int) -> int | None:
        # Entries written before numbering existed are numbered by the migration; a row
        # without seq (written by hand) must not pass for the oldest (SQLite sorts NULL first).
        seq = await orm.first_value(
            AuditEntry.filter(organization_id=key, seq__isnull=False).order_by("seq"), "seq"
        )
        return int(seq) if seq is not None else None

    def wire(self, event: AuditEntry) -> str:
        full = orjson.dumps({
            "id": event.id,
            "key": event.organization_id,
            "seq": event.seq,
            "at": event.created_at.isoformat(),
            "payload": {name: getattr(event, name) for name in _WIRE_FIELDS},
        })
        if len(full) > MAX_WIRE_BYTES:
            return orjson.dumps({"key": event.organization_id, "seq": event.seq}).decode()
        return full.decode()

    def from_wire(self, data: dict[str, Any]) -> AuditEntry:
        return orm.detached(AuditEntry, {
            "id": data["id"],
            "organization_id": data["key"],
            "seq": data["seq"],
            "created_at": datetime.fromisoformat(data["at"]),
            **data["payload"],
        })


AUDIT_LOG = AuditLog(
    kind="audit", model=AuditEntry, owner=Organization, key="organization_id", channel=channel,
    counter="audit_seq",
)


def encode_cursor(organization_id: int, seq: int) -> str:
    return AUDIT_LOG.encode_cursor(organization_id, seq)


async def current_cursor(ctx: Context, organization_id: int) -> str:
    """Where the log stands now: read the log, then subscribe after this to miss nothing."""
    await ctx.access.require_org(OrgPermission.READ_AUDIT_LOG, organization_id)
    return encode_cursor(organization_id, await AUDIT_LOG.current_seq(organization_id))


async def _still_readable(access: Access, organization_id: int) -> bool:
    if not await credential_still_valid(access):
        return False
    await access.reload()
    role = access.org_role(organization_id)
    return role is not None and role.rank >= OrgPermission.READ_AUDIT_LOG.role.rank


async def audit_events(
    ctx: Context, organization_id: int, after: str | None
) -> AsyncIterator[AuditEntry | LogGap]:
    """The organization's entries in seq order, for its owners and admins: NOT_FOUND for an
    organization the viewer is not in (as for one that does not exist), FORBIDDEN below admin,
    and FORBIDDEN mid-stream once the viewer is demoted or removed."""
    access = ctx.access
    await access.require_org(OrgPermission.READ_AUDIT_LOG, organization_id)
    async for item in follow(
        ctx,
        AUDIT_LOG,
        organization_id,
        after,
        still_readable=lambda: _still_readable(access, organization_id),
        lost_access="You may no longer read this organization's audit log",
        access_events=ACCESS_ACTIONS,
    ):
        yield item
