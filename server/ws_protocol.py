"""The two websocket subprotocols' handlers, strict about what they accept.

graphql-transport-ws closes the socket with 4400 on a malformed message, as its protocol says;
legacy graphql-ws (subscriptions-transport-ws) answers `error` for the operation, or
`connection_error` for a frame that is not even an object, and the socket goes on. On both, an
operation whose start raises gets a coded `error`, never a silent complete or a dropped socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from graphql import GraphQLError, parse, validate
from starlette.websockets import WebSocketDisconnected as SendAfterClose
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types.execution import PreExecutionError
from strawberry.utils.aio import aclosing

from schema.errors import INTERNAL_MESSAGE, convert
from schema.runtime import graphql_schema

log = logging.getLogger("pcg.ws")

# 4403 on both protocols: graphql-transport-ws uses it for a rejected connection_init; the
# legacy graphql-ws handler would close with 1011, which clients treat as a server crash.
WS_FORBIDDEN = 4403


# Malformed protocol messages: the request never reached GraphQL.
BAD_REQUEST = "BAD_REQUEST"


# The expiry timers of open sockets, by the Starlette websocket they close. A `call_later`
# keeps its callback (and so the socket) alive until it fires: every socket's timer is
# cancelled when the connection ends, or a closed socket is held until its token expires.
_expiry_timers: dict[int, asyncio.TimerHandle] = {}


def pending_expiry_timers() -> int:
    """How many sockets wait for their token's expiry (0 once every socket has closed)."""
    return len(_expiry_timers)


def close_at_expiry(websocket, expires_at: datetime) -> None:
    """An access token is short-lived; a socket opened with it does not outlive it."""
    key = id(websocket)

    async def close() -> None:
        with contextlib.suppress(Exception):  # already closed by the client
            await websocket.close(code=WS_FORBIDDEN, reason="Token expired")

    def fire() -> None:
        _expiry_timers.pop(key, None)
        asyncio.ensure_future(close())

    cancel_expiry(websocket)  # a second connection_init replaces the first timer
    delay = max(0.0, (expires_at - datetime.now(UTC)).total_seconds())
    _expiry_timers[key] = asyncio.get_running_loop().call_later(delay, fire)


def cancel_expiry(websocket) -> None:
    timer = _expiry_timers.pop(id(websocket), None)
    if timer is not None:
        timer.cancel()


def _optional(payload: dict, key: str, kind: type) -> bool:
    return payload.get(key) is None or isinstance(payload.get(key), kind)


def _operation_problem(message: dict) -> str | None:
    """What is wrong with a subscribe/start message's id and payload, if anything."""
    op_id = message.get("id")
    if not isinstance(op_id, str) or not op_id:
        return f"{message['type']} needs a string id"
    payload = message.get("payload")
    if not isinstance(payload, dict):
        return "payload must be an object"
    if not isinstance(payload.get("query"), str):
        return "payload.query must be a string"
    if not _optional(payload, "variables", dict):
        return "payload.variables must be an object"
    if not _optional(payload, "operationName", str):
        return "payload.operationName must be a string"
    if not _optional(payload, "extensions", dict):
        return "payload.extensions must be an object"
    return None


def _message_problem(message, operation_types: tuple[str, ...], stop_type: str) -> str | None:
    if not isinstance(message, dict):
        return "not a JSON object"
    kind = message.get("type")
    if not isinstance(kind, str):
        return "type must be a string"
    if kind in operation_types:
        return _operation_problem(message)
    if kind == stop_type and not isinstance(message.get("id"), str):
        return f"{kind} needs a string id"
    return None


# The client went away while we were sending (reset, dropped network): the failed send
# (strawberry's WebSocketDisconnected), or a later one of another operation of the same
# socket (Starlette's "send once a close message has been sent").
GONE = (WebSocketDisconnected, SendAfterClose)


def _gone(operation_id, error: Exception) -> None:
    """Routine, so one line at debug, not a traceback chained through the send that found out."""
    log.debug("websocket gone (closed or reset) during operation %r: %s", operation_id, type(error).__name__)


def _coded(message: str, code: str) -> dict:
    return {"message": message, "extensions": {"code": code}}


def _start_errors(handler, query: str, error: Exception) -> list[dict]:
    """The coded errors for an operation whose start raised. A document that the spec's rules
    reject (a custom rule may raise on it, e.g. on an unknown fragment) gets those errors;
    anything else is the server's fault, logged and masked."""
    request_id = getattr(handler.context, "request_id", None)
    try:
        errors = validate(graphql_schema(handler.schema), parse(query))
    except GraphQLError as syntax:
        errors = [syntax]
    except Exception:  # noqa: BLE001 - the original error is the one to report
        errors = []
    if errors:
        return [convert(e, request_id).formatted for e in errors]
    log.error("websocket operation failed to start", exc_info=error)
    masked = GraphQLError(INTERNAL_MESSAGE, original_error=error)
    return [convert(masked, request_id).formatted]


def _rejection_reason(payload: dict) -> str:
    """A close reason within the protocol's 123 bytes."""
    text = f"{payload.get('code', 'FORBIDDEN')}: {payload.get('message', 'Forbidden')}"
    if payload.get("reason"):
        text += f" ({payload['reason']})"
    return text.encode()[:123].decode(errors="ignore")


