"""Per-operation telemetry: metrics, the log context, statement counts and slow-operation lines.

First in the schema's extension list, so its on_operation wraps every other step (parse,
limits, validation, authentication, admission, execution) and its exit, last of all, sees the
result as the client will.
"""

from __future__ import annotations

import contextlib
import logging
import time

from graphql import OperationDefinitionNode
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from resolvers import metrics
from resolvers.log_context import LogContext, current
from schema.errors import convert

log = logging.getLogger("pcg.operations")

_TYPES = {OperationType.QUERY: "query", OperationType.MUTATION: "mutation",
          OperationType.SUBSCRIPTION: "subscription"}


class OperationMetrics(SchemaExtension):
    # Per operation (Strawberry builds the extension anew for each): its name label once it
    # passed validation, and a subscription's kind. No on_stream_result hook: Strawberry
    # builds its context managers anew for every result, about 7 us per event per
    # subscriber; deliveries are counted in resolvers/event/streams.py.
    _name: str | None = None
    _kind: str | None = None

    def on_operation(self):
        started = time.perf_counter()
        ec = self.execution_context
        context = ec.context
        tally = metrics.StatementTally()
        statements_token = metrics.statements.set(tally)
        log_context = LogContext(_request_id(context), context)
        log_token = current.set(log_context)
        tracer = metrics.tracer
        span = tracer.start_span("graphql.operation") if tracer is not None else None
        try:
            yield
        finally:
            try:
                fields = self._record(ec, log_context, tally.count, time.perf_counter() - started)
                if span is not None:
                    _end_span(span, fields, log_context)
            finally:
                with contextlib.suppress(ValueError):  # closed from another context
                    current.reset(log_token)
                with contextlib.suppress(ValueError):
                    metrics.statements.reset(statements_token)

    def on_execute(self):
        # Only reached by a document that parsed and passed validation.
        ec = self.execution_context
        # Only validated operations claim one of the bounded name labels: a stream of invalid
        # documents with made-up names cannot push the real ones out to "other".
        self._name = metrics.operation_label(ec.operation_name)
        current_log = current.get()
        if current_log is not None:
            current_log.operation = metrics.operation_display(ec.operation_name)
        if _type(ec) == "subscription":
            self._kind = _subscription_kind(ec)
            metrics.SUBSCRIPTIONS.labels(self._kind).inc()
        yield

    # -- recording --------------------------------------------------------------------------

    def _record(self, ec, log_context: LogContext, statements: int, seconds: float) -> dict:
        kind = _type(ec)
        name = self._name or metrics.operation_label(ec.operation_name, claim=False)
        display = metrics.operation_display(ec.operation_name)
        log_context.operation = display
        if self._kind is not None:
            metrics.SUBSCRIPTIONS.labels(self._kind).dec()
        # The operation's result; for a subscription its last one (Strawberry keeps each on
        # the context): a refusal at its start, or the error that ended it.
        result = ec.result
        errors = getattr(result, "errors", None) if result is not None else None
        if kind == "subscription":
            outcome = self._count_errors(errors, kind) if errors else "ok"
            metrics.OPERATIONS.labels(kind, name, outcome).inc()
            return {"operation": display, "operation_type": kind, "statements": statements,
                    "cost": getattr(ec, "pcg_cost", None), "outcome": outcome}
        kind = kind or "unknown"
        outcome = self._count_errors(errors, kind) if errors else "ok"
        cost = getattr(ec, "pcg_cost", None)
        metrics.OPERATIONS.labels(kind, name, outcome).inc()
        metrics.DURATION.labels(kind).observe(seconds)
        metrics.SQL_PER_OPERATION.labels(kind).observe(statements)
        if cost is not None:
            metrics.COST.observe(cost)
        duration_ms = round(seconds * 1000, 1)
        fields = {"operation": display, "operation_type": kind, "duration_ms": duration_ms,
                  "statements": statements, "cost": cost, "outcome": outcome}
        threshold = getattr(getattr(ec.context, "settings", None), "slow_operation_ms", 500)
        if duration_ms > threshold:
            log.warning("slow operation %s %s: %.1f ms, %d statements", kind, display, duration_ms,
                        statements, extra=fields)
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("operation %s %s: %.1f ms, %d statements", kind, display, duration_ms,
                      statements, extra=fields)
        return fields

    @staticmethod
    def _count_errors(errors, kind: str) -> str:
        """Counts each error by code; returns the first one's code (the outcome)."""
        codes = [(e.extensions or {}).get("code") or convert(e, None).extensions["code"] for e in errors]
        for code in codes:
            metrics.ERRORS.labels(code).inc()
        if "RATE_LIMITED" in codes:
            metrics.RATE_LIMITED.labels(kind).inc()
        return codes[0]


def _end_span(span, fields: dict, log_context: LogContext) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.update_name(f"{fields['operation_type'] or 'graphql'} {fields['operation']}")
    attributes = {
        "graphql.operation.name": fields["operation"],
        "graphql.operation.type": fields["operation_type"] or "unknown",
        "pcg.outcome": fields["outcome"],
        "pcg.statements": fields["statements"],
        "pcg.request_id": log_context.request_id or "",
    }
    if fields.get("cost") is not None:
        attributes["pcg.cost"] = fields["cost"]
    if log_context.user_id is not None:
        attributes["enduser.id"] = str(log_context.user_id)
    span.set_attributes(attributes)
    if fields["outcome"] in ("INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE"):
        span.set_status(Status(StatusCode.ERROR, fields["outcome"]))
    span.end()


def _request_id(context) -> str | None:
    """The request's id; on a websocket, the connection's id and the operation's number on
    it, since every operation of a socket shares one context."""
    request_id = getattr(context, "request_id", None)
    request = getattr(context, "request", None)
    if request is None or request.scope.get("type") != "websocket":
        return request_id
    state = request.scope.setdefault("state", {})
    number = state.get("pcg_operations", 0) + 1
    state["pcg_operations"] = number
    return f"{request_id}.{number}"


def _type(ec) -> str | None:
    if ec.graphql_document is None:
        return None
    try:
        return _TYPES.get(ec.operation_type)
    except Exception:  # noqa: BLE001 - no such operation in the document: validation says so
        return None


def _subscription_kind(ec) -> str:
    name = ec.operation_name
    for definition in ec.graphql_document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
            name is None or (definition.name is not None and definition.name.value == name)
        ):
            selections = definition.selection_set.selections
            field = getattr(selections[0], "name", None) if selections else None
            return metrics.SUBSCRIPTION_KINDS.get(field.value if field else "", "other")
    return "other"
