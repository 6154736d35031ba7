"""Every error leaves with `extensions.code`; unexpected ones leave with nothing else."""

from __future__ import annotations

import logging

from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors

from resolvers.errors import AppError

log = logging.getLogger("pcg.errors")


def _code_for_graphql_error(error: GraphQLError) -> str:
    message = error.message
    if message.startswith("Syntax Error"):
        return "GRAPHQL_PARSE_FAILED"
    if message.startswith("Variable '$") or "got invalid value" in message:
        return "BAD_USER_INPUT"
    return "GRAPHQL_VALIDATION_FAILED"


def is_expected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is None or isinstance(original, (AppError, GraphQLError))


class ErrorCodes(MaskErrors):
    """Adds `extensions.code` to known errors and masks everything else."""

    def __init__(self) -> None:
        super().__init__(error_message="Internal server error")

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [self._convert(e) for e in errors]

    def _convert(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, AppError):
            extensions = {"code": original.code, **original.extensions}
            message = original.message
        elif original is None or isinstance(original, GraphQLError):
            extensions = {**(error.extensions or {})}
            extensions.setdefault("code", _code_for_graphql_error(error))
            message = error.message
        else:
            extensions = {"code": "INTERNAL_SERVER_ERROR"}
            request_id = getattr(self.execution_context.context, "request_id", None)
            if request_id:
                extensions["requestId"] = request_id
            message = self.error_message
        return GraphQLError(
            message=message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=None,
            extensions=extensions,
        )
