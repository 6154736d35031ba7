"""Logging: every line carries its request id; `PCG_LOG_FORMAT=json` writes one JSON object
per line for log collectors, readable text otherwise.

Configured once per process: by `pcg serve` before uvicorn starts (uvicorn's own loggers then
propagate here, access log included), and by create_app when nothing configured logging
before it (a worker of `pcg serve --workers N`, or an embedding that did not).
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote

import orjson

from resolvers.log_context import current
from resolvers.metrics import install_statement_counter

LEVELS = ("critical", "error", "warning", "info", "debug")
FORMATS = ("text", "json")

# Fields an operation's summary line carries (schema/metrics.py passes them as `extra`),
# with their JSON names.
_OPERATION_FIELDS = {
    "operation_type": "operationType", "duration_ms": "durationMs", "statements": "statements",
    "cost": "cost", "outcome": "outcome",
}

_configured = False


class RequestContextFilter(logging.Filter):
    """On the handler (a logger's filters do not see records propagated from its children):
    stamps each record with the request it was written for, "-" outside any."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current.get()
        if not hasattr(record, "request_id"):
            record.request_id = context.request_id if context is not None else None
        if not hasattr(record, "operation"):
            record.operation = context.operation if context is not None else None
        record.user_id = context.user_id if context is not None else None
        record.org_id = context.org_id if context is not None else None
        return True


# Query-string parameters whose values a log line may keep: the operation's name helps find a
# request and is chosen by the client to be seen. Every other value is dropped.
_KEPT_PARAMETERS = frozenset({"operationName"})
_REDACTED = "[redacted]"


def redact_query_string(path: str) -> str:
    """`/graphql?query=...&variables=...` → `/graphql?query=[redacted]&variables=[redacted]`:
    a GET request's document and variables can hold a password, a reset or verification
    token or a customer's data, and an access log line is kept and shipped far longer and
    wider than the request."""
    head, mark, query = path.partition("?")
    if not mark:
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    if not pairs and query:
        return f"{head}?{_REDACTED}"
    return head + "?" + "&".join(
        f"{quote(name, safe='')}={quote(value, safe='') if name in _KEPT_PARAMETERS else _REDACTED}"
        for name, value in pairs
    )


class QueryStringRedactor(logging.Filter):
    """On uvicorn's access and error loggers, whose lines carry the request's path with its
    query string (the HTTP access line, the websocket handshake lines): values redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(arg, str) and "?" in arg for arg in record.args
        ):
            record.args = tuple(
                redact_query_string(arg) if isinstance(arg, str) and arg.startswith("/") else arg
                for arg in record.args
            )
        return True


_REDACTOR = QueryStringRedactor()


def install_query_string_redaction() -> None:
    """On the loggers themselves, so it holds whatever handler (ours, an embedding's, a test's)
    writes their lines."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(rid)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.rid = getattr(record, "request_id", None) or "-"
        return super().format(record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "requestId": getattr(record, "request_id", None),
            "userId": getattr(record, "user_id", None),
            "orgId": getattr(record, "org_id", None),
            "operation": getattr(record, "operation", None),
        }
        for attribute, key in _OPERATION_FIELDS.items():
            value = getattr(record, attribute, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps({k: v for k, v in line.items() if v is not None}, default=str).decode()


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    """Root handler on stderr with the request-id filter; `level`/`fmt` default to
    PCG_LOG_LEVEL / PCG_LOG_FORMAT (set by `pcg serve` for its workers)."""
    global _configured
    level = (level or os.environ.get("PCG_LOG_LEVEL") or "info").lower()
    fmt = (fmt or os.environ.get("PCG_LOG_FORMAT") or "text").lower()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestContextFilter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_pcg", False):
            root.removeHandler(existing)
    handler._pcg = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's loggers propagate to this handler (pcg serve passes log_config=None).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    install_query_string_redaction()
    install_statement_counter(show_sql=level == "debug")
    _configured = True


def configure_if_needed() -> None:
    """Leaves alone a process whose logging someone else configured (tests, embeddings)."""
    if not _configured and not logging.getLogger().handlers:
        configure_logging()
    install_query_string_redaction()
    install_statement_counter()
