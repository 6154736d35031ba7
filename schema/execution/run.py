"""Running a compiled plan: graphql-core's execution algorithm, step for step, over plans.

Every method here mirrors the graphql-core 3.3 Executor method of the same name (see
graphql/execution/executor.py): the same checks in the same order, the same errors with the
same messages, the same places where coroutines are created and gathered (so that errors
from concurrent fields are collected in the same order), the same null propagation and the
same "nulled position" rule for late errors. What changes is the work per field: the
selection sets are collected once per plan instead of once per object, a field's value is
read directly (an attribute, or the Strawberry resolver called without the per-call
wrappers), the response path is a chain of tuples built only where needed, and a
`GraphQLResolveInfo` is built only when something reads it.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError, located_error
from graphql.execution.executor import (
    SELECTIONS_NESTED_TOO_DEEPLY,
    collect_iterator_awaitables,
    invalid_return_type_error,
)
from graphql.execution.types import ExecutionResult
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path, Undefined, async_reduce, gather_with_cancel, inspect, is_iterable
from graphql.type import is_object_type
from strawberry.schema.schema_converter import get_arguments

from schema.execution.codegen import generate
from schema.execution.plan import (
    BASIC,
    DIRECT,
    IDENTITY,
    LEAF,
    LIST,
    NON_NULL,
    OBJECT,
    TYPENAME,
    Completer,
    FieldPlan,
    ObjectPlan,
    leaf_identity,
)

_MISSING = object()

# Values that are never awaitable (the executor's own predicate agrees; it is only asked
# about anything else).
_PLAIN = frozenset({type(None), bool, int, float, str, list, dict, tuple})


class Errors:
    """graphql-core's CollectedErrors over tuple paths (prev, key, typename)."""

    __slots__ = ("errors", "positions")

    def __init__(self) -> None:
        self.errors: list[GraphQLError] = []
        self.positions: set = set()

    def add(self, error: GraphQLError, path) -> None:
        if self.nulled(path):
            return
        self.positions.add(path)
        self.errors.append(error)

    def nulled(self, path) -> bool:
        positions = self.positions
        if not positions:
            return False
        while path is not None:
            if path in positions:
                return True
            path = path[0]
        return None in positions


def as_list(path) -> list:
    keys = []
    while path is not None:
        keys.append(path[1])
        path = path[0]
    keys.reverse()
    return keys


def as_path(path) -> Path | None:
    """graphql-core's Path for a tuple path."""
    chain = []
    while path is not None:
        chain.append(path)
        path = path[0]
    result = None
    for _prev, key, typename in reversed(chain):
        result = Path(result, key, typename)
    return result


def field_path_of(path):
    """The path of the field whose value (or list item) `path` points at: list items share
    their field's info, as in graphql-core."""
    while path is not None and path[2] is None:
        path = path[0]
    return path


