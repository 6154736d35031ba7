"""Per-request dataloaders: one batched query per relation, whatever the list's length.

Built per HTTP request and per subscription event, never per websocket connection.
`load(None)` raises in aiodataloader, so nullable foreign keys go through `load_optional`.

Connections that hang off every item of a list (a column's tasks, a project's members, an
organization's projects) go through `Loaders.page` with a `PageSpec`: the first page of
every such list in the request comes from one windowed statement, totals included.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar, cast, overload

from aiodataloader import DataLoader
from tortoise.expressions import RawSQL
from tortoise.functions import Count
from tortoise.models import Model
from tortoise.queryset import QuerySet

from models import (
    ApiKey,
    Comment,
    CustomFieldDefinition,
    Label,
    Organization,
    OrganizationMember,
    Project,
    ProjectMember,
    Task,
    TaskLabel,
    User,
    orm,
)
from resolvers import lookups
from resolvers.errors import BadInput
from resolvers.pagination import (
    DEFAULT_PAGE,
    Order,
    Page,
    check_page_args,
    encode_cursor,
    paginate,
)
from resolvers.rows import Row
from resolvers.unit_of_work import writing

if TYPE_CHECKING:
    from resolvers.context import Context

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
M = TypeVar("M", bound=Model)

# A batch function: the values of the keys asked, in their order. A value that is an
# Exception fails its own key (aiodataloader rejects that key's future), not the batch.
Batch = Callable[[list[K]], Coroutine[Any, Any, Sequence[V | Exception]]]


class LoaderInWrite(RuntimeError):
    """A loader was asked for a value inside a unit of work's transaction."""


class _Loader(DataLoader[K, V]):
    """A DataLoader that refuses to load inside a write's transaction: its batch would run on
    another connection than the transaction's and, on SQLite (one connection), wait for the
    transaction forever. Read what a write needs with plain queries; loaders serve the
    payload after the commit (resolvers/unit_of_work.py)."""

    def load(self, key: K) -> asyncio.Future[V]:
        if writing():
            raise LoaderInWrite("a dataloader was used inside a write's transaction")
        return super().load(key)

    def load_many(self, keys: Iterable[K]) -> asyncio.Future[list[V]]:
        if writing():
            raise LoaderInWrite("a dataloader was used inside a write's transaction")
        return super().load_many(keys)


class SharedLoader(_Loader[K, V]):
    """A _Loader whose pending values survive the cancellation of one of their waiters.

    Every field that asks for the same key awaits the same future. When a non-null field
    fails, the executor cancels the siblings still running, and a task cancelled while it
    awaits a future cancels that future: every other field waiting for the key then raised
    CancelledError and the request died. A pending load is shielded per waiter instead.
    """

    def __init__(self, batch_load_fn: Batch[K, V]) -> None:
        # aiodataloader annotates batch_load_fn as returning values only, though it rejects
        # the key of a value that is an Exception (dispatch_queue_batch): Batch says so.
        super().__init__(batch_load_fn=batch_load_fn)  # type: ignore[arg-type]
        # Values primed by `Loaders.prime_many`: plain values, a future made only for a
        # caller that awaits one (most read them through `Loaders.ready`).
        self.held: dict[K, V] = {}

    def _load(self, key: K) -> asyncio.Future[V]:
        if writing():
            raise LoaderInWrite("a dataloader was used inside a write's transaction")
        held = self.held
        if held and key in held:
            future: asyncio.Future[V] = self.loop.create_future()
            future.set_result(held[key])
            return future
        return DataLoader.load(self, key)

    def load(self, key: K) -> asyncio.Future[V]:
        future = self._load(key)
        return future if future.done() else asyncio.shield(future)

    def load_many(self, keys: Iterable[K]) -> asyncio.Future[list[V]]:
        return asyncio.shield(asyncio.gather(*[self._load(key) for key in keys]))

    def clear(self, key: K) -> Self:
        self.held.pop(key, None)
        return super().clear(key)

    def clear_all(self) -> Self:
        self.held.clear()
        return super().clear_all()

    def prime(self, key: K, value: V) -> Self:
        if key in self.held:
            return self  # like a cached key: prime does not overwrite
        return super().prime(key, value)


