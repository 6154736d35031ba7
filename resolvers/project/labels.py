"""Project labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise.exceptions import IntegrityError

from models import AuditAction, BoardEventType, Label
from models.snapshot import dump
from resolvers import validation
from resolvers.access import Permission
from resolvers.errors import BadInput, Conflict
from resolvers.project.projects import require as require_project
from resolvers.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from resolvers.context import Context

LABEL_NAME_MAX = 50


def _taken(name: str) -> Conflict:
    return Conflict(f"This project already has a label named {name!r}", field="name")


async def create_label(ctx: Context, project_id: int, name: str, color: str) -> Label:
    project = await require_project(ctx, project_id, Permission.MANAGE_LABELS)
    if project.archived_at is not None:
        raise BadInput("The project is archived", field="projectId")
    name = validation.text(name, "name", max_len=LABEL_NAME_MAX)
    color = validation.color(color)
    # "Bug" and "bug" side by side would only confuse; the unique index is case-sensitive.
    if await Label.filter(project_id=project.id, name__iexact=name).exists():
        raise _taken(name)
    try:
        async with unit_of_work(ctx) as work:
            label = await Label.create(project_id=project.id, name=name, color=color)
            after = dump(label)
            await work.audit(
                AuditAction.LABEL_CREATE, label.id,
                organization_id=project.organization_id,
                after=after,
            )
            await work.event(project.id, BoardEventType.LABEL_CREATED, {"labelId": label.id, "label": after})
    except IntegrityError:  # a concurrent create of the same name won
        raise _taken(name) from None
    return label
