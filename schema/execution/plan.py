"""Plans: what the compiled executor knows about a validated operation before it runs.

An operation is compiled once per (document, operation name) and per values of the
variables its `@skip`/`@include` directives read. Its selection sets are collected by
graphql-core's own `collect_fields`/`collect_subfields` (so fragments, type conditions and
directives mean exactly what they mean there), lazily, the first time a value of a runtime
type reaches them, and kept: the next execution walks the same `ObjectPlan`s.

Each field of a selection set becomes a `FieldPlan`: its response key, how to get its value
(an attribute, a direct call of the Strawberry resolver, or graphql-core's resolve function
for anything else) and a `Completer` for its return type (non-null, list, leaf with its
serializer, object or abstract type).
"""

from __future__ import annotations

import builtins
import math
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    is_abstract_type,
    is_leaf_type,
)
from graphql.execution.collect_fields import collect_fields, collect_subfields
from graphql.language import (
    BooleanValueNode,
    DirectiveNode,
    VariableNode,
    Visitor,
    visit,
)
from graphql.type import GraphQLBoolean, GraphQLFloat, GraphQLID, GraphQLInt, GraphQLString

from schema.execution import preloaded

# How a field's value is obtained.
BASIC = 0  # getattr(source, python name): a Strawberry field without resolver
DIRECT = 1  # the Strawberry resolver, called without Strawberry's per-call wrappers
GENERIC = 2  # graphql-core's way: field_def.resolve(source, GraphQLResolveInfo, **args)
TYPENAME = 3  # __typename of an object type: a constant
IDENTITY = 4  # a subscription field's per-event resolver: the event itself

# Completer kinds, as graphql-core's complete_value distinguishes them.
NON_NULL = 0
LIST = 1
LEAF = 2
OBJECT = 3
ABSTRACT = 4

_STRAWBERRY_CONVERTER = "strawberry.schema.schema_converter"


class Unsupported(Exception):
    """The operation, or something in it, runs on graphql-core instead (the reason is
    counted: schema/execution/fallback.py)."""


class Completer:
    """How graphql-core's complete_value treats one return type."""

    __slots__ = ("kind", "of", "type", "coerce", "fast", "field_plan", "plans")

    def __init__(self, kind: int, type_: Any, of: Completer | None = None) -> None:
        self.kind = kind
        self.type = type_
        self.of = of
        self.coerce = None
        self.fast = None
        self.plans: dict = {}


def completer_for(type_: Any) -> Completer:
    if isinstance(type_, GraphQLNonNull):
        return Completer(NON_NULL, type_, completer_for(type_.of_type))
    if isinstance(type_, GraphQLList):
        return Completer(LIST, type_, completer_for(type_.of_type))
    if is_leaf_type(type_):
        completer = Completer(LEAF, type_)
        completer.coerce = type_.coerce_output_value
        completer.fast = _fast_leaf(type_)
        return completer
    if is_abstract_type(type_):
        return Completer(ABSTRACT, type_)
    if isinstance(type_, GraphQLObjectType):
        return Completer(OBJECT, type_)
    raise Unsupported(f"output type {type_!r}")  # pragma: no cover - not in GraphQL


_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


class _Never:
    """A class no value has: a fast path that never applies."""


def _fast_leaf(type_: Any):
    """For the leaf types whose `coerce_output_value` returns a value of a common Python
    type unchanged, that type (see `leaf_identity`); for Strawberry enums, (enum class,
    {member: name}); None otherwise."""
    if type_ is GraphQLString or type_ is GraphQLID:
        return str
    if type_ is GraphQLBoolean:
        return bool
    if type_ is GraphQLInt:
        return int
    if type_ is GraphQLFloat:
        return float
    if isinstance(type_, GraphQLEnumType):
        wrapped = getattr(type_, "wrapped_cls", None)
        if wrapped is not None:
            # Strawberry's enum type: each member's name, asked of the type itself once.
            return (wrapped, {member: type_.coerce_output_value(member) for member in wrapped})
    return None


def leaf_identity(fast, value) -> bool:
    """Whether `value` serializes to itself under a leaf type whose fast form is `fast`."""
    cls = value.__class__
    if fast is int:
        return cls is int and _INT_MIN <= value <= _INT_MAX
    if fast is float:
        return cls is float and math.isfinite(value)
    return cls is fast