class _Missing(Enum):
    """The sentinel of a key not held (a held value may be None)."""

    MISSING = 0


_MISSING = _Missing.MISSING


def _by_id(model: type[M]) -> Batch[int, M | None]:
    async def batch(ids: list[int]) -> list[M | None]:
        rows = {row.pk: row for row in await lookups.by_ids(model, ids)}
        return [rows.get(i) for i in ids]

    return batch


def _grouped(fetch: Callable[[list[int]], QuerySet[M]], key: Callable[[M], int]) -> Batch[int, list[M]]:
    async def batch(keys: list[int]) -> list[list[M]]:
        groups: dict[int, list[M]] = defaultdict(list)
        for row in await fetch(keys):
            groups[key(row)].append(row)
        return [groups.get(k, []) for k in keys]

    return batch


def _counted(queryset: Callable[[list[int]], QuerySet[M]], field: str) -> Batch[int, int]:
    async def batch(keys: list[int]) -> list[int]:
        rows = (
            await queryset(keys)
            .annotate(n=Count("id"))
            .group_by(field)
            .values_list(field, "n")
        )
        counts: dict[int, int] = dict(rows)
        return [counts.get(k, 0) for k in keys]

    return batch


async def _labels_by_task(task_ids: list[int]) -> list[list[Label]]:
    # One JOIN statement; a project has a handful of labels carried by hundreds of tasks,
    # so each label is built once and shared rather than once per link. Written out: building
    # it through the query builder cost more than running it (one parameter per task).
    db = orm.db_of(TaskLabel)
    columns = ", ".join(f'"l"."{column}"' for column in orm.columns_of(Label))
    ids = [int(t) for t in task_ids]
    marks = ", ".join(orm.placeholders(db.capabilities.dialect, len(ids)))
    sql = (
        f'SELECT "tl"."task_id" AS "_task_id", {columns} FROM "task_label" "tl"'
        ' JOIN "label" "l" ON "l"."id" = "tl"."label_id"'
        f' WHERE "tl"."task_id" IN ({marks})'
        ' ORDER BY "l"."name", "l"."id"'
    )
    labels: dict[int, Label] = {}
    groups: dict[int, list[Label]] = defaultdict(list)
    # The driver's rows read by column name (no dict per link: a board has hundreds).
    _, rows = await db.execute_query(sql, ids)
    for row in rows:
        label_id = row["id"]
        label = labels.get(label_id)
        if label is None:
            label = labels[label_id] = orm.from_row(Label, row)
        groups[row["_task_id"]].append(label)
    return [groups.get(t, []) for t in task_ids]


# -- first pages of many lists in one statement ------------------------------------------------


@dataclass(eq=False)
class CountedPage(Page[M]):
    """A page whose total is known (from the page's own statement) or batched by a loader."""

    total: int | None = None
    counter: Callable[[], Awaitable[int]] | None = None

    async def total_count(self) -> int:
        if self.total is not None:
            return self.total
        if self.counter is not None:
            return await self.counter()
        return await super().total_count()


def counted(page: Page[M], counter: Callable[[], Awaitable[int]]) -> CountedPage[M]:
    """`page` with its total taken from `counter` (a batched loader) instead of a COUNT."""
    return CountedPage(
        items=page.items,
        cursors=page.cursors,
        has_next_page=page.has_next_page,
        has_previous_page=page.has_previous_page,
        queryset=page.queryset,
        counter=counter,
    )


# One list of a PageSpec: the values of its `group` columns (an id, an enum member), each of
# its column's type, which only the spec's column names tell.
Group = tuple[Any, ...]
# A row of a raw statement as the driver returns it (asyncpg Record, sqlite3 Row), read by
# column name.
RawRow = Mapping[str, Any]

