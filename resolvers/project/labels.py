"""Project labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise.exceptions import IntegrityError

from models import Label
from resolvers import validation
from resolvers.access import Permission
from resolvers.errors import BadInput, Conflict
from resolvers.project.projects import require as require_project
from resolvers.writes import transaction

if TYPE_CHECKING:
    from resolvers.context import Context

LABEL_NAME_MAX = 50


def snapshot(label: Label) -> dict:
    return {
        "id": label.id,
        "projectId": label.project_id,
        "name": label.name,
        "color": label.color,
        "createdAt": label.created_at.isoformat(),
    }


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
        async with transaction(ctx) as tx:
            label = await Label.create(project_id=project.id, name=name, color=color)
            after = snapshot(label)
            await tx.audit(
                "label.create",
                "Label",
                label.id,
                organization_id=project.organization_id,
                after=after,
            )
            await tx.event(project.id, "LabelCreated", {"labelId": label.id, "label": after})
    except IntegrityError:  # a concurrent create of the same name won
        raise _taken(name) from None
    return label