class FieldPlan:
    """One response key of a selection set on one object type."""

    __slots__ = (
        "key", "name", "parent", "field_def", "details", "nodes", "kind", "attr", "sfield",
        "call", "has_args", "resolve", "completer", "null_message", "type_name", "fast", "enum",
        "names", "nullable", "is_async", "wrapped", "ready_attr", "leaf",
    )

    def __init__(self, key: str, parent: GraphQLObjectType, field_def, details) -> None:
        self.key = key
        self.parent = parent
        self.type_name = parent.name
        self.field_def = field_def
        self.details = details
        self.nodes = [d.node for d in details]
        self.name = self.nodes[0].name.value
        self.completer = completer_for(field_def.type)
        self.null_message = f"Cannot return null for non-nullable field {parent}.{self.name}."
        self.attr = None
        self.sfield = None
        self.call = None
        self.resolve = field_def.resolve
        self.has_args = bool(field_def.args or self.nodes[0].arguments)
        self.kind = GENERIC
        # For an attribute holding a leaf (BASIC): the inline path of Run.execute_fields.
        self.fast = None
        self.enum = _Never
        self.names = None
        self.nullable = self.completer.kind != NON_NULL
        self.is_async = False
        self.wrapped = None
        # The attribute holding a value handed to the source by a list resolver.
        self.ready_attr = None
        self.leaf = False

    def set_basic(self, attr: str) -> None:
        self.kind = BASIC
        self.attr = attr
        self._set_fast()

    def set_preloaded(self, attr: str) -> None:
        self.ready_attr = attr
        self._set_fast()

    def _set_fast(self) -> None:
        leaf = self.completer.of if self.completer.kind == NON_NULL else self.completer
        if leaf.kind != LEAF:
            self.fast = _Never  # the inline path still applies; no leaf shortcut
            return
        self.leaf = True
        fast = leaf.fast
        if isinstance(fast, tuple):
            self.fast = _Never
            self.enum, self.names = fast
        else:
            self.fast = fast if fast is not None else _Never


class ObjectPlan:
    """A selection set on one object type: its fields in response order."""

    __slots__ = (
        "type", "name", "fields", "is_type_of", "type_only", "checked", "ignores_info", "function", "memo",
    )

    def __init__(self, type_: GraphQLObjectType, fields: list[FieldPlan]) -> None:
        self.type = type_
        self.name = type_.name
        self.fields = fields
        self.is_type_of = type_.is_type_of
        # is_type_of functions that look only at the value's class (and not at `info`):
        # their answers are kept per class.
        self.type_only = bool(getattr(self.is_type_of, "pcg_type_only", False))
        self.checked: dict[type, bool] = {}
        self.ignores_info = _ignores_info(self.is_type_of)
        # Run.execute_fields for this plan as straight-line code (codegen.py), made on first use.
        self.function = None
        # Leaves read by attribute or by resolvers declared pure (`pcg_pure`): the same object
        # completes to the same answer wherever it appears (a board's labels and people).
        self.memo = bool(fields) and all(_pure_leaf(field) for field in fields)


def _pure_leaf(field: FieldPlan) -> bool:
    completer = field.completer.of if field.completer.kind == NON_NULL else field.completer
    if completer.kind != LEAF:
        return False
    if field.kind in (BASIC, TYPENAME):
        return True
    return field.kind == DIRECT and not field.has_args and bool(getattr(field.wrapped, "pcg_pure", False))


def _ignores_info(is_type_of) -> bool:
    """Strawberry's generated is_type_of and ours (schema/common.py) never read `info`."""
    if is_type_of is None:
        return True
    if getattr(is_type_of, "pcg_type_only", False):
        return True
    return (getattr(is_type_of, "__module__", None) == _STRAWBERRY_CONVERTER
            and getattr(is_type_of, "__qualname__", "").endswith("_get_is_type_of.<locals>.is_type_of"))