# Extra SELECT columns and JOINs over the kept rows, given the outer alias and the groups asked.
# `bind(values)` adds values to the statement's parameters and returns their placeholders; the
# joins may bind, the columns may not (SQLite numbers parameters by their place in the text,
# and the columns come before the inner query's).
Extras = Callable[[str, list[Group], Callable[[list[Any]], str]], tuple[str, str]]


@dataclass(frozen=True, eq=False)
class PageSpec(Generic[M]):
    """A connection that hangs off each item of a list.

    `group` names the columns that identify one list (e.g. project_id, status); `source`
    returns every row such lists may hold for a `variant` (the arguments that change what
    is listed, like a filter), already narrowed by the access layer; `order` is the list's
    order (or a function of the variant). `extras` adds computed columns to the kept rows
    and `on_rows` hands them to other loaders (e.g. priming counts). With `row`, the items
    of first pages are that row class's (resolvers/rows.py) instead of models: they stand in
    for the model in reads, and are typed as it.
    """

    group: tuple[str, ...]
    source: Callable[[Context, Hashable], Awaitable[QuerySet[M]]]
    order: Order | Callable[[Hashable], Order]
    extras: Extras | None = None
    on_rows: Callable[[Loaders, list[tuple[M, RawRow]]], None] | None = None
    row: type[Row] | None = None

    def order_for(self, variant: Hashable) -> Order:
        return self.order(variant) if callable(self.order) else self.order


def _column(model: type[Model], name: str) -> str:
    return orm.column_of(model, name)


async def _ranked_rows(
    qs: QuerySet[M], spec: PageSpec[M], order: Order, keep: int, groups: list[Group]
) -> list[tuple[M, RawRow]]:
    """The first `keep` rows of each group of `qs` in `order`, each with its group's total.

    ROW_NUMBER/COUNT OVER work the same on SQLite (>= 3.25) and PostgreSQL; the inner query
    is Tortoise's own (so access-layer filters and parameter style carry over unchanged).
    """
    model = qs.model
    table = orm.table_of(model)
    partition = ", ".join(f'"{table}"."{_column(model, c)}"' for c in spec.group)
    ordering = ", ".join(
        f'"{table}"."{_column(model, name)}" {"DESC" if desc else "ASC"}'
        for name, desc in order.with_tiebreak()
    )
    inner = qs.annotate(
        _rn=RawSQL(f"ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY {ordering})"),
        _total=RawSQL(f"COUNT(*) OVER (PARTITION BY {partition})"),
    )
    db, sql, inner_params = orm.sql_of(inner)
    params = list(inner_params)
    dialect = db.capabilities.dialect

    def bind(values: list[Any]) -> str:
        marks = orm.placeholders(dialect, len(values), start=len(params))
        params.extend(values)
        return ", ".join(marks)

    columns, joins = spec.extras("_p", groups, bind) if spec.extras else ("", "")
    statement = (
        f'SELECT "_p".*{columns} FROM ({sql}) "_p"{joins} '
        f'WHERE "_p"."_rn" <= {bind([int(keep)])} ORDER BY "_p"."_rn"'
    )
    # The driver's rows (asyncpg Records, sqlite3 Rows), read by column name: no dict each.
    _, rows = await db.execute_query(statement, params)
    if spec.row is not None:
        # The row class's instances stand in for the model's in reads (resolvers/rows.py:
        # its attributes, converted alike), which is how the page's readers take them.
        build = cast(Callable[[RawRow], M], spec.row.builder())
        return [(build(row), row) for row in rows]
    return [(orm.from_row(model, row), row) for row in rows]


