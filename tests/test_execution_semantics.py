"""The compiled executor against graphql-core on the cases the real schema rarely reaches.

A small Strawberry schema whose resolvers misbehave on purpose: null for non-null fields at
every depth, errors raised sync and async (in different completion orders), lists that are
not lists, values of the wrong type for an object or an abstract type, leaves that cannot be
serialized, `@skip`/`@include` on variables, fragments, aliases, and mutations run serially.
Each document runs through both executors (the same ExecutionContext class as the app, with
compiled execution on and off); data and errors (message, path, locations) must be equal.
"""

from __future__ import annotations

import asyncio
import enum
from types import SimpleNamespace

import pytest
import strawberry
from strawberry.scalars import JSON

from schema import execution
from schema.root import ExecutionContext


@strawberry.enum
class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Item(Named):
    id: int
    color: Color = Color.RED
    tags: list[str] = strawberry.field(default_factory=lambda: ["a", "b"])

    @strawberry.field
    def big(self) -> int:
        return 2**40 if self.id == 2 else self.id

    @strawberry.field
    def required(self) -> str:
        return None if self.id == 2 else "ok"  # type: ignore[return-value]

    @strawberry.field
    def optional_required(self) -> str | None:
        return None

    @strawberry.field
    async def later(self, delay: float = 0.0) -> int:
        await asyncio.sleep(delay)
        return self.id

    @strawberry.field
    async def fails_later(self, delay: float = 0.0) -> int | None:
        await asyncio.sleep(delay)
        raise ValueError(f"late {self.id}")

    @strawberry.field
    async def must_later(self, delay: float = 0.0) -> int:
        await asyncio.sleep(delay)
        if self.id == 3:
            raise ValueError("must")
        return self.id

    @strawberry.field
    def fails(self) -> int | None:
        raise ValueError(f"now {self.id}")

    @strawberry.field
    def bad_color(self) -> Color:
        return "purple"  # type: ignore[return-value]

    @strawberry.field
    def children(self, n: int = 2) -> list[Item]:
        return [Item(id=self.id * 10 + i, name=f"c{i}") for i in range(n)]

    @strawberry.field
    def holes(self) -> list[Item | None]:
        return [Item(id=1, name="x"), None, Item(id=2, name="y")]

    @strawberry.field
    def strict_holes(self) -> list[Item]:
        return [Item(id=1, name="x"), None]  # type: ignore[list-item]

    @strawberry.field
    async def async_children(self) -> list[Item]:
        await asyncio.sleep(0)
        return [Item(id=2, name="p"), Item(id=3, name="q")]

    @strawberry.field
    def future_items(self) -> list[int | None]:
        loop = asyncio.get_running_loop()
        done, failed = loop.create_future(), loop.create_future()
        done.set_result(5)
        loop.call_soon(failed.set_exception, ValueError("future failed"))
        return [1, done, failed]  # type: ignore[list-item]

    @strawberry.field
    def data(self) -> JSON:
        return {"id": self.id, "nested": [1, 2]}


@strawberry.type
class Other(Named):
    size: int = 1


@strawberry.type
class Query:
    @strawberry.field
    def items(self, n: int = 3) -> list[Item]:
        return [Item(id=i, name=f"i{i}") for i in range(1, n + 1)]

    @strawberry.field
    def item(self, id: int) -> Item | None:
        return Item(id=id, name=f"i{id}")

    @strawberry.field
    def strict_item(self) -> Item:
        return Item(id=2, name="two")

    @strawberry.field
    def named(self, kind: str) -> Named | None:
        if kind == "item":
            return Item(id=1, name="n")
        if kind == "other":
            return Other(name="o")
        return {"name": "a dict"}  # type: ignore[return-value]

    @strawberry.field
    def wrong(self) -> Item | None:
        return Other(name="not an item")  # type: ignore[return-value]

    @strawberry.field
    def not_a_list(self) -> list[int] | None:
        return 5  # type: ignore[return-value]

    @strawberry.field
    def strict_null(self) -> int:
        return None  # type: ignore[return-value]

    @strawberry.field
    async def slow_strict(self) -> Item:
        await asyncio.sleep(0.01)
        return Item(id=2, name="slow")


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def bump(self, by: int) -> Item:
        await asyncio.sleep(0)
        return Item(id=by, name="bumped")

    @strawberry.mutation
    def refuse(self) -> Item:
        raise ValueError("refused")


