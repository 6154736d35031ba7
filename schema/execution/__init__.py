"""Compiled execution of validated operations (the fast path).

`execute(executor, serially)` runs the operation that graphql-core's `executor` was built
for from a cached plan (schema/execution/plan.py) with graphql-core's own algorithm
(schema/execution/run.py), or returns NotImplemented when the operation uses something the
plans do not cover: then graphql-core runs it, and the reason is counted
(schema/execution/fallback.py). Plans are cached per schema, by document text and operation
name, in a bounded LRU.

The hook is `ExecutionContext.execute_operation` in schema/root.py; the Strawberry and
graphql-core internals relied on are pinned by tests/test_execution_contract.py.
"""

from __future__ import annotations

from collections import OrderedDict

from graphql import GraphQLError, OperationType

from schema.execution import fallback
from schema.execution.fallback import stats
from schema.execution.info import lazy_info_class
from schema.execution.plan import Compiler, ObjectPlan, Unsupported, directive_variables
from schema.execution.run import Run

__all__ = ["execute", "stats", "fallback"]

# Documents whose plans are kept, and their total length: a plan holds its document's AST.
MAX_DOCUMENTS = 256
MAX_CHARS = 4_000_000
# Distinct @skip/@include variable values kept per document.
MAX_VARIANTS = 16

_MISSING = object()


class OperationPlans:
    """The plans of one operation of one document, per @skip/@include variable values."""

    __slots__ = ("directive_variables", "roots", "size")

    def __init__(self, names: tuple[str, ...], size: int) -> None:
        self.directive_variables = names
        self.roots: dict[tuple, ObjectPlan] = {}
        self.size = size


class PlanCache:
    def __init__(self, schema) -> None:
        self.compiler = Compiler(schema)
        config = self.compiler.config
        self.info_class = lazy_info_class(config.info_class) if config is not None else None
        self.entries: OrderedDict[tuple, OperationPlans | str] = OrderedDict()
        self.chars = 0

    def plans(self, executor) -> OperationPlans | str:
        operation = executor.operation
        loc = operation.loc
        if loc is None:
            return "document without source"
        body = loc.source.body
        key = (body, operation.name.value if operation.name else None)
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
            return entry
        entry = self._check(executor)
        self.entries[key] = entry
        self.chars += len(body)
        while len(self.entries) > MAX_DOCUMENTS or (self.chars > MAX_CHARS and len(self.entries) > 1):
            (old_body, _), old = self.entries.popitem(last=False)
            self.chars -= len(old_body)
        return entry

    def _check(self, executor) -> OperationPlans | str:
        if self.info_class is None:
            return "not a Strawberry schema"
        names, other_directives = directive_variables(
            [executor.operation, *executor.fragment_definitions.values()]
        )
        if other_directives:
            return "directive"
        if any(details.variable_signatures for details in executor.fragments.values()):
            return "fragment variables"
        return OperationPlans(names, len(executor.operation.loc.source.body))

    def root(self, executor, plans: OperationPlans):
        """The root ObjectPlan, or the exception graphql-core's execute_operation would raise
        while collecting the root fields (it turns it into the response)."""
        operation = executor.operation
        coerced = executor.variable_values.coerced
        signature = tuple(coerced.get(name, _MISSING) for name in plans.directive_variables)
        root = plans.roots.get(signature)
        if root is not None:
            return root
        root_type = executor.schema.get_root_type(operation.operation)
        if root_type is None:
            return GraphQLError(
                f"Schema is not configured to execute {operation.operation.value} operation.",
                operation,
            )
        try:
            root = self.compiler.root(executor, root_type)
        except (GraphQLError, RecursionError) as error:
            return error
        if len(plans.roots) < MAX_VARIANTS:
            plans.roots[signature] = root
        return root


def _cache(schema) -> PlanCache:
    cache = schema.__dict__.get("_pcg_plans")
    if cache is None:
        cache = schema._pcg_plans = PlanCache(schema)
    return cache


def execute(executor, serially: bool | None = None):
    """The result of `executor.execute_operation(serially)`, computed from a plan; or
    NotImplemented when graphql-core must run it."""
    if executor.abort_signal is not None:
        fallback.fell_back("abort signal")
        return NotImplemented
    if executor.hooks is not None:
        fallback.fell_back("execution hooks")
        return NotImplemented
    middleware = executor.middleware_manager
    if middleware is not None and middleware.middlewares:
        fallback.fell_back("middleware")
        return NotImplemented
    if not executor.error_propagation:
        fallback.fell_back("error propagation off")
        return NotImplemented
    cache = _cache(executor.schema)
    plans = cache.plans(executor)
    if isinstance(plans, str):
        fallback.fell_back(plans)
        return NotImplemented
    try:
        root = cache.root(executor, plans)
    except Unsupported as reason:
        fallback.fell_back(str(reason))
        return NotImplemented
    fallback.compiled()
    if serially is None:
        serially = executor.operation.operation == OperationType.MUTATION
    return Run(executor, cache.compiler, cache.info_class).execute_operation(root, serially)