class Compiler:
    """Builds plans against one schema (Strawberry's converter settings included)."""

    def __init__(self, schema) -> None:
        self.schema = schema
        strawberry_schema = getattr(schema, "_strawberry_schema", None)
        converter = getattr(strawberry_schema, "schema_converter", None)
        self.config = getattr(converter, "config", None)
        self.scalar_registry = getattr(converter, "scalar_registry", None)
        handlers = getattr(converter, "_exception_handler_specs", ())
        self.exception_handlers = bool(handlers)
        self.default_getattr = self.config is not None and self.config.default_resolver is builtins.getattr

    # -- selection sets -----------------------------------------------------------------------

    def root(self, executor, root_type: GraphQLObjectType) -> ObjectPlan:
        grouped, defer_usages, _ = collect_fields(
            self.schema, executor.fragments, executor.variable_values, root_type,
            executor.operation, executor.hide_suggestions,
        )
        if defer_usages:
            raise Unsupported("@defer")
        return self._object(root_type, grouped)

    def sub(self, executor, type_: GraphQLObjectType, field_plan: FieldPlan) -> ObjectPlan:
        grouped, defer_usages, _ = collect_subfields(
            self.schema, executor.fragments, executor.variable_values, executor.operation,
            type_, field_plan.details, executor.hide_suggestions,
        )
        if defer_usages:  # pragma: no cover - @defer is not in this schema
            raise Unsupported("@defer")
        return self._object(type_, grouped)

    def _object(self, type_: GraphQLObjectType, grouped) -> ObjectPlan:
        fields = []
        for key, details in grouped.items():
            field_def = self.schema.get_field(type_, details[0].node.name.value)
            if field_def is None:
                continue  # graphql-core skips it too (Undefined)
            if any(d.fragment_variable_values is not None for d in details):
                raise Unsupported("fragment variables")
            fields.append(self._field(key, type_, field_def, details))
        return ObjectPlan(type_, fields)

    # -- fields -------------------------------------------------------------------------------

    def _field(self, key: str, parent: GraphQLObjectType, field_def, details) -> FieldPlan:
        plan = FieldPlan(key, parent, field_def, details)
        if plan.name == "__typename":
            plan.kind = TYPENAME
            return plan
        sfield = field_def.extensions.get("strawberry-definition") if field_def.extensions else None
        resolve = field_def.resolve
        if sfield is None or resolve is None or self.config is None:
            return plan  # GENERIC
        plan.sfield = sfield
        if getattr(sfield, "is_subscription", False):
            if getattr(resolve, "__module__", None) == _STRAWBERRY_CONVERTER and resolve.__name__ == "<lambda>":
                plan.kind = IDENTITY
            return plan
        if sfield.extensions or self.exception_handlers:
            return plan
        name = getattr(resolve, "__name__", None)
        if getattr(resolve, "__module__", None) != _STRAWBERRY_CONVERTER:
            return plan
        if name == "_get_basic_result" and sfield.base_resolver is None and self.default_getattr:
            plan.set_basic(sfield.python_name)
        elif name in ("_resolver", "_async_resolver") and sfield.base_resolver is not None:
            plan.kind = DIRECT
            plan.call = _call_shape(sfield)
            plan.is_async = name == "_async_resolver"
            plan.wrapped = sfield.base_resolver.wrapped_func
            ready = preloaded.FIELDS.get((parent.name, plan.name))
            if ready is not None and not plan.has_args and not plan.is_async:
                plan.set_preloaded(ready)
        return plan


def _call_shape(sfield) -> tuple:
    """How Strawberry passes source and info to this resolver (see get_arguments):
    (pass source positionally, source keyword names, info keyword name or None)."""
    resolver = sfield.base_resolver
    source_names = tuple(
        p.name for p in (resolver.parent_parameter, resolver.root_parameter) if p is not None
    )
    info = resolver.info_parameter
    return (resolver.self_parameter is not None, source_names, info.name if info is not None else None)


# -- which variables the plan depends on -----------------------------------------------------


class _DirectiveVariables(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.other = False

    def enter_directive(self, node: DirectiveNode, *_args) -> None:
        if node.name.value not in ("skip", "include"):
            self.other = True
            return
        for argument in node.arguments or ():
            if isinstance(argument.value, VariableNode):
                self.names.add(argument.value.name.value)
            elif not isinstance(argument.value, BooleanValueNode):
                self.other = True


def directive_variables(definitions) -> tuple[tuple[str, ...], bool]:
    """The variables that @skip/@include read in the operation and fragment definitions
    (what a plan's field collection depends on), and whether any other directive is used."""
    visitor = _DirectiveVariables()
    for definition in definitions:
        visit(definition, visitor)
    return tuple(sorted(visitor.names)), visitor.other
