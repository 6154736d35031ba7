"""What a document may ask for, decided before any resolver runs.

One walk over the operation computes its static cost, depth, aliases per selection set and
root fields, and checks the page-size arguments; each fragment is walked once per page
context (memoized), so the walk is linear in the document however often fragments are spread.
The parser's token limit and the directive count bound the document itself.

Cost (GitHub/Shopify style, documented in the README's Security section):
- every object returned costs 1 (edges and PageInfo are wrappers and cost 0);
- a list multiplies the cost of each item by its size: a connection's `nodes`/`edges` by the
  page size (`first`/`last`, variables resolved, 50 when absent), `nodes(ids)` by the number of
  ids, other lists by a declared bound (LIST_BOUNDS, or DEFAULT_LIST_BOUND);
- `totalCount` costs 1 (a COUNT statement); a mutation field costs MUTATION_COST more;
- introspection objects cost INTROSPECTION_WEIGHT each (they are built in memory, no SQL),
  with lists sized after this schema's own averages.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Any

from graphql import (
    ArgumentNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    ObjectFieldNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
    Visitor,
    is_composite_type,
    is_input_object_type,
    is_leaf_type,
    value_from_ast_untyped,
    visit,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension

from resolvers.documents import DocumentNotTrusted
from resolvers.nodes import MAX_NODES
from resolvers.pagination import DEFAULT_PAGE, MAX_PAGE
from schema import runtime


@dataclass(frozen=True)
class Limits:
    """Per-document limits; every one is a setting (server/settings.py, README Security)."""

    max_tokens: int = 5_000
    max_document_chars: int = 100_000
    max_depth: int = 12
    max_aliases: int = 15
    max_directives: int = 50
    max_root_fields: int = 20
    max_cost: int = 10_000


MUTATION_COST = 10
INTROSPECTION_WEIGHT = 0.1
DEFAULT_LIST_BOUND = 10
# Lists that are not connections: their longest plausible length.
LIST_BOUNDS = {
    ("Board", "columns"): 5,  # one per status, exactly
    ("Task", "labels"): 10,  # at most 50 (resolvers/task/tasks.py); ten is already generous
    ("Project", "labels"): 50,
    ("Project", "customFields"): 50,
    ("Viewer", "organizations"): 20,
}
LEAF_COSTS = {"totalCount": 1}


class LimitError(GraphQLError):
    """A document rejected before execution; `code` and figures are in `extensions`."""

    def __init__(self, message: str, code: str, node=None, **figures: Any) -> None:
        super().__init__(message, nodes=node, extensions={"code": code, **figures})


def _unwrap(type_: Any) -> tuple[Any, bool]:
    is_list = False
    while isinstance(type_, (GraphQLList, GraphQLNonNull)):
        is_list = is_list or isinstance(type_, GraphQLList)
        type_ = type_.of_type
    return type_, is_list


def _wrapper_type(name: str) -> bool:
    return name.endswith("Edge") or name == "PageInfo"


def _introspection_bounds(schema: GraphQLSchema) -> dict[tuple[str, str], float]:
    """List sizes of introspection fields: this schema's averages, so the estimate of a full
    introspection is close to the number of objects it really returns."""
    named = [t for t in schema.type_map.values()]
    with_fields = [t for t in named if hasattr(t, "fields") and not is_input_object_type(t)]
    inputs = [t for t in named if is_input_object_type(t)]
    enums = [t for t in named if hasattr(t, "values")]
    all_fields = [f for t in with_fields for f in t.fields.values()]

    def avg(total: int, count: int) -> float:
        return max(1.0, total / max(1, count))

    return {
        ("__Schema", "types"): len(named),
        ("__Schema", "directives"): len(schema.directives),
        ("__Type", "fields"): avg(len(all_fields), len(with_fields)),
        ("__Type", "inputFields"): avg(sum(len(t.fields) for t in inputs), len(inputs)),
        ("__Type", "enumValues"): avg(sum(len(t.values) for t in enums), len(enums)),
        ("__Type", "interfaces"): 2,
        ("__Type", "possibleTypes"): 5,
        ("__Field", "args"): avg(sum(len(f.args) for f in all_fields), len(all_fields)),
        ("__Directive", "args"): avg(sum(len(d.args) for d in schema.directives), len(schema.directives)),
        ("__Directive", "locations"): 1,
    }


_BOUNDS_CACHE: dict[int, dict] = {}


@dataclass
class _Stats:
    cost: float = 0.0
    depth: int = 0
    aliases: int = 0
    fields: int = 0


class Analysis:
    """The walk of one operation with its variables. `run()` returns the cost or raises."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: dict[str, Any] | None,
        limits: Limits,
    ) -> None:
        self.schema = schema
        self.operation = operation
        self.variables = variables or {}
        self.limits = limits
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.memo: dict[tuple[str, int | None], _Stats] = {}
        self.active: set[str] = set()
        self.defaults = {
            v.variable.name.value: value_from_ast_untyped(v.default_value)
            for v in operation.variable_definitions or ()
            if v.default_value is not None
        }
        key = id(schema)
        if key not in _BOUNDS_CACHE:
            _BOUNDS_CACHE[key] = _introspection_bounds(schema)
        self.introspection_bounds = _BOUNDS_CACHE[key]

    def run(self) -> int:
        root = self.schema.get_root_type(self.operation.operation)
        if root is None:
            return 1  # validation reports the missing root type
        stats = self.selection_set(self.operation.selection_set, root, None)
        if stats.fields > self.limits.max_root_fields:
            raise LimitError(
                f"The operation selects {stats.fields} root fields; at most "
                f"{self.limits.max_root_fields} are allowed",
                "ROOT_FIELD_LIMIT_EXCEEDED", self.operation,
                rootFields=stats.fields, maxRootFields=self.limits.max_root_fields,
            )
        self.check_aliases(stats, self.operation)
        if stats.depth > self.limits.max_depth:
            raise LimitError(
                f"The operation is nested {stats.depth} levels deep; at most "
                f"{self.limits.max_depth} are allowed",
                "DEPTH_LIMIT_EXCEEDED", self.operation,
                depth=stats.depth, maxDepth=self.limits.max_depth,
            )
        cost = max(1, math.ceil(stats.cost))
        if cost > self.limits.max_cost:
            raise LimitError(
                f"The operation costs {cost} points; at most {self.limits.max_cost} are allowed "
                "(ask for smaller pages or fewer nested connections)",
                "MAX_COST_EXCEEDED", self.operation,
                cost=cost, maxCost=self.limits.max_cost,
            )
        return cost

    def check_aliases(self, stats: _Stats, node) -> None:
        if stats.aliases > self.limits.max_aliases:
            raise LimitError(
                f"A selection set holds {stats.aliases} aliases; at most "
                f"{self.limits.max_aliases} are allowed",
                "ALIAS_LIMIT_EXCEEDED", node,
                aliases=stats.aliases, maxAliases=self.limits.max_aliases,
            )

    def selection_set(self, selection_set: SelectionSetNode, parent: Any, page: int | None) -> _Stats:
        total = _Stats()
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                cost, depth = self.field(selection, parent, page)
                part = _Stats(cost, depth, 1 if selection.alias else 0, 1)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                if target is None:
                    continue
                part = self.selection_set(selection.selection_set, target, page)
            elif isinstance(selection, FragmentSpreadNode):
                part = self.fragment(selection.name.value, page)
            else:  # pragma: no cover - the spec has no other selection
                continue
            total.cost += part.cost
            total.depth = max(total.depth, part.depth)
            total.aliases += part.aliases
            total.fields += part.fields
        return total

    def fragment(self, name: str, page: int | None) -> _Stats:
        key = (name, page)
        stats = self.memo.get(key)
        if stats is None:
            fragment = self.fragments.get(name)
            target = fragment and self.schema.get_type(fragment.type_condition.name.value)
            # Unknown fragments, types and cycles count nothing: validation reports them.
            if target is None or name in self.active:
                return _Stats()
            self.active.add(name)
            stats = self.memo[key] = self.selection_set(fragment.selection_set, target, page)
            self.active.discard(name)
        return stats

    def field(self, node: FieldNode, parent: Any, page: int | None) -> tuple[float, int]:
        name = node.name.value
        if name == "__typename":
            return 0.0, 0
        if name == "__schema":
            definition = SchemaMetaFieldDef
        elif name == "__type":
            definition = TypeMetaFieldDef
        else:
            definition = getattr(parent, "fields", {}).get(name)
            if definition is None:
                return 0.0, 0  # validation reports the unknown field
        named, is_list = _unwrap(definition.type)
        introspection = named.name.startswith("__")
        args = self.arguments(node) if node.arguments else {}
        self.check_arguments(node, args)
        if is_leaf_type(named) or not is_composite_type(named) or node.selection_set is None:
            return float(LEAF_COSTS.get(name, 0)), 0
        child_page = self.page_size(args) if named.name.endswith("Connection") else None
        sub = self.selection_set(node.selection_set, named, child_page)
        self.check_aliases(sub, node)
        weight = INTROSPECTION_WEIGHT if introspection else (0.0 if _wrapper_type(named.name) else 1.0)
        size = self.list_size(parent.name, name, args, page) if is_list else 1
        cost = size * (weight + sub.cost)
        if parent is self.schema.mutation_type:
            cost += MUTATION_COST
        # Introspection is bounded by its cost, not its depth (type references nest deep).
        depth = 0 if name.startswith("__") else 1 + sub.depth
        return cost, depth

    def list_size(self, parent: str, name: str, args: dict, page: int | None) -> float:
        if parent.endswith("Connection") and name in ("nodes", "edges"):
            return page if page is not None else DEFAULT_PAGE
        if parent == "Query" and name == "nodes":
            ids = args.get("ids")
            return len(ids) if isinstance(ids, list) else 1
        if parent.startswith("__"):
            return self.introspection_bounds.get((parent, name), DEFAULT_LIST_BOUND)
        return LIST_BOUNDS.get((parent, name), DEFAULT_LIST_BOUND)

    @staticmethod
    def page_size(args: dict) -> int:
        for name in ("first", "last"):
            value = args.get(name)
            if _is_int(value):
                return value
        return DEFAULT_PAGE

    def check_arguments(self, node: FieldNode, args: dict) -> None:
        """Argument errors knowable before execution: they must reject the document, not
        surface after a mutation has committed."""
        given = [n for n in ("first", "last") if args.get(n) is not None]
        for name in given:
            value = args[name]
            if _is_int(value) and not 0 <= value <= MAX_PAGE:
                raise _bad_input(f"`{name}` must be between 0 and {MAX_PAGE}", name, node)
        if len(given) == 2:
            raise _bad_input("Pass `first` or `last`, not both", "last", node)
        ids = args.get("ids")
        if node.name.value == "nodes" and isinstance(ids, list) and len(ids) > MAX_NODES:
            raise _bad_input(f"At most {MAX_NODES} ids at once", "ids", node)

    def arguments(self, node: FieldNode) -> dict[str, Any]:
        return {arg.name.value: self.value(arg.value) for arg in node.arguments}

    def value(self, node: Any) -> Any:
        if isinstance(node, VariableNode):
            name = node.name.value
            return self.variables.get(name, self.defaults.get(name))
        if isinstance(node, ListValueNode):
            return [self.value(v) for v in node.values]
        if isinstance(node, ObjectValueNode):
            return {f.name.value: self.value(f.value) for f in node.fields}
        return value_from_ast_untyped(node)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bad_input(message: str, field: str, node) -> LimitError:
    return LimitError(message, "BAD_USER_INPUT", node, field=field)


