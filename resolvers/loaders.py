"""Per-request dataloaders: one batched query per relation, whatever the list's length.

Built per HTTP request and per subscription event, never per websocket connection.
`load(None)` raises in aiodataloader, so nullable foreign keys go through `load_optional`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from aiodataloader import DataLoader
from tortoise.functions import Count

from models import (
    CustomFieldDefinition,
    Label,
    Organization,
    OrganizationMember,
    Project,
    ProjectMember,
    Task,
    TaskComment,
    TaskLabel,
    User,
)


def _by_id(model) -> Callable:
    async def batch(ids: list[int]) -> list[Any]:
        rows = {row.id: row for row in await model.filter(id__in=ids)}
        return [rows.get(i) for i in ids]

    return batch


def _grouped(fetch: Callable, key: Callable) -> Callable:
    async def batch(keys: list[int]) -> list[list[Any]]:
        groups: dict[int, list[Any]] = defaultdict(list)
        for row in await fetch(keys):
            groups[key(row)].append(row)
        return [groups.get(k, []) for k in keys]

    return batch


def _counted(queryset: Callable, field: str) -> Callable:
    async def batch(keys: list[int]) -> list[int]:
        rows = (
            await queryset(keys)
            .annotate(n=Count("id"))
            .group_by(field)
            .values_list(field, "n")
        )
        counts = dict(rows)
        return [counts.get(k, 0) for k in keys]

    return batch


async def _labels_for_tasks(task_ids: list[int]) -> list[tuple[int, Label]]:
    links = await TaskLabel.filter(task_id__in=task_ids).values_list("task_id", "label_id")
    labels = {l.id: l for l in await Label.filter(id__in={lid for _, lid in links})}
    return [(tid, labels[lid]) for tid, lid in links if lid in labels]


class Loaders:
    def __init__(self) -> None:
        self._all: list[DataLoader] = []
        self.user = self._make(_by_id(User))
        self.organization = self._make(_by_id(Organization))
        self.project = self._make(_by_id(Project))
        self.task = self._make(_by_id(Task))
        self.labels_by_task = self._make(self._labels_batch)
        self.comment_count_by_task = self._make(
            _counted(lambda ids: TaskComment.filter(task_id__in=ids), "task_id")
        )
        self.subtask_count_by_task = self._make(
            _counted(
                lambda ids: Task.filter(parent_id__in=ids, archived_at__isnull=True), "parent_id"
            )
        )
        self.members_by_project = self._make(
            _grouped(
                lambda ids: ProjectMember.filter(project_id__in=ids).order_by("created_at", "id"),
                lambda m: m.project_id,
            )
        )
        self.member_count_by_project = self._make(
            _counted(lambda ids: ProjectMember.filter(project_id__in=ids), "project_id")
        )
        self.members_by_org = self._make(
            _grouped(
                lambda ids: OrganizationMember.filter(organization_id__in=ids).order_by(
                    "created_at", "id"
                ),
                lambda m: m.organization_id,
            )
        )
        self.open_task_count_by_project = self._make(
            _counted(
                lambda ids: Task.filter(project_id__in=ids, archived_at__isnull=True),
                "project_id",
            )
        )
        self.custom_fields_by_project = self._make(
            _grouped(
                lambda ids: CustomFieldDefinition.filter(project_id__in=ids).order_by("id"),
                lambda d: d.project_id,
            )
        )
        self.labels_by_project = self._make(
            _grouped(
                lambda ids: Label.filter(project_id__in=ids).order_by("name", "id"),
                lambda l: l.project_id,
            )
        )

    def _make(self, batch: Callable) -> DataLoader:
        loader = DataLoader(batch_load_fn=batch)
        self._all.append(loader)
        return loader

    @staticmethod
    async def _labels_batch(task_ids: list[int]) -> list[list[Label]]:
        groups: dict[int, list[Label]] = defaultdict(list)
        for tid, label in await _labels_for_tasks(task_ids):
            groups[tid].append(label)
        return [sorted(groups.get(t, []), key=lambda l: (l.name, l.id)) for t in task_ids]

    def clear_all(self) -> None:
        for loader in self._all:
            loader.clear_all()

    @staticmethod
    async def load_optional(loader: DataLoader, key: int | None) -> Any:
        return None if key is None else await loader.load(key)

    @staticmethod
    async def load_many(loader: DataLoader, keys: Iterable[int]) -> list[Any]:
        return await loader.load_many(list(keys))
