"""What every log line says about the request it belongs to.

A context variable, not the request context object: a websocket's context is shared by all
of its operations, each of which runs in a task of its own and sees its own value. Set by
server/middleware.py per HTTP request and websocket, refined by schema/metrics.py per
operation; read by server/logs.py when a record is formatted.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass
class LogContext:
    request_id: str
    # The GraphQL context once an operation runs: the viewer (user id, API key's org) is read
    # from it when a line is written, so authentication later in the pipeline is seen.
    context: Any = None
    operation: str | None = None

    @property
    def user_id(self) -> int | None:
        principal = getattr(getattr(self.context, "access", None), "principal", None)
        return principal.user.id if principal is not None else None

    @property
    def org_id(self) -> int | None:
        principal = getattr(getattr(self.context, "access", None), "principal", None)
        key = getattr(principal, "api_key", None)
        return key.organization_id if key is not None else None


current: ContextVar[LogContext | None] = ContextVar("pcg_log_context", default=None)
