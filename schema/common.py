"""Shared GraphQL building blocks: Node, connections, enums, the context accessor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

import strawberry
from strawberry.types import Info

from models import enums
from resolvers.ids import to_global_id
from resolvers.pagination import Page

if TYPE_CHECKING:
    from server.context import Context

T = TypeVar("T")

OrgRole = strawberry.enum(enums.OrgRole, description="Role in an organization.")
ProjectRole = strawberry.enum(enums.ProjectRole, description="Role in a project.")
Plan = strawberry.enum(enums.Plan, description="Billing plan of an organization.")
TaskStatus = strawberry.enum(
    enums.TaskStatus, description="Board column of a task, in board order."
)
TaskPriority = strawberry.enum(enums.TaskPriority)
CustomFieldType = strawberry.enum(enums.CustomFieldType)


def ctx(info: Info) -> Context:
    return info.context


@strawberry.interface(description="An object with a globally unique, opaque ID.")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    nodes: list[T]
    page_info: PageInfo
    _page: strawberry.Private[Page]

    @strawberry.field(description="Number of items in the whole list, ignoring pagination.")
    async def total_count(self) -> int:
        return await self._page.total_count()

    @classmethod
    def of(cls, page: Page) -> Connection:
        return cls(
            edges=[Edge(cursor=c, node=n) for c, n in zip(page.cursors, page.items)],
            nodes=page.items,
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=page.has_previous_page,
                start_cursor=page.cursors[0] if page.cursors else None,
                end_cursor=page.cursors[-1] if page.cursors else None,
            ),
            _page=page,
        )


def node_id(type_name: str):
    """The `id` field of a Node type whose resolvers return model instances."""

    def resolve(root) -> strawberry.ID:
        return strawberry.ID(to_global_id(type_name, root.id))

    return strawberry.field(resolver=resolve)


def model_type_check(model):
    """`is_type_of` for types whose resolvers return Tortoise model instances."""

    def is_type_of(cls, obj, info) -> bool:
        return isinstance(obj, (cls, model))

    return classmethod(is_type_of)