schema = strawberry.Schema(query=Query, mutation=Mutation, types=[Other], execution_context_class=ExecutionContext)

DOCUMENTS = [
    ("{ items { id name color tags big } }", None),
    ("{ items { id required } }", None),
    ("{ item(id: 2) { id required } other: item(id: 1) { required } }", None),
    ("{ strictItem { required } }", None),
    ("{ items(n: 4) { id later(delay: 0.01) failsLater(delay: 0.002) fails mustLater } }", None),
    ("{ items(n: 4) { id mustLater(delay: 0.005) failsLater } first: item(id: 1) { failsLater } }", None),
    ("{ items { id badColor } }", None),
    ("{ item(id: 1) { holes { id required } strictHoles { id } } }", None),
    ("{ item(id: 1) { asyncChildren { id required mustLater } } }", None),
    ("{ item(id: 1) { futureItems } }", None),
    ("{ item(id: 2) { children(n: 3) { id big children(n: 1) { id required } } } }", None),
    ("{ item(id: 1) { data optionalRequired } }", None),
    ("{ a: named(kind: \"item\") { __typename name ... on Item { id } }"
     " b: named(kind: \"other\") { __typename ... on Other { size } }"
     " c: named(kind: \"dict\") { name } }", None),
    ("{ wrong { id } notAList strictNull }", None),
    ("{ wrong { id } notAList }", None),
    ("{ slowStrict { id required } items { id } }", None),
    ("query($s: Boolean!, $i: Boolean!) { items { id name @skip(if: $s) color @include(if: $i)"
     " ... on Item @include(if: $s) { big } } }", {"s": True, "i": False}),
    ("query($s: Boolean!, $i: Boolean!) { items { id name @skip(if: $s) color @include(if: $i)"
     " ... on Item @include(if: $s) { big } } }", {"s": False, "i": True}),
    ("fragment F on Item { id later } query Q { items { ...F name ...F } x: item(id: 3) { ...F } }", None),
    ("{ items { __typename id } __typename }", None),
    ("{ a: named(kind: \"item\") { ... on Other { size } } b: named(kind: \"other\") { ... on Item { id } } }", None),
    ("mutation { a: bump(by: 1) { id } b: refuse { id } c: bump(by: 3) { id } }", None),
    ("mutation { a: bump(by: 1) { id later(delay: 0.001) } b: bump(by: 2) { required } }", None),
]


async def _run(query: str, variables, compiled: bool) -> dict:
    context = SimpleNamespace(settings=SimpleNamespace(compiled_execution=compiled))
    result = await schema.execute(query, variable_values=variables, context_value=context)
    return {"data": result.data, "errors": [e.formatted for e in result.errors or ()]}


@pytest.mark.parametrize(("query", "variables"), DOCUMENTS)
async def test_same_answer_both_ways(query, variables):
    before = execution.stats()["compiled"]
    core = await _run(query, variables, False)
    compiled = await _run(query, variables, True)
    assert compiled == core
    assert execution.stats()["compiled"] == before + 1


async def test_the_cases_above_do_fail_as_intended():
    """The documents above exercise what they claim (a guard against a schema that silently
    stopped misbehaving)."""
    answer = await _run("{ item(id: 2) { id required } strictNull }", None, True)
    assert answer["data"] is None
    assert [e["message"] for e in answer["errors"]] == [
        "Cannot return null for non-nullable field Item.required.",
        "Cannot return null for non-nullable field Query.strictNull.",
    ]
    answer = await _run("{ items(n: 4) { id failsLater(delay: 0.002) fails } }", None, True)
    assert [e["path"] for e in answer["errors"]][:2] == [["items", 0, "fails"], ["items", 1, "fails"]]