class LazyCursors(Sequence[str]):
    """A page's cursors, each encoded when read: a board asks for its columns' endCursor,
    not for a cursor per task."""

    __slots__ = ("items", "fields")

    def __init__(self, items: Sequence[object], fields: tuple[tuple[str, bool], ...]) -> None:
        self.items = items
        self.fields = fields

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [encode_cursor(item, self.fields) for item in self.items[index]]
        return encode_cursor(self.items[index], self.fields)

    def __iter__(self) -> Iterator[str]:
        fields = self.fields
        return (encode_cursor(item, fields) for item in self.items)


def _page(rows: list[M], limit: int, total: int, order: Order) -> CountedPage[M]:
    fields = order.with_tiebreak()
    items = rows[:limit]
    return CountedPage(
        items=items,
        cursors=LazyCursors(items, fields),
        has_next_page=len(rows) > limit,
        has_previous_page=False,
        queryset=None,
        total=total,
    )


class _LoaderSlot(Generic[K, V]):
    """A `Loaders` attribute: the relation's loader, made on first use and kept on the
    instance (whose __dict__ then shadows this non-data descriptor)."""

    __slots__ = ("batch", "name")

    def __init__(self, batch: Batch[K, V]) -> None:
        self.batch = batch
        self.name = ""

    def __set_name__(self, owner: type[Loaders], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type[Loaders]) -> Self: ...

    @overload
    def __get__(self, obj: Loaders, owner: type[Loaders]) -> SharedLoader[K, V]: ...

    def __get__(self, obj: Loaders | None, owner: type[Loaders]) -> Self | SharedLoader[K, V]:
        if obj is None:
            return self
        loader = obj._make(self.batch)
        obj.__dict__[self.name] = loader
        return loader


# First pages: (group, limit, variant). Pages after a cursor or from the end: (group, variant,
# first, after, last, before). Totals: (group, variant).
FirstKey = tuple[Group, int, Hashable]
CursorKey = tuple[Group, Hashable, int | None, str | None, int | None, str | None]
CountKey = tuple[Group, Hashable]


