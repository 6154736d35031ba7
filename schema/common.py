"""Shared GraphQL building blocks: Node, connections, enums, the context accessor."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Generic, TypeVar

import strawberry

import models as enums
from resolvers.context import Context
from resolvers.ids import to_global_id
from resolvers.pagination import Page
from resolvers.rows import ROW_CLASSES

T = TypeVar("T")

# What every field resolver receives: `info.context` is the request's typed Context.
Info = strawberry.Info[Context, None]


def described_enum(
    cls: type[Enum], description: str, values: dict[str, str], name: str | None = None
) -> type[Enum]:
    """A model enum as a GraphQL enum with a description on every value. The model enums
    stay free of GraphQL; a value missing from `values` fails at import, not in review."""
    wrapped = strawberry.enum(cls, name=name, description=description)
    for value in wrapped.__strawberry_definition__.values:
        value.description = values[value.name]
    return wrapped


OrgRole = described_enum(
    enums.OrgRole,
    "Role in an organization. Owners and admins also hold the same role on every project "
    "of the organization.",
    {
        "OWNER": "Everything, including managing owners and the organization's API keys.",
        "ADMIN": "Invites and manages members (not owners) and API keys; admin of every project.",
        "MEMBER": "Sees the organization and its members, creates projects; sees only the "
        "projects they were added to.",
    },
)
ProjectRole = described_enum(
    enums.ProjectRole,
    "Role in a project; each role holds the rights of the ones below it.",
    {
        "OWNER": "Everything, including archiving the project and managing project owners.",
        "ADMIN": "Manages members, custom fields and the project's name; deletes tasks.",
        "EDITOR": "Creates, changes, moves and archives tasks; comments; creates labels.",
        "VIEWER": "Reads the project, its board, tasks and comments.",
    },
)
Plan = described_enum(
    enums.Plan,
    "Billing plan of an organization; it sets the rate limit, the daily NORA token quota and "
    "the limits in `Organization.usage`.",
    {
        "FREE": "The default plan: 5 members, 10 projects, 1,000 tasks per project; a user "
        "owns at most one free organization.",
        "PRO": "A larger rate limit and NORA quota; 100 members, unlimited projects, 100,000 "
        "tasks per project.",
        "ENTERPRISE": "The largest rate limit; NORA without a daily token quota; no limits.",
    },
)
TaskStatus = described_enum(
    enums.TaskStatus,
    "Board column of a task, in board order.",
    {
        "TODO": "Not started.",
        "INPROGRESS": "Being worked on.",
        "INREVIEW": "Done, waiting for review.",
        "DONE": "Finished.",
        "CANCELLED": "Will not be done.",
    },
)
TaskPriority = described_enum(
    enums.TaskPriority,
    "How urgent a task is; ordering by priority puts CRITICAL first when ascending.",
    {
        "CRITICAL": "Most urgent.",
        "HIGH": "Urgent.",
        "MEDIUM": "The default priority.",
        "LOW": "Least urgent.",
    },
)
CustomFieldType = described_enum(
    enums.CustomFieldType,
    "The value type of a custom task property, checked on every write.",
    {
        "TEXT": "A string of at most 2,000 characters.",
        "NUMBER": "A finite number; integers between -2^53 and 2^53, so JavaScript reads "
        "them exactly.",
        "DATE": "A date as YYYY-MM-DD.",
        "URL": "An http(s) URL.",
        "CHECKBOX": "true or false.",
        "SELECT": "One of the field's options.",
        "MULTI_SELECT": "A list of the field's options.",
        "USER": "A User ID.",
    },
)

# Relay pagination arguments, shared by every connection field.
First = Annotated[
    int | None,
    strawberry.argument(
        description="At most this many items from the start (after `after`): 0 to 100. "
        "Defaults to 50 when neither `first` nor `last` is given; not with `last`."
    ),
]
After = Annotated[
    str | None,
    strawberry.argument(
        description="A cursor (`endCursor` or an edge's `cursor`): items after it."
    ),
]
Last = Annotated[
    int | None,
    strawberry.argument(
        description="At most this many items from the end (before `before`): 0 to 100; not "
        "with `first`."
    ),
]
Before = Annotated[
    str | None,
    strawberry.argument(
        description="A cursor (`startCursor` or an edge's `cursor`): items before it."
    ),
]

# Arguments of both project lists (`Query.projects`, `Organization.projects`).
IncludeArchived = Annotated[
    bool, strawberry.argument(description="Include archived projects (left out by default).")
]
ProjectSearch = Annotated[
    str | None,
    strawberry.argument(description="Case-insensitive substring of the project name."),
]


def ctx(info: Info) -> Context:
    return info.context


NODE_ID_DESCRIPTION = "Globally unique and opaque; fetch the object again with `node(id:)`."


@strawberry.interface(description="An object with a globally unique, opaque ID.")
class Node:
    id: strawberry.ID = strawberry.field(description=NODE_ID_DESCRIPTION)


@strawberry.type(description="Where a page sits in its list (Relay).")
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="More items follow: ask again with `after: endCursor`."
    )
    has_previous_page: bool = strawberry.field(
        description="More items precede: ask again with `last` and `before: startCursor`."
    )
    start_cursor: str | None = strawberry.field(
        description="Cursor of the first item of the page; null on an empty page."
    )
    end_cursor: str | None = strawberry.field(
        description="Cursor of the last item of the page; null on an empty page."
    )


@strawberry.type(description="An item of a page with its cursor.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(
        description="Opaque keyset cursor: pass as `after` or `before`. Stable while rows "
        "are added or moved."
    )
    node: T = strawberry.field(description="The item.")


@strawberry.type(description="A page of a list (Relay cursor connection).")
class Connection(Generic[T]):
    def _edges(self):
        # Built when asked for: most clients read `nodes`, and a cursor per item costs an
        # encoding. (Declared here: schema/sharing.py knows the field as Connection.edges.)
        page = self._page
        return [Edge(cursor=c, node=n) for c, n in zip(page.cursors, page.items)]

    edges: list[Edge[T]] = strawberry.field(resolver=_edges, description="The page's items with their cursors.")
    nodes: list[T] = strawberry.field(description="The page's items, when cursors are not needed.")
    page_info: PageInfo = strawberry.field(description="Cursors and whether more pages exist.")
    _page: strawberry.Private[Page]

    @strawberry.field(description="Number of items in the whole list, ignoring pagination.")
    async def total_count(self) -> int:
        return await self._page.total_count()

    @classmethod
    def of(cls, page: Page) -> Connection:
        return cls(
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

    # Depends on the row alone: the compiled executor may reuse an object's answer.
    resolve.pcg_pure = True
    return strawberry.field(resolver=resolve, description=NODE_ID_DESCRIPTION)


def model_type_check(model):
    """`is_type_of` for types whose resolvers return Tortoise model instances (or the rows
    that stand for them in reads, resolvers/rows.py)."""
    kinds = (model, *ROW_CLASSES.get(model, ()))

    def is_type_of(cls, obj, info) -> bool:
        return isinstance(obj, (cls, *kinds))

    # The answer depends on the value's class alone (schema/execution keeps it per class).
    is_type_of.pcg_type_only = True
    return classmethod(is_type_of)
