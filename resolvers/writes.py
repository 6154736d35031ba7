"""One write = one transaction: rows, audit entry and board events, or nothing.

    async with transaction(ctx) as tx:
        task = await Task.create(...)
        await tx.audit("task.create", "Task", task.id, organization_id=..., after=...)
        await tx.event(project.id, "TaskCreated", {...})

Events are published only after the transaction has committed, so a rolled-back write
publishes nothing. Loaders are cleared after commit so the payload shows fresh data.
Never await a dataloader inside the block: on SQLite it would deadlock on the connection.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from tortoise.transactions import in_transaction

from models import AuditEntry, BoardEvent, Project
from resolvers import audit
from resolvers.event import log as events

if TYPE_CHECKING:
    from resolvers.context import Context


class Transaction:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.events: list[BoardEvent] = []
        self.access_changed: set[int] = set()

    async def audit(self, action: str, resource_type: str, resource_id, **kwargs) -> AuditEntry:
        return await audit.record(self.ctx, action, resource_type, resource_id, **kwargs)

    async def event(self, project_id: int, type_: str, payload: dict) -> BoardEvent:
        actor = self.ctx.access.principal
        event = await events.append(project_id, type_, payload, actor.user.id if actor else None)
        self.events.append(event)
        return event

    async def lock_project(self, project_id: int) -> None:
        """Hold the project's row until commit: the writers of one board go one at a time.

        Every write that touches task rows takes this lock FIRST. The event seq takes the
        same lock at the end of every write; a writer that locked a task row before it could
        deadlock with one that holds the project and waits for that task (PostgreSQL)."""
        await Project.filter(id=project_id).select_for_update().first()

    def access_changed_for(self, user_id: int) -> None:
        """After commit, tell the user's open streams to re-check their access."""
        self.access_changed.add(user_id)


@asynccontextmanager
async def transaction(ctx: Context):
    tx = Transaction(ctx)
    async with in_transaction():
        yield tx
    ctx.loaders.clear_all()
    await events.publish(ctx.broadcast, tx.events, tx.access_changed)
