"""Every error leaves with `extensions.code`; unexpected ones leave with nothing else."""

from __future__ import annotations

import logging

from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors

from resolvers.errors import AppError, unavailable_from

log = logging.getLogger("pcg.errors")


def _code_for_graphql_error(error: GraphQLError) -> str:
    message = error.message
    if message.startswith(("Syntax Error: Document contains more than",
                           "Syntax Error: Source contains more than")):
        return "TOKEN_LIMIT_EXCEEDED"
    if message.startswith("Syntax Error"):
        return "GRAPHQL_PARSE_FAILED"
    if message.startswith("Variable '$") or "got invalid value" in message:
        return "BAD_USER_INPUT"
    return "GRAPHQL_VALIDATION_FAILED"


def is_expected(error: GraphQLError) -> bool:
    """Known errors and dependency failures: logged as one line by `convert`, no traceback."""
    original = error.original_error
    return (original is None or isinstance(original, (AppError, GraphQLError))
            or unavailable_from(original) is not None)


INTERNAL_MESSAGE = "Internal server error"
UNAVAILABLE = "SERVICE_UNAVAILABLE"


def convert(error: GraphQLError, request_id: str | None) -> GraphQLError:
    """The client-facing form of an error. Idempotent."""
    original = error.original_error
    if original is not None and not isinstance(original, (AppError, GraphQLError)):
        # A dependency failure is the client's to retry, not a bug to hide.
        unavailable = unavailable_from(original)
        if unavailable is not None:
            log.warning("dependency unavailable (request %s): %s: %s",
                        request_id, type(original).__name__, original)
            original = unavailable
    if isinstance(original, AppError):
        extensions = {"code": original.code, **original.extensions}
        if original.code == UNAVAILABLE and request_id:
            extensions.setdefault("requestId", request_id)
        message = original.message
    elif original is None or isinstance(original, GraphQLError):
        extensions = {**(error.extensions or {})}
        extensions.setdefault("code", _code_for_graphql_error(error))
        message = error.message
    else:
        extensions = {"code": "INTERNAL_SERVER_ERROR"}
        if request_id:
            extensions["requestId"] = request_id
        message = INTERNAL_MESSAGE
    return GraphQLError(
        message=message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


class ErrorCodes(MaskErrors):
    """Adds `extensions.code` to known errors and masks everything else.

    Parse and validation errors are returned before this extension sees the result; the
    HTTP view runs `convert` over those too.
    """

    def __init__(self) -> None:
        super().__init__(error_message=INTERNAL_MESSAGE)

    def _process_result(self, result: object) -> None:
        # MaskErrors tests a runtime-checkable Protocol with isinstance, which walks the
        # Protocol's members on every call: an eighth of the CPU of a fan-out to 1,000
        # subscribers, for every event of every one of them.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        request_id = getattr(self.execution_context.context, "request_id", None)
        return [convert(e, request_id) for e in errors]