class Loaders:
    # Batch functions are stateless: built once. Each request (or subscription event) gets its
    # own DataLoader per relation, created on first use — a websocket builds Loaders for every
    # event of every subscriber, and most events touch one or two relations at most.
    user = _LoaderSlot(_by_id(User))
    organization = _LoaderSlot(_by_id(Organization))
    project = _LoaderSlot(_by_id(Project))
    task = _LoaderSlot(_by_id(Task))
    api_key = _LoaderSlot(_by_id(ApiKey))
    labels_by_task = _LoaderSlot(_labels_by_task)
    comment_count_by_task = _LoaderSlot(_counted(lambda ids: Comment.filter(task_id__in=ids), "task_id"))
    subtask_count_by_task = _LoaderSlot(
        _counted(lambda ids: Task.filter(parent_id__in=ids, archived_at__isnull=True), "parent_id")
    )
    members_by_project = _LoaderSlot(
        _grouped(
            lambda ids: ProjectMember.filter(project_id__in=ids).order_by("created_at", "id"),
            lambda m: m.project_id,
        )
    )
    member_count_by_project = _LoaderSlot(
        _counted(lambda ids: ProjectMember.filter(project_id__in=ids), "project_id")
    )
    members_by_org = _LoaderSlot(
        _grouped(
            lambda ids: OrganizationMember.filter(organization_id__in=ids).order_by("created_at", "id"),
            lambda m: m.organization_id,
        )
    )
    open_task_count_by_project = _LoaderSlot(
        _counted(lambda ids: Task.filter(project_id__in=ids, archived_at__isnull=True), "project_id")
    )
    custom_fields_by_project = _LoaderSlot(
        _grouped(
            lambda ids: CustomFieldDefinition.filter(project_id__in=ids).order_by("id"),
            lambda d: d.project_id,
        )
    )
    labels_by_project = _LoaderSlot(
        _grouped(
            lambda ids: Label.filter(project_id__in=ids).order_by("name", "id"),
            lambda label: label.project_id,
        )
    )

    def __init__(self) -> None:
        self._all: list[SharedLoader[Any, Any]] = []
        # Per spec (of any model): a loader's pages are of its spec's model.
        self._first: dict[PageSpec[Any], SharedLoader[FirstKey, CountedPage[Any]]] = {}
        self._cursor: dict[PageSpec[Any], SharedLoader[CursorKey, CountedPage[Any]]] = {}
        self._count: dict[PageSpec[Any], SharedLoader[CountKey, int]] = {}

    def _make(self, batch: Batch[K, V]) -> SharedLoader[K, V]:
        loader = SharedLoader(batch_load_fn=batch)
        self._all.append(loader)
        return loader

    def clear_all(self) -> None:
        for loader in self._all:
            loader.clear_all()

    def prime(self, loader: SharedLoader[K, V], key: K, value: V) -> None:
        """Set `key` to `value`, replacing what the cache held (aiodataloader's prime keeps it)."""
        loader.clear(key).prime(key, value)

    @staticmethod
    def prime_many(loader: SharedLoader[K, V], items: Iterable[tuple[K, V]]) -> None:
        """`prime` for many keys at once (plain values, not errors), replacing what the cache
        held, without a future each (see SharedLoader.held)."""
        cache = loader._cache
        held = loader.held
        for key, value in items:
            if cache:
                cache.pop(key, None)
            held[key] = value

    @staticmethod
    def ready(loader: SharedLoader[K, V], key: K | None) -> V | Awaitable[V] | None:
        """The value if this request already holds it, else an awaitable of it (None for None).

        Lets relation fields be plain functions: once a list resolver has warmed the loader
        (or a count was primed), resolving a field of 500 items creates no coroutine or task.
        """
        if key is None:
            return None
        # What the request holds first: a dict lookup, not a load() call.
        held = loader.held
        if held:
            value = held.get(key, _MISSING)
            if value is not _MISSING:
                return value
        future = loader._cache.get(key)
        if future is None or not future.done():
            future = loader.load(key)
        return future.result() if future.done() else future

    async def warm_tasks(self, tasks: list[Task], relations: Iterable[str]) -> None:
        """Load the asked relations of a page of tasks now, all pages of the tick together,
        and hand each task its values (`preload`): every task's relation fields then read
        them without a loader call, a future or a task (see `ready` for other paths)."""
        relations = set(relations)
        waits: list[Awaitable[object]] = []
        labels: asyncio.Future[list[list[Label]]] | None = None
        users: asyncio.Future[list[User | None]] | None = None
        if "labels" in relations:
            labels = self.labels_by_task.load_many([t.id for t in tasks])
            waits.append(labels)
        wanted: set[int] = set()
        if "assignee" in relations:
            wanted |= {t.assignee_id for t in tasks if t.assignee_id is not None}
        if "created_by" in relations:
            wanted |= {t.created_by_id for t in tasks}
        people: list[int] = []
        if wanted:
            people = sorted(wanted)
            users = self.user.load_many(people)
            waits.append(users)
        if not waits:
            return
        await asyncio.gather(*waits)
        if labels is not None:
            for task, value in zip(tasks, labels.result()):
                preload(task, "labels", value)
        if users is not None:
            by_id = dict(zip(people, users.result()))
            assignee, created_by = "assignee" in relations, "created_by" in relations
            for task in tasks:
                if assignee:
                    preload(task, "assignee", None if task.assignee_id is None else by_id[task.assignee_id])
                if created_by:
                    preload(task, "created_by", by_id[task.created_by_id])

    @staticmethod
    async def load_optional(loader: SharedLoader[int, V], key: int | None) -> V | None:
        return None if key is None else await loader.load(key)

    # -- lists hanging off list items -----------------------------------------------------------

    async def page(
        self,
        ctx: Context,
        spec: PageSpec[M],
        group: Group,
        *,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        variant: Hashable = None,
    ) -> CountedPage[M]:
        """One page of the list `group` of `spec`.

        First pages of every list of `spec` asked for in the same tick (e.g. the five columns
        of every board in the response) come from one windowed statement, totals included.
        A page after a cursor or from the end costs its own statement; its total is still
        batched, and so is whatever its items load next.
        """
        check_page_args(first, last)
        group = tuple(group)
        if not after and not before and last is None:
            limit = DEFAULT_PAGE if first is None else first
            return await self._first_loader(ctx, spec).load((group, limit, variant))
        cursor = self._cursor_loader(ctx, spec)
        return await cursor.load((group, variant, first, after, last, before))

    # Loaders live as long as one request (or one subscription event), and so does ctx.

    def _first_loader(self, ctx: Context, spec: PageSpec[M]) -> SharedLoader[FirstKey, CountedPage[M]]:
        loader = self._first.get(spec)
        if loader is None:
            loader = self._first[spec] = self._make(self._first_pages(ctx, spec))
        return loader

    def _cursor_loader(self, ctx: Context, spec: PageSpec[M]) -> SharedLoader[CursorKey, CountedPage[M]]:
        loader = self._cursor.get(spec)
        if loader is None:
            loader = self._cursor[spec] = self._make(self._cursor_pages(ctx, spec))
        return loader

    def _count_loader(self, ctx: Context, spec: PageSpec[M]) -> SharedLoader[CountKey, int]:
        loader = self._count.get(spec)
        if loader is None:
            loader = self._count[spec] = self._make(self._totals(ctx, spec))
        return loader

    def _first_pages(self, ctx: Context, spec: PageSpec[M]) -> Batch[FirstKey, CountedPage[M]]:
        async def batch(keys: list[FirstKey]) -> list[CountedPage[M]]:
            pages: dict[FirstKey, CountedPage[M]] = {}
            for variant, variant_keys in _by_variant(keys, 2).items():
                groups = sorted({k[0] for k in variant_keys})
                qs = _in_groups(await spec.source(ctx, variant), spec, groups)
                order = spec.order_for(variant)
                keep = max(k[1] for k in variant_keys) + 1  # one more shows a next page
                rows = await _ranked_rows(qs, spec, order, keep, groups)
                if spec.on_rows:
                    spec.on_rows(self, rows)
                grouped: dict[Group, list[M]] = defaultdict(list)
                totals: dict[Group, int] = {}
                # A group's values as the database holds them: an enum column's value, as
                # _key gives it for the groups asked.
                columns = [_column(qs.model, name) for name in spec.group]
                for item, raw in rows:
                    g = tuple([raw[c] for c in columns])
                    grouped[g].append(item)
                    totals[g] = raw["_total"]
                for g, limit, _ in variant_keys:
                    pages[(g, limit, variant)] = _page(
                        grouped.get(_key(g), []), limit, totals.get(_key(g), 0), order
                    )
            return [pages[k] for k in keys]

        return batch

    def _cursor_pages(self, ctx: Context, spec: PageSpec[M]) -> Batch[CursorKey, CountedPage[M]]:
        async def one(
            group: Group,
            variant: Hashable,
            first: int | None,
            after: str | None,
            last: int | None,
            before: str | None,
        ) -> CountedPage[M] | Exception:
            qs = (await spec.source(ctx, variant)).filter(**dict(zip(spec.group, group)))
            try:
                page = await paginate(
                    qs, spec.order_for(variant), first=first, after=after, last=last, before=before
                )
            except BadInput as error:  # a bad cursor fails its own list, not the batch
                return error
            totals = self._count_loader(ctx, spec)
            return counted(page, lambda: totals.load((group, variant)))

        async def batch(keys: list[CursorKey]) -> list[CountedPage[M] | Exception]:
            return [await one(*key) for key in keys]

        return batch

    def _totals(self, ctx: Context, spec: PageSpec[M]) -> Batch[CountKey, int]:
        async def batch(keys: list[CountKey]) -> list[int]:
            counts: dict[CountKey, int] = {}
            for variant, variant_keys in _by_variant(keys, 1).items():
                groups = sorted({k[0] for k in variant_keys})
                qs = _in_groups(await spec.source(ctx, variant), spec, groups)
                rows = (
                    await qs.annotate(_n=Count("id"))
                    .group_by(*spec.group)
                    .values_list(*spec.group, "_n")
                )
                for *g, n in rows:
                    counts[(_key(g), variant)] = n
            return [counts.get((_key(g), v), 0) for g, v in keys]

        return batch


