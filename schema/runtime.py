"""The one place in schema/ that reaches into Strawberry's and graphql-core's objects.

- `graphql_schema`: the graphql-core schema a Strawberry schema wraps (`Schema._schema`).
- `validate_cached`: the spec's validation, memoized per (schema, document, rules) as
  Strawberry's ValidationCache does (the request limits, schema/limits.py, run first and then
  call this instead of that extension).

tests/test_adapters.py pins both against the installed versions. server/ws_protocol.py is the
adapter to Strawberry's websocket handlers; schema/root.py's ExecutionContext subclasses
graphql-core's public ExecutionContext API (is_awaitable, build_per_event_executor,
execute_operation), also pinned there.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema
from strawberry import Schema
from strawberry.schema.schema import validate_document

VALIDATION_CACHE_SIZE = 1024


def graphql_schema(schema: Schema) -> GraphQLSchema:
    return schema._schema


@lru_cache(maxsize=VALIDATION_CACHE_SIZE)
def validate_cached(
    schema: GraphQLSchema, document: DocumentNode, rules: tuple[type[ASTValidationRule], ...]
) -> Sequence[GraphQLError]:
    return validate_document(schema, document, rules)
