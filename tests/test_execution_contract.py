"""The graphql-core and Strawberry internals the compiled executor (schema/execution) relies on.

schema/execution/run.py mirrors graphql-core 3.3's Executor step for step, and
schema/execution/plan.py recognizes Strawberry's resolver wrappers to call resolvers
without them. An upgrade that changes any of this must fail here, loudly, before it changes
an answer: re-read graphql/execution/executor.py and strawberry/schema/schema_converter.py
of the new versions, update schema/execution, then the versions below.
"""

from __future__ import annotations

import builtins
import dataclasses
import inspect
from importlib.metadata import version

import strawberry
from graphql import GraphQLEnumType, GraphQLList, GraphQLNonNull, OperationDefinitionNode, parse
from graphql.execution import collect_fields as collect_fields_module
from graphql.execution import executor as executor_module
from graphql.execution.incremental import IncrementalExecutor
from graphql.pyutils import Path
from strawberry.schema import schema_converter

from schema import runtime
from schema.execution.codegen import _identity, leaf_checks
from schema.execution.plan import BASIC, DIRECT, IDENTITY, Compiler
from schema.root import ExecutionContext
from schema.root import schema as app_schema

# The versions schema/execution was written against and checked with.
GRAPHQL_CORE = "3.3.2"
STRAWBERRY = "0.341.2"


def test_versions_are_the_ones_the_executor_mirrors():
    assert version("graphql-core") == GRAPHQL_CORE, (
        "graphql-core changed: re-check schema/execution/run.py against graphql/execution/executor.py"
    )
    assert version("strawberry-graphql") == STRAWBERRY, (
        "Strawberry changed: re-check schema/execution/plan.py against strawberry/schema/schema_converter.py"
    )


def test_the_execution_context_is_graphql_cores_incremental_executor():
    assert issubclass(ExecutionContext, IncrementalExecutor)
    for name in ("execute_operation", "build_per_event_executor", "build_resolve_info",
                 "settle_in_background", "is_async_iterable", "execute_fields", "complete_value",
                 "handle_field_error", "collect_subfields"):
        assert callable(getattr(ExecutionContext, name)), name
    init = inspect.signature(executor_module.Executor.__init__).parameters
    for name in ("fragments", "fragment_definitions", "variable_values", "field_resolver", "type_resolver",
                 "middleware_manager", "abort_signal", "hooks", "hide_suggestions"):
        assert name in init, name
    source = inspect.getsource(executor_module.Executor.__init__)
    assert "self.error_propagation" in source and "self.collected_errors" in source


def test_the_executor_steps_mirrored_are_unchanged():
    """Fingerprints of the graphql-core code run.py mirrors: messages and structure."""
    def src(function) -> str:
        return inspect.getsource(function)

    executor = executor_module.Executor
    assert "Cannot return null for non-nullable field" in src(executor.complete_value)
    assert "gather_with_cancel" in src(executor.execute_fields)
    assert "settle_in_background" in src(executor.execute_fields)
    assert "async_reduce" in src(executor.execute_fields_serially)
    assert "is_non_null_type(return_type)" in src(executor.handle_field_error)
    assert "self.collected_errors.add(error, path)" in src(executor.handle_field_error)
    assert "Expected Iterable, but did not find one for field" in src(executor.complete_list_value)
    assert "coerce_output_value" in src(executor.complete_leaf_value)
    assert "to return non-nullable value, returned:" in src(executor.complete_leaf_value)
    assert "is not a possible" in src(executor.ensure_valid_runtime_type)
    assert "return_type.is_type_of(result, info)" in src(executor.complete_object_value)
    assert "has_nulled_position" in src(executor_module.CollectedErrors.add)
    assert executor_module.SELECTIONS_NESTED_TOO_DEEPLY
    for name in ("collect_iterator_awaitables", "invalid_return_type_error"):
        assert callable(getattr(executor_module, name))
    assert {"schema", "fragments", "variable_values", "runtime_type", "operation", "hide_suggestions"} <= set(
        inspect.signature(collect_fields_module.collect_fields).parameters
    )
    assert [f for f in collect_fields_module.FieldDetails._fields] == ["node", "defer_usage", "fragment_variable_values"]
    assert Path._fields == ("prev", "key", "typename")


def test_strawberry_wraps_resolvers_as_the_compiler_expects():
    converter = app_schema.schema_converter
    assert converter.config.default_resolver is builtins.getattr
    assert not converter._exception_handler_specs
    source = inspect.getsource(schema_converter.GraphQLCoreConverter.from_resolver)
    for marker in ("def _get_basic_result", "def _resolver", "async def _async_resolver",
                   "field.get_result(_source, info=None, args=[], kwargs={})", "get_arguments("):
        assert marker in source, marker
    assert "lambda event, *_, **__: event" in inspect.getsource(schema_converter.GraphQLCoreConverter.from_field)
    assert list(inspect.signature(schema_converter.get_arguments).parameters) == [
        "field", "source", "info", "kwargs", "config", "scalar_registry",
    ]
    get_arguments = inspect.getsource(schema_converter.get_arguments)
    for marker in ("self_parameter", "parent_parameter", "root_parameter", "info_parameter"):
        assert marker in get_arguments
    assert "self.base_resolver(*args, **kwargs)" in inspect.getsource(strawberry.types.field.StrawberryField.get_result)
    info = strawberry.Info
    assert [f.name for f in dataclasses.fields(info)] == ["_raw_info", "_field"]
    assert "self._raw_info.context" in inspect.getsource(info.context.fget)


def test_the_app_schema_compiles_to_the_kinds_expected():
    """Fields read by attribute, resolvers called directly, subscription fields as events."""
    graphql_schema = runtime.graphql_schema(app_schema)
    compiler = Compiler(graphql_schema)
    document = parse("{ task(id: \"x\") { id title } } subscription { boardEvents(projectId: \"x\") { seq } }")
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    assert len(operations) == 2

    class Executor:  # what Compiler.root reads of graphql-core's executor
        fragments: dict = {}
        hide_suggestions = False

        def __init__(self, operation) -> None:
            self.operation = operation
            self.variable_values = executor_module.VariableValues({}, {})

    query = compiler.root(Executor(operations[0]), graphql_schema.query_type)
    assert [f.kind for f in query.fields] == [DIRECT]
    task = graphql_schema.type_map["Task"]
    title = compiler._field("title", task, task.fields["title"], query.fields[0].details)
    assert title.kind == BASIC
    subscription = compiler.root(Executor(operations[1]), graphql_schema.subscription_type)
    assert [f.kind for f in subscription.fields] == [IDENTITY]


def test_leaf_shortcuts_serialize_as_the_types_do():
    namespace: dict = {}
    types = runtime.graphql_schema(app_schema).type_map
    from datetime import UTC, date, datetime

    assert _identity(types["JSON"].coerce_output_value)
    for name, value in (("Date", date(2030, 1, 2)), ("DateTime", datetime(2030, 1, 2, 3, 4, tzinfo=UTC))):
        checks = leaf_checks(0, types[name], namespace)
        assert checks and checks[0][1] == "v.isoformat()"
        assert types[name].coerce_output_value(value) == value.isoformat()
    status = types["TaskStatus"]
    assert isinstance(status, GraphQLEnumType) and status.wrapped_cls is not None
    leaf_checks(1, status, namespace)
    assert all(status.coerce_output_value(member) == name for member, name in namespace["N1"].items())
    assert isinstance(types["Task"].fields["labels"].type, GraphQLNonNull)
    assert isinstance(types["Task"].fields["labels"].type.of_type, GraphQLList)