class TransportWSHandler(BaseGraphQLTransportWSHandler):
    """graphql-transport-ws: a malformed message closes the socket with 4400, as the protocol
    says, and an operation that fails to start gets an `error` message, not a bare complete."""

    async def handle(self) -> None:
        try:
            await super().handle()
        finally:
            cancel_expiry(self.context.request)

    async def handle_connection_init(self, message) -> None:
        # Strawberry closes a refused init with 4403 "Forbidden"; say why in the reason (the
        # only place this protocol has for it), e.g. "UNAUTHENTICATED: Access token expired
        # (TOKEN_EXPIRED)".
        close = self.websocket.close

        async def close_with_reason(code: int, reason: str) -> None:
            rejection = getattr(self.context, "ws_rejection", None)
            if code == WS_FORBIDDEN and rejection:
                reason = _rejection_reason(rejection)
            await close(code=code, reason=reason)

        self.websocket.close = close_with_reason
        try:
            await super().handle_connection_init(message)
        finally:
            del self.websocket.close

    async def handle_message(self, message) -> None:
        problem = _message_problem(message, ("subscribe",), "complete")
        if problem:
            await self.handle_invalid_message(f"Invalid message: {problem}")
            return
        await super().handle_message(message)

    async def run_operation(self, operation) -> None:
        try:
            result_source = await self.schema.stream(
                operation.query,
                variable_values=operation.variables,
                context_value=self.context,
                root_value=self.root_value,
                operation_name=operation.operation_name,
            )
            async with aclosing(result_source):
                await self._send_result_stream(operation, result_source)
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except _OperationStreamClosed:
            return
        except GONE as error:
            _gone(operation.id, error)
        except Exception as error:  # noqa: BLE001 - answered, never a dropped operation
            if operation.completed:
                return
            operation.completed = True
            self.operations.pop(operation.id, None)  # the id is free again, as after `error`
            with contextlib.suppress(Exception):  # the socket may be gone
                await self.send_message({
                    "id": operation.id, "type": "error",
                    "payload": _start_errors(self, operation.query, error),
                })


_LEGACY_CLIENT_TYPES = frozenset({"connection_init", "connection_terminate", "start", "stop"})


class LegacyWSHandler(BaseGraphQLWSHandler):
    """Legacy graphql-ws (subscriptions-transport-ws): a malformed message is answered with
    `error` for its operation (`connection_error` when it is not even an object), and the
    socket stays usable for the others."""

    async def handle(self) -> None:
        try:
            await super().handle()
        finally:
            cancel_expiry(self.context.request)

    async def handle_message(self, message) -> None:
        problem = _message_problem(message, ("start",), "stop")
        if problem is None and message["type"] not in _LEGACY_CLIENT_TYPES:
            problem = f"unknown type {message['type'][:40]!r}"
        if problem is None:
            await super().handle_message(message)
        elif not isinstance(message, dict):
            await self.send_message(
                {"type": "connection_error", "payload": _coded(f"Invalid message: {problem}", BAD_REQUEST)}
            )
        else:
            op_id = message.get("id")
            await self.send_message({
                "type": "error",
                "id": op_id if isinstance(op_id, str) else None,
                "payload": _coded(f"Invalid message: {problem}", BAD_REQUEST),
            })

    async def handle_async_results(self, operation_id, query, operation_name, variables) -> None:
        """Strawberry's legacy handler runs subscriptions only (`schema.subscribe`); gql and
        subscriptions-transport-ws send queries and mutations over this protocol too. Every
        operation goes through `schema.stream`, as on graphql-transport-ws: one `data` per
        result, then `complete`."""
        try:
            source = await self.schema.stream(
                query, variable_values=variables, context_value=self.context,
                root_value=self.root_value, operation_name=operation_name,
            )
            self.subscriptions[operation_id] = source
            first = True
            async with aclosing(source):
                async for result in source:
                    if first and isinstance(result, PreExecutionError):
                        await self.send_message(
                            {"type": "error", "id": operation_id, "payload": result.errors[0].formatted}
                        )
                        return
                    first = False
                    await self.send_data_message(result, operation_id)
            await self.send_message({"type": "complete", "id": operation_id})
        except asyncio.CancelledError:  # `stop`, or the socket closing: say complete, as Strawberry does
            try:
                await self.send_message({"type": "complete", "id": operation_id})
            except GONE as error:
                _gone(operation_id, error)
            except Exception:  # noqa: BLE001, S110 - the socket is already being torn down
                pass
        except GONE as error:
            _gone(operation_id, error)
        except Exception as error:  # noqa: BLE001 - answered, never a silent end
            with contextlib.suppress(Exception):  # the socket may be gone
                await self.send_message(
                    {"type": "error", "id": operation_id, "payload": _start_errors(self, query, error)[0]}
                )
        finally:
            self.subscriptions.pop(operation_id, None)
            self.tasks.pop(operation_id, None)

    async def handle_connection_init(self, message) -> None:
        payload = message.get("payload")
        if payload is not None and not isinstance(payload, dict):
            await self.websocket.close(code=WS_FORBIDDEN, reason="Invalid connection_init payload")
            return
        self.context.connection_params = payload
        try:
            ack = await self.view.on_ws_connect(self.context)
        except ConnectionRejectionError as error:
            await self.send_message({"type": "connection_error", "payload": error.payload})
            await self.websocket.close(code=WS_FORBIDDEN, reason="Forbidden")
            return
        if ack is None or not isinstance(ack, dict):
            await self.send_message({"type": "connection_ack"})
        else:
            await self.send_message({"type": "connection_ack", "payload": ack})
        self.connection_acknowledged = True
        if self.keep_alive:
            self.keep_alive_task = asyncio.create_task(self.handle_keep_alive())