class _DocumentCounter(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.directives = 0
        self.nul_field: str | None = None

    def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
        self.directives += 1

    def enter_string_value(self, node: StringValueNode, key, parent, path, ancestors) -> None:
        if self.nul_field is None and "\x00" in node.value:
            named = [a for a in (*ancestors, parent) if isinstance(a, (ArgumentNode, ObjectFieldNode))]
            self.nul_field = named[-1].name.value if named else "query"


def _nul_field(value: Any, key: str = "variables") -> str | None:
    """The name of the innermost key holding a string with a NUL character, if any."""
    stack = [(key, value)]
    while stack:
        key, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return key
        elif isinstance(item, dict):
            stack.extend((str(k), k) for k in item)
            stack.extend((str(k), v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((key, v) for v in item)
    return None


# id(document) -> (weak reference to it, its counts). Not keyed by the document itself: AST
# nodes hash their whole tree, every time.
_COUNTED: dict[int, tuple[weakref.ref, _DocumentCounter]] = {}


def _counted(document: DocumentNode) -> _DocumentCounter:
    """The document's directives and NUL strings, counted once per parsed document (the
    parser cache hands a repeated text the same document)."""
    key = id(document)
    entry = _COUNTED.get(key)
    if entry is not None and entry[0]() is document:
        return entry[1]
    counter = _DocumentCounter()
    visit(document, counter)
    _COUNTED[key] = (weakref.ref(document, lambda _ref: _COUNTED.pop(key, None)), counter)
    return counter


def check_document(document: DocumentNode, variables: dict | None, limits: Limits) -> None:
    """Limits on the document as written: directives, and NUL characters in any string (no
    field holds one, and PostgreSQL rejects them in text)."""
    counter = _counted(document)
    if counter.directives > limits.max_directives:
        raise LimitError(
            f"The document holds {counter.directives} directives; at most "
            f"{limits.max_directives} are allowed",
            "DIRECTIVE_LIMIT_EXCEEDED",
            directives=counter.directives, maxDirectives=limits.max_directives,
        )
    field = counter.nul_field or _nul_field(variables)
    if field is not None:
        raise LimitError(f"`{field}` must not contain NUL characters", "BAD_USER_INPUT", field=field)


def analyze(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None,
            variables: dict | None, limits: Limits) -> int | None:
    """The operation's cost, or None when no single operation is selected (execution then
    reports that). Raises LimitError."""
    check_document(document, variables, limits)
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    return Analysis(schema, document, operation, variables, limits).run()


class RequestLimits(SchemaExtension):
    """Parse with the token limits; then the limits above, and only then the spec's
    validation (cached per document, like Strawberry's ValidationCache, which this replaces):
    the analysis is linear and cheap, the spec's rules are neither on a hostile document. The
    cost of an accepted operation is kept as `execution_context.pcg_cost` (the rate limiter
    charges it) and reported in `extensions.cost`."""

    def _limits(self) -> Limits:
        settings = getattr(self.execution_context.context, "settings", None)
        return getattr(settings, "limits", None) or Limits()

    def on_operation(self):
        limits = self._limits()
        options = self.execution_context.parse_options
        options["max_tokens"] = limits.max_tokens
        options["max_source_length"] = limits.max_document_chars
        yield

    def on_validate(self):
        context = self.execution_context
        if context.pre_execution_errors is None:
            try:
                self._check_trusted()
                self._check_transport()
                cost = analyze(
                    runtime.graphql_schema(context.schema), context.graphql_document, context.operation_name,
                    context.variables, self._limits(),
                )
            except LimitError as error:
                context.pre_execution_errors = [error]
            else:
                context.pre_execution_errors = list(runtime.validate_cached(
                    runtime.graphql_schema(context.schema), context.graphql_document,
                    context.validation_rules,
                ))
                if not context.pre_execution_errors:
                    context.pcg_cost = cost
        yield

    def _check_trusted(self) -> None:
        """Over HTTP and websockets alike (this runs for every operation)."""
        documents = getattr(self.execution_context.context, "documents", None)
        if documents is None:
            return
        try:
            documents.check(self.execution_context.query)
        except DocumentNotTrusted as error:
            raise LimitError(error.message, error.code, **error.extensions) from None

    def _check_transport(self) -> None:
        context = self.execution_context
        request = getattr(context.context, "request", None)
        is_http = request is not None and request.scope.get("type") == "http"
        try:
            operation_type = context.operation_type
        except RuntimeError:
            return
        streaming = is_http and request.scope.get("state", {}).get("graphql_request")
        protocol = getattr(streaming, "protocol", "http") if streaming else "http"
        if is_http and operation_type.value == "subscription" and protocol == "http":
            raise LimitError(
                "Subscriptions run over a websocket (graphql-transport-ws or graphql-ws), or over "
                "HTTP with Accept: text/event-stream (graphql-sse) or Apollo's multipart/mixed",
                "BAD_REQUEST",
            )

    def get_results(self) -> dict[str, Any]:
        cost = getattr(self.execution_context, "pcg_cost", None)
        if cost is None:
            return {}
        return {"cost": {"requested": cost, "maxCost": self._limits().max_cost}}