class Run:
    """One execution of one operation plan."""

    __slots__ = (
        "executor", "compiler", "context", "variables", "errors", "is_awaitable", "info_class",
        "hide_suggestions", "memo",
    )

    def __init__(self, executor, compiler, info_class) -> None:
        self.executor = executor
        self.compiler = compiler
        self.context = executor.context_value
        self.variables = executor.variable_values
        self.errors = Errors()
        self.is_awaitable = executor.is_awaitable
        self.info_class = info_class
        self.hide_suggestions = executor.hide_suggestions
        self.memo: dict = {}

    # -- the operation --------------------------------------------------------------------------

    def execute_operation(self, root: ObjectPlan | Exception, serially: bool):
        try:
            if isinstance(root, RecursionError):
                raise GraphQLError(SELECTIONS_NESTED_TOO_DEEPLY, self.executor.operation)
            if isinstance(root, Exception):
                raise root
            if serially:
                result = self.execute_fields_serially(root, self.executor.root_value, None)
            else:
                result = self.fields(root, self.executor.root_value, None)
            if result.__class__ is not dict and self.is_awaitable(result):

                async def await_result():
                    try:
                        data = await result
                    except GraphQLError as error:
                        self.errors.add(error, None)
                        return self.build_response(None)
                    return self.build_response(data)

                return await_result()
            data = result
        except GraphQLError as error:
            self.errors.add(error, None)
            return self.build_response(None)
        return self.build_response(data)

    def build_response(self, data) -> ExecutionResult:
        errors = self.errors.errors
        return ExecutionResult(data, errors or None)

    # -- selection sets -------------------------------------------------------------------------

    def execute_fields_serially(self, plan: ObjectPlan, source: Any, path):
        is_awaitable = self.is_awaitable

        def reducer(results: dict, field: FieldPlan):
            result = self.execute_field(plan, field, source, path)
            if is_awaitable(result):

                async def set_result():
                    results[field.key] = await result
                    return results

                return set_result()
            results[field.key] = result
            return results

        return async_reduce(reducer, plan.fields, {})

    def fields(self, plan: ObjectPlan, source: Any, path):
        """execute_fields, by the plan's generated function (codegen.py)."""
        function = plan.function
        if function is None:
            function = plan.function = generate(plan, self.info_class)
        return function(self, source, path)

    async def gather_fields(self, results: dict, awaitable_fields: list[str]) -> dict:
        """The end of execute_fields when some fields are awaitable."""
        if len(awaitable_fields) == 1:
            key = awaitable_fields[0]
            results[key] = await results[key]
        else:
            awaited = await gather_with_cancel(*(results[k] for k in awaitable_fields))
            results.update(zip(awaitable_fields, awaited, strict=True))
        return results

    def execute_fields(self, plan: ObjectPlan, source: Any, path):
        """The loop codegen.py unrolls per plan (kept as the reference it must match)."""
        results: dict[str, Any] = {}
        awaitable_fields: list[str] | None = None
        is_awaitable = self.is_awaitable
        try:
            for field in plan.fields:
                kind = field.kind
                key = field.key
                fast = field.fast
                if fast is not None:
                    # The common cases inline: an attribute, or a value a list resolver
                    # handed to the source, that is a leaf serializing to itself (or an
                    # enum member). Anything else completes as graphql-core would.
                    if kind == BASIC:
                        try:
                            value = getattr(source, field.attr)
                        except Exception as raw_error:
                            self.handle_field_error(raw_error, field.completer, field, (path, key, field.type_name))
                            results[key] = None
                            continue
                    else:
                        value = getattr(source, field.ready_attr, _MISSING)
                        if value is _MISSING:
                            value = self.execute_field(plan, field, source, path)
                            results[key] = value
                            if value.__class__ not in _PLAIN and is_awaitable(value):
                                if awaitable_fields is None:
                                    awaitable_fields = []
                                awaitable_fields.append(key)
                            continue
                    if field.leaf:
                        cls = value.__class__
                        if cls is fast:
                            if cls is str or cls is bool or leaf_identity(fast, value):
                                results[key] = value
                                continue
                        elif cls is field.enum:
                            results[key] = field.names[value]
                            continue
                        elif value is None and field.nullable:
                            results[key] = None
                            continue
                    result = self.finish_field(field, (path, key, field.type_name), value)
                elif kind == TYPENAME:
                    results[key] = plan.name
                    continue
                else:
                    result = self.execute_field(plan, field, source, path)
                results[key] = result
                if result.__class__ not in _PLAIN and is_awaitable(result):
                    if awaitable_fields is None:
                        awaitable_fields = []
                    awaitable_fields.append(key)
        except Exception:
            if awaitable_fields:
                self.executor.settle_in_background([results[k] for k in awaitable_fields])
            raise

        if not awaitable_fields:
            return results

        async def get_results():
            if len(awaitable_fields) == 1:
                key = awaitable_fields[0]
                results[key] = await results[key]
            else:
                awaited = await gather_with_cancel(*(results[k] for k in awaitable_fields))
                results.update(zip(awaitable_fields, awaited, strict=True))
            return results

        return get_results()

    # -- fields ---------------------------------------------------------------------------------

    def execute_field(self, plan: ObjectPlan, field: FieldPlan, source: Any, path):
        field_path = (path, field.key, field.type_name)
        try:
            kind = field.kind
            if kind == BASIC:
                result = getattr(source, field.attr)
            elif kind == DIRECT:
                if field.is_async:
                    # Strawberry's async resolver converts the arguments when it is awaited,
                    # not when it is called: errors land in the same order.
                    result = self.call_direct_later(field, source, field_path)
                else:
                    result = self.call_direct(field, source, field_path)
            elif kind == IDENTITY:
                result = source
            elif kind == TYPENAME:
                result = plan.name
            else:
                result = self.call_generic(field, source, field_path)
        except Exception as raw_error:
            self.handle_field_error(raw_error, field.completer, field, field_path)
            return None
        return self.finish_field(field, field_path, result)

    def finish_field(self, field: FieldPlan, field_path, result):
        """execute_field once the resolver returned `result`."""
        completer = field.completer
        try:
            if result.__class__ not in _PLAIN and self.is_awaitable(result):
                return self.complete_awaitable_value(completer, field, field_path, result)
            completed = self.complete_value(completer, field, field_path, result)
            if completed.__class__ not in _PLAIN and self.is_awaitable(completed):

                async def await_completed():
                    try:
                        return await completed
                    except Exception as raw_error:
                        self.handle_field_error(raw_error, completer, field, field_path)
                        return None

                return await_completed()
        except Exception as raw_error:
            self.handle_field_error(raw_error, completer, field, field_path)
            return None
        return completed

    async def call_direct_later(self, field: FieldPlan, source: Any, field_path):
        result = self.call_direct(field, source, field_path)
        if self.is_awaitable(result):
            return await result
        return result

    def call_direct(self, field: FieldPlan, source: Any, field_path):
        sfield = field.sfield
        by_position, source_names, info_name = field.call
        if not field.has_args:
            kwargs = {name: source for name in source_names} if source_names else {}
            if info_name is not None:
                kwargs[info_name] = self.info_class(self, field, field_path)
            wrapped = field.wrapped
            return wrapped(source, **kwargs) if by_position else wrapped(**kwargs)
        # Strawberry's extension_resolver without field extensions (the plan has none).
        info = self.info_class(self, field, field_path)
        first = field.details[0]
        raw = get_argument_values(
            field.field_def, first.node, self.variables, first.fragment_variable_values,
            self.hide_suggestions,
        )
        args, kwargs = get_arguments(
            field=sfield, source=source, info=info, kwargs=raw,
            config=self.compiler.config, scalar_registry=self.compiler.scalar_registry,
        )
        return sfield.get_result(source, info=info, args=args, kwargs=kwargs)

    def call_generic(self, field: FieldPlan, source: Any, field_path):
        resolve = field.resolve or self.executor.field_resolver
        info = self.build_info(field, field_path)
        first = field.details[0]
        args = (
            get_argument_values(
                field.field_def, first.node, self.variables, first.fragment_variable_values,
                self.hide_suggestions,
            )
            if field.has_args
            else {}
        )
        return resolve(source, info, **args)

    def build_info(self, field: FieldPlan, field_path):
        return self.executor.build_resolve_info(
            field.field_def, list(field.nodes), field.parent, as_path(field_path)
        )

    def handle_field_error(self, raw_error: Exception, completer: Completer, field: FieldPlan, path) -> None:
        error = located_error(raw_error, list(field.nodes), as_list(path))
        if completer.kind == NON_NULL:
            raise error
        self.errors.add(error, path)

    # -- completion -----------------------------------------------------------------------------

    def complete_value(self, completer: Completer, field: FieldPlan, path, result):
        if isinstance(result, Exception):
            raise result
        kind = completer.kind
        if kind == NON_NULL:
            completed = self.complete_value(completer.of, field, path, result)
            if completed is None:
                raise TypeError(field.null_message)
            return completed
        if result is None or result is Undefined:
            return None
        if kind == LEAF:
            return complete_leaf_value(completer, result)
        if kind == LIST:
            return self.complete_list_value(completer, field, path, result)
        if kind == OBJECT:
            return self.complete_object_value(completer.type, completer, field, path, result)
        return self.complete_abstract_value(completer, field, path, result)

    async def complete_awaitable_value(self, completer: Completer, field: FieldPlan, path, result):
        try:
            resolved = await result
            completed = self.complete_value(completer, field, path, resolved)
            if self.is_awaitable(completed):
                completed = await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, completer, field, path)
            completed = None
        return completed

    def complete_list_value(self, completer: Completer, field: FieldPlan, path, result):
        item = completer.of
        if result.__class__ is not list and self.executor.is_async_iterable(result):
            return self.complete_async_iterator_value(item, field, path, result.__aiter__())
        if not is_iterable(result):
            raise GraphQLError(
                "Expected Iterable, but did not find one for field"
                f" '{field.parent}.{field.name}'."
            )
        return self.complete_iterable_value(item, field, path, result)

    def complete_iterable_value(self, item_completer: Completer, field: FieldPlan, path, items):
        is_awaitable = self.is_awaitable
        completed_results: list[Any] = []
        append = completed_results.append
        awaitable_indices: list[int] | None = None
        iterator = iter(items)
        index = 0
        # A list of leaves that serialize to themselves, the common case, without a path each.
        leaf = item_completer.of if item_completer.kind == NON_NULL else item_completer
        fast = leaf.fast if leaf.kind == LEAF else None
        # A list of objects: complete_list_item_value and complete_value inlined for an item
        # that is neither null, an error nor awaitable.
        objects = leaf if leaf.kind == OBJECT else None
        try:
            while True:
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                if fast is not None and leaf_identity(fast, item):
                    append(item)
                    index += 1
                    continue
                item_path = (path, index, None)
                if (objects is not None and item is not None and item.__class__ not in _PLAIN
                        and not isinstance(item, Exception) and not is_awaitable(item)):
                    try:
                        completed = self.complete_object_value(objects.type, objects, field, item_path, item)
                    except Exception as raw_error:
                        self.handle_field_error(raw_error, item_completer, field, item_path)
                        append(None)
                    else:
                        if completed.__class__ is dict:
                            append(completed)
                        else:
                            append(self.await_completed(completed, item_completer, field, item_path))
                            if awaitable_indices is None:
                                awaitable_indices = []
                            awaitable_indices.append(index)
                    index += 1
                    continue
                if item.__class__ not in _PLAIN and is_awaitable(item):
                    append(self.complete_awaitable_value(item_completer, field, item_path, item))
                    if awaitable_indices is None:
                        awaitable_indices = []
                    awaitable_indices.append(index)
                elif self.complete_list_item_value(item, completed_results, item_completer, field, item_path):
                    if awaitable_indices is None:
                        awaitable_indices = []
                    awaitable_indices.append(index)
                index += 1
        except Exception:
            pending = [completed_results[i] for i in awaitable_indices or ()]
            pending.extend(collect_iterator_awaitables(iterator, is_awaitable))
            if pending:
                self.executor.settle_in_background(pending)
            raise

        if not awaitable_indices:
            return completed_results

        async def get_completed_results():
            if len(awaitable_indices) == 1:
                i = awaitable_indices[0]
                completed_results[i] = await completed_results[i]
            else:
                awaited = await gather_with_cancel(*(completed_results[i] for i in awaitable_indices))
                for i, value in zip(awaitable_indices, awaited, strict=True):
                    completed_results[i] = value
            return completed_results

        return get_completed_results()

    async def await_completed(self, completed, completer: Completer, field: FieldPlan, path):
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, completer, field, path)
            return None

    def finish_object(self, field: FieldPlan, field_path, result):
        """finish_field for a field of an object type (nullable or not), complete_value
        inlined for a value that is neither null, an error nor awaitable."""
        completer = field.completer
        if (result is None or result.__class__ in _PLAIN or isinstance(result, Exception)
                or self.is_awaitable(result)):
            return self.finish_field(field, field_path, result)
        objects = completer.of if completer.kind == NON_NULL else completer
        try:
            completed = self.complete_object_value(objects.type, objects, field, field_path, result)
        except Exception as raw_error:
            self.handle_field_error(raw_error, completer, field, field_path)
            return None
        if completed.__class__ is dict:
            return completed
        return self.await_completed(completed, completer, field, field_path)

    def complete_list_item_value(self, item, results: list, completer: Completer, field: FieldPlan, item_path) -> bool:
        try:
            completed = self.complete_value(completer, field, item_path, item)
            if completed.__class__ not in _PLAIN and self.is_awaitable(completed):

                async def await_completed():
                    try:
                        return await completed
                    except Exception as raw_error:
                        self.handle_field_error(raw_error, completer, field, item_path)
                        return None

                results.append(await_completed())
                return True
            results.append(completed)
        except Exception as raw_error:
            self.handle_field_error(raw_error, completer, field, item_path)
            results.append(None)
        return False

    async def complete_async_iterator_value(self, completer: Completer, field: FieldPlan, path, iterator):
        is_awaitable = self.is_awaitable
        completed_results: list[Any] = []
        awaitable_indices: list[int] = []
        early_return = getattr(iterator, "aclose", None)
        index = 0
        try:
            while True:
                item_path = (path, index, None)
                try:
                    item = await anext(iterator)
                except StopAsyncIteration:
                    break
                except Exception as raw_error:
                    raise located_error(raw_error, list(field.nodes), as_list(path)) from raw_error
                if is_awaitable(item):
                    completed_results.append(self.complete_awaitable_value(completer, field, item_path, item))
                    awaitable_indices.append(index)
                elif self.complete_list_item_value(item, completed_results, completer, field, item_path):
                    awaitable_indices.append(index)
                index += 1
        except Exception:
            if early_return is not None:
                try:
                    await early_return()
                except Exception:  # noqa: BLE001, S110 - as graphql-core: suppressed
                    pass
            if awaitable_indices:
                self.executor.settle_in_background([completed_results[i] for i in awaitable_indices])
            raise
        if not awaitable_indices:
            return completed_results
        if len(awaitable_indices) == 1:
            i = awaitable_indices[0]
            completed_results[i] = await completed_results[i]
        else:
            awaited = await gather_with_cancel(*(completed_results[i] for i in awaitable_indices))
            for i, value in zip(awaitable_indices, awaited, strict=True):
                completed_results[i] = value
        return completed_results

    def complete_abstract_value(self, completer: Completer, field: FieldPlan, path, result):
        return_type = completer.type
        resolve_type = return_type.resolve_type or self.executor.type_resolver
        info = self.build_info(field, field_path_of(path))
        runtime_type = resolve_type(result, info, return_type)
        if self.is_awaitable(runtime_type):

            async def await_complete_object_value():
                value = self.complete_object_value(
                    self.ensure_valid_runtime_type(await runtime_type, completer, field, info, result),
                    completer, field, path, result,
                )
                if self.is_awaitable(value):
                    return await value
                return value  # pragma: no cover

            return await_complete_object_value()
        return self.complete_object_value(
            self.ensure_valid_runtime_type(runtime_type, completer, field, info, result),
            completer, field, path, result,
        )

    def ensure_valid_runtime_type(self, runtime_type_name, completer: Completer, field: FieldPlan, info, result):
        return_type = completer.type
        nodes = list(field.nodes)
        if runtime_type_name is None:
            raise GraphQLError(
                f"Abstract type '{return_type}' must resolve"
                " to an Object type at runtime"
                f" for field '{info.parent_type}.{info.field_name}'."
                f" Either the '{return_type}' type should provide"
                " a 'resolve_type' function or each possible type should provide"
                " an 'is_type_of' function.",
                nodes,
            )
        if not isinstance(runtime_type_name, str):
            raise GraphQLError(
                f"Abstract type '{return_type}' must resolve"
                " to an Object type at runtime"
                f" for field '{info.parent_type}.{info.field_name}' with value"
                f" {inspect(result)}, received '{inspect(runtime_type_name)}',"
                " which is not a valid Object type name.",
                nodes,
            )
        schema = self.executor.schema
        runtime_type = schema.get_type(runtime_type_name)
        if runtime_type is None:
            raise GraphQLError(
                f"Abstract type '{return_type}' was resolved to a type"
                f" '{runtime_type_name}' that does not exist inside the schema.",
                nodes,
            )
        if not is_object_type(runtime_type):
            raise GraphQLError(
                f"Abstract type '{return_type}' was resolved"
                f" to a non-object type '{runtime_type_name}'.",
                nodes,
            )
        if not schema.is_sub_type(return_type, runtime_type):
            raise GraphQLError(
                f"Runtime Object type '{runtime_type}' is not a possible"
                f" type for '{return_type}'.",
                nodes,
            )
        return runtime_type

    def complete_object_value(self, return_type, completer: Completer, field: FieldPlan, path, result):
        plan = completer.plans.get(return_type)
        if plan is None:
            plan = completer.plans[return_type] = self.compiler.sub(self.executor, return_type, field)
        is_type_of = plan.is_type_of
        if is_type_of is not None:
            if plan.type_only:
                cls = result.__class__
                ok = plan.checked.get(cls)
                if ok is None:
                    ok = plan.checked[cls] = bool(is_type_of(result, None))
            else:
                ok = is_type_of(result, None if plan.ignores_info else self.build_info(field, field_path_of(path)))
                if self.is_awaitable(ok):

                    async def execute_subfields_async():
                        if not await ok:
                            raise invalid_return_type_error(return_type, result, field.details)
                        sub = self.fields(plan, result, path)
                        if self.is_awaitable(sub):
                            return await sub
                        return sub  # pragma: no cover

                    return execute_subfields_async()
            if not ok:
                raise invalid_return_type_error(return_type, result, field.details)
        function = plan.function
        if function is None:
            function = plan.function = generate(plan, self.info_class)
        if not plan.memo:
            return function(self, result, path)
        # The same object under the same pure leaf-only plan: the answer computed for it
        # earlier in this run, when that one raised no error (paths differ) and was synchronous.
        key = (id(plan), id(result))
        memo = self.memo
        entry = memo.get(key)
        if entry is not None and entry[0] is result:
            return entry[1]
        errors = len(self.errors.errors)
        completed = function(self, result, path)
        if completed.__class__ is dict and len(self.errors.errors) == errors:
            memo[key] = (result, completed)
        return completed


def complete_leaf_value(completer: Completer, result):
    fast = completer.fast
    if fast is not None:
        if fast.__class__ is tuple:
            if result.__class__ is fast[0]:
                return fast[1][result]
        elif leaf_identity(fast, result):
            return result
    coerced = completer.coerce(result)
    if coerced is Undefined or coerced is None:
        raise TypeError(
            f"Expected `{inspect(completer.type)}.coerce_output_value("
            f"{inspect(result)})` to return non-nullable value, returned:"
            f" {inspect(coerced)}"
        )
    return coerced