KeyTuple = TypeVar("KeyTuple", bound=tuple[Any, ...])


def _key(values: Iterable[Any]) -> Group:
    """A group's values as plain values, whether a side holds an enum or its value."""
    return tuple(getattr(v, "value", v) for v in values)


def _by_variant(keys: list[KeyTuple], at: int) -> dict[Hashable, list[KeyTuple]]:
    out: dict[Hashable, list[KeyTuple]] = defaultdict(list)
    for key in keys:
        out[key[at]].append(key)
    return out


def _in_groups(qs: QuerySet[M], spec: PageSpec[M], groups: list[Group]) -> QuerySet[M]:
    # Column by column: a superset of the groups asked (their cross product) is harmless,
    # the rows of groups nobody asked for are simply not returned.
    for i, name in enumerate(spec.group):
        qs = qs.filter(**{f"{name}__in": sorted({g[i] for g in groups})})
    return qs


# -- task lists: counts that ride along with the rows ------------------------------------------


def task_count_columns(
    alias: str, groups: list[Group], bind: Callable[[list[Any]], str]
) -> tuple[str, str]:
    """Comment and open-subtask counts of the kept task rows, for `PageSpec.extras`.

    Groups start with the project id. Subtasks always live in their parent's project, so
    counting over those projects' tasks (indexed by project) finds them all; task.parent_id
    itself has no index, so a per-row correlated count would scan the table.
    """
    projects = bind(sorted({int(g[0]) for g in groups}) or [0])
    columns = (
        f', (SELECT COUNT(*) FROM "task_comment" "_c" WHERE "_c"."task_id" = "{alias}"."id")'
        f' "_comment_count", COALESCE("_s"."n", 0) "_subtask_count"'
    )
    joins = (
        ' LEFT JOIN (SELECT "parent_id", COUNT(*) "n" FROM "task"'
        f' WHERE "project_id" IN ({projects}) AND "parent_id" IS NOT NULL'
        ' AND "archived_at" IS NULL GROUP BY "parent_id") "_s"'
        f' ON "_s"."parent_id" = "{alias}"."id"'
    )
    return columns, joins


def prime_task_counts(loaders: Loaders, rows: list[tuple[Task, RawRow]]) -> None:
    comments = [(task.id, raw["_comment_count"]) for task, raw in rows]
    subtasks = [(task.id, raw["_subtask_count"]) for task, raw in rows]
    loaders.prime_many(loaders.comment_count_by_task, comments)
    loaders.prime_many(loaders.subtask_count_by_task, subtasks)
    for task, raw in rows:
        values = task.__dict__
        values[PRELOADED + "comment_count"] = raw["_comment_count"]
        values[PRELOADED + "subtask_count"] = raw["_subtask_count"]


# -- values handed to the items of a list ---------------------------------------------------------

PRELOADED = "_pcg_ready_"


def preload(obj: Any, name: str, value: Any) -> None:
    """Hand `obj` the value of its relation `name` that this request loaded for it (the same
    object its loader holds). The compiled executor reads it instead of calling the field's
    resolver (schema/execution/preloaded.py); graphql-core calls the resolver, which finds
    the same value in the loader. Lives as long as `obj`, which is built per request."""
    obj.__dict__[PRELOADED + name] = value
