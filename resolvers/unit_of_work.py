"""The one write pipeline: a unit of work is one transaction holding the rows, the audit
entry, the events (board and NORA logs) and the outbox's emails, or nothing.

    async with unit_of_work(ctx) as work:
        task = await Task.create(...)
        await work.audit(AuditAction.TASK_CREATE, task.id, organization_id=..., after=dump(task))
        await work.event(project.id, BoardEventType.TASK_CREATED, {...})
        await work.email(user.email, "invite", {...})  # queued, sent by the outbox worker

Audit entries are collected and written last, just before the commit: their per-organization
seq takes the organization's row lock, held only for that tail (resolvers/audit/stream.py).
After the commit (never before, so a rolled-back write publishes nothing) it clears the
request's loaders, so what the payload reads next is fresh, publishes the events, the audit
entries and the access nudges, and wakes this process's outbox worker. A dataloader must never
be awaited inside the block: on SQLite the transaction
holds the only connection and the loader's batch waits for it forever. That rule is enforced
here, not only written down: `Loaders` refuse to load while `writing()` is true.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from tortoise.transactions import in_transaction

from models import (
    AuditAction,
    AuditEntry,
    BoardEvent,
    BoardEventType,
    NoraEvent,
    NoraEventType,
    OutboxEmail,
    Project,
)
from resolvers.audit.stream import AUDIT_LOG
from resolvers.email import outbox
from resolvers.email.transport import parse_sender
from resolvers.event import log
from resolvers.nora.events import NORA_LOG

if TYPE_CHECKING:
    from resolvers.context import Context

_WRITING: ContextVar[bool] = ContextVar("pcg_unit_of_work", default=False)


def writing() -> bool:
    """Whether the running code is inside a unit of work's transaction."""
    return _WRITING.get()


class UnitOfWork:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.entries: list[AuditEntry] = []
        self._board: list[BoardEvent] = []
        self._nora: list[NoraEvent] = []
        self._emails: list[OutboxEmail] = []
        self._access_changed: set[int] = set()
        self._sessions_ended: list[tuple[int, float]] = []

    async def audit(
        self,
        action: AuditAction,
        resource_id: int | str,
        *,
        organization_id: int | None,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        actor_id: int | None = None,
    ) -> AuditEntry:
        """The write's audit entry: who (user and API key), from where (IP, user agent, request
        id). Stored (and numbered) at the end of the transaction; its id is set then."""
        principal = self.ctx.access.principal
        entry = AuditEntry(
            organization_id=organization_id,
            actor_id=actor_id if actor_id is not None else (principal.user.id if principal else None),
            api_key_id=principal.api_key.id if principal and principal.api_key else None,
            action=action.value,
            resource_type=action.resource_type,
            resource_id=str(resource_id),
            before=before,
            after=after,
            ip=self.ctx.ip,
            request_id=self.ctx.request_id,
            user_agent=self.ctx.user_agent,
        )
        self.entries.append(entry)
        return entry

    async def event(self, project_id: int, type_: BoardEventType, payload: dict[str, Any]) -> BoardEvent:
        """Append to the project's board log (published after commit)."""
        principal = self.ctx.access.principal
        event = await log.BOARD.append(
            project_id, type_.value, payload, actor_id=principal.user.id if principal else None
        )
        self._board.append(event)
        return event

    async def nora_event(
        self, conversation_id: int, type_: NoraEventType, payload: dict[str, Any]
    ) -> NoraEvent:
        """Append to the conversation's NORA log (published after commit)."""
        event = await NORA_LOG.append(conversation_id, type_.value, payload)
        self._nora.append(event)
        return event

    async def email(
        self, to: str, template: str, context: dict[str, Any], *, user_id: int | None = None
    ) -> OutboxEmail:
        """Queue an email (rendered now from resolvers/email/templates.py) in this write's
        transaction: it leaves only if the write commits, and is retried until it does."""
        sender = parse_sender(self.ctx.settings.mail_from)[1]
        row = await outbox.queue(to, template, context, sender_address=sender, user_id=user_id)
        self._emails.append(row)
        return row

    async def lock_project(self, project_id: int) -> None:
        """Hold the project's row until commit: the writers of one board go one at a time.

        Every write that touches task rows takes this lock FIRST. The event seq takes the
        same lock at the end of every write; a writer that locked a task row before it could
        deadlock with one that holds the project and waits for that task (PostgreSQL)."""
        await Project.filter(id=project_id).select_for_update().first()

    def access_changed_for(self, user_id: int) -> None:
        """After commit, tell the user's open streams to re-check their access."""
        self._access_changed.add(user_id)

    def sessions_ended(self, entries: list[tuple[int, float]]) -> None:
        """After commit, refuse these sessions' access tokens and close their websockets on
        every instance: (session id, when its last access token expires)."""
        self._sessions_ended.extend(entries)

    async def _finish(self) -> None:
        """The commit tail, inside the transaction: the audit entries, numbered."""
        if self.entries:
            await AUDIT_LOG.record(self.entries)

    async def _publish(self) -> None:
        broadcast = self.ctx.broadcast
        if self._sessions_ended:
            # This instance first, before the write is answered; then every other one.
            registry = self.ctx.session_registry
            if registry is not None:
                registry.ended(self._sessions_ended)
                await registry.publish(self._sessions_ended)
            elif broadcast is not None:
                from resolvers.identity.revocations import publish

                await publish(broadcast, self._sessions_ended)
        if self._board:
            await log.BOARD.publish(broadcast, self._board)
        live = [entry for entry in self.entries if entry.seq is not None]
        if live or self._access_changed:
            # Nudges last: a stream that re-checks its access has seen every event before.
            nudges = [(log.access_channel(uid), "{}") for uid in sorted(self._access_changed)]
            await AUDIT_LOG.publish(broadcast, live, nudges)
        if self._nora:
            await NORA_LOG.publish(broadcast, self._nora)
        if self._emails:
            outbox.wake_all()


@asynccontextmanager
async def unit_of_work(ctx: Context) -> AsyncIterator[UnitOfWork]:
    work = UnitOfWork(ctx)
    token = _WRITING.set(True)
    try:
        async with in_transaction():
            yield work
            await work._finish()
    finally:
        _WRITING.reset(token)
    ctx.loaders.clear_all()
    await work._publish()
