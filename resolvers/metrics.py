"""The process's Prometheus metrics, defined once, and the tiny helpers that record them.

Defined in the lowest layer that records them (event logs, the broadcast hub, NORA), so that
resolvers need not import the server; server/metrics.py serves them at /metrics and
schema/metrics.py records operations.

Hot paths (a fan-out to every subscriber) only increment a counter bound to its labels in
advance: no label lookup or allocation per event. Label values are bounded: operation names
only when they are short identifiers, and at most MAX_OPERATION_NAMES distinct ones.

Under `pcg serve --workers N` PROMETHEUS_MULTIPROC_DIR is set before any worker imports
prometheus_client, which then keeps values in files that /metrics aggregates; gauges say how
(`multiprocess_mode`).
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar

from prometheus_client import Counter, Gauge, Histogram

from models import orm

# -- operations --------------------------------------------------------------------------------

OPERATIONS = Counter(
    "pcg_operations", "GraphQL operations finished, by type, name and outcome (ok or the first error code)",
    ["type", "name", "outcome"],
)
DURATION = Histogram(
    "pcg_operation_duration_seconds", "Time from receiving a query or mutation to its result",
    ["type"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
)
ERRORS = Counter("pcg_errors", "GraphQL errors returned to clients, by code", ["code"])
COST = Histogram(
    "pcg_operation_cost", "Static cost of admitted operations (schema/limits.py)",
    buckets=(1, 5, 10, 50, 100, 500, 1000, 2500, 5000, 10000),
)
RATE_LIMITED = Counter(
    "pcg_rate_limited", "Operations refused with RATE_LIMITED (point budgets, logIn and signUp throttles)",
    ["type"],
)

# -- SQL -----------------------------------------------------------------------------------------

RESPONSE_CACHE = Counter(
    "pcg_response_cache",
    "Queries and the response cache: hit, miss (then stored), bypass (not cacheable), error (store down)",
    ["outcome"],
)
SQL_STATEMENTS = Counter("pcg_sql_statements", "SQL statements sent by Tortoise (all tasks)")
SQL_PER_OPERATION = Histogram(
    "pcg_operation_sql_statements", "SQL statements sent while a query or mutation ran",
    ["type"], buckets=(0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 100, 200),
)
POOL_SIZE = Gauge("pcg_db_pool_size", "Open database connections", multiprocess_mode="livesum")
POOL_IN_USE = Gauge("pcg_db_pool_in_use", "Database connections in use", multiprocess_mode="livesum")
POOL_MAX = Gauge("pcg_db_pool_max", "Most database connections the pool opens", multiprocess_mode="livesum")

# -- live streams ------------------------------------------------------------------------------

WEBSOCKETS = Gauge("pcg_websockets_active", "Open (accepted) websockets", multiprocess_mode="livesum")
SUBSCRIPTIONS = Gauge(
    "pcg_subscriptions_active", "Running subscriptions, by kind", ["kind"], multiprocess_mode="livesum"
)
DELIVERED = Counter(
    "pcg_events_delivered", "Events a live stream handed to its subscription, by log (one per event per subscriber)",
    ["log"],
)
APPENDED = Counter("pcg_events_appended", "Events appended to an event log (board, nora, audit)", ["log"])
PUBLISHED = Counter("pcg_events_published", "Events published to the broadcast after commit", ["log"])
PUBLISH_FAILED = Counter("pcg_events_publish_failed", "Publishes that failed (subscribers refill)", ["log"])
REFILLS = Counter(
    "pcg_event_refills", "Refills of a live stream from its log, by log and reason "
    "(seq_jump: a message was missed; broker_gap: the broker reconnected)", ["log", "reason"],
)
RESYNCS = Counter("pcg_event_resyncs", "ResyncRequired sent (cursor older than the log keeps)", ["log"])

# -- broadcast -------------------------------------------------------------------------------------

BROKER_RECONNECTS = Counter("pcg_broker_reconnects", "Reconnections of the broadcast backend")
BROKER_CONNECTED = Gauge(
    "pcg_broker_connected", "1 while the broadcast backend is connected (min over workers)",
    multiprocess_mode="livemin",
)

# -- NORA ------------------------------------------------------------------------------------------

NORA_REPLIES = Counter(
    "pcg_nora_replies", "NORA replies ended, by provider and outcome (complete, cancelled, or the error code)",
    ["provider", "outcome"],
)
NORA_TOKENS = Counter("pcg_nora_tokens", "NORA tokens used, by provider and direction", ["provider", "direction"])

# -- email outbox ----------------------------------------------------------------------------------

EMAILS_SENT = Counter("pcg_emails_sent", "Emails accepted by the SMTP server (or logged, without SMTP), by template", ["template"])
EMAILS_FAILED = Counter(
    "pcg_emails_failed", "Failed email attempts, by template and outcome (retry: rescheduled with backoff; "
    "dead: refused for good or out of attempts)", ["template", "outcome"],
)
OUTBOX_PENDING = Gauge(
    "pcg_outbox_pending", "Emails waiting in the outbox (pending or being sent), sampled by the outbox worker",
    multiprocess_mode="livemax",
)
OUTBOX_DEAD = Gauge(
    "pcg_outbox_dead", "Emails kept DEAD in the outbox for operators (pcg outbox), sampled by the outbox worker",
    multiprocess_mode="livemax",
)

SUBSCRIPTION_KINDS = {
    "boardEvents": "board", "taskChanged": "task", "noraEvents": "nora", "auditEntries": "audit",
}
LOG_KINDS = ("board", "nora", "audit")

# Bound once: the fan-out path increments these directly.
_delivered = {kind: DELIVERED.labels(kind) for kind in LOG_KINDS}
_appended = {kind: APPENDED.labels(kind) for kind in LOG_KINDS}
_published = {kind: PUBLISHED.labels(kind) for kind in LOG_KINDS}
for _kind in LOG_KINDS:
    PUBLISH_FAILED.labels(_kind)
    RESYNCS.labels(_kind)
    for _reason in ("seq_jump", "broker_gap"):
        REFILLS.labels(_kind, _reason)
for _kind in (*SUBSCRIPTION_KINDS.values(), "other"):
    SUBSCRIPTIONS.labels(_kind)


def delivered(kind: str) -> Counter:
    """The bound counter of a log (board, nora): the fan-out path increments it directly."""
    return _delivered.get(kind) or DELIVERED.labels(kind)


def appended(kind: str) -> None:
    (_appended.get(kind) or APPENDED.labels(kind)).inc()


def published(kind: str, count: int) -> None:
    (_published.get(kind) or PUBLISHED.labels(kind)).inc(count)


def refill(kind: str, reason: str) -> None:
    REFILLS.labels(kind, reason).inc()


def resync(kind: str) -> None:
    RESYNCS.labels(kind).inc()


def nora_reply(provider: str | None, outcome: str, tokens_in: int, tokens_out: int) -> None:
    provider = provider or "unknown"
    NORA_REPLIES.labels(provider, outcome).inc()
    if tokens_in:
        NORA_TOKENS.labels(provider, "in").inc(tokens_in)
    if tokens_out:
        NORA_TOKENS.labels(provider, "out").inc(tokens_out)


def email_sent(template: str) -> None:
    EMAILS_SENT.labels(template).inc()


def email_failed(template: str, outcome: str) -> None:
    EMAILS_FAILED.labels(template, outcome).inc()


# -- tracing -------------------------------------------------------------------------------------

# An OpenTelemetry tracer while PCG_OTEL_ENDPOINT is set (server/tracing.py), else None.
tracer = None


# -- bounded operation names ---------------------------------------------------------------

MAX_OPERATION_NAMES = 200
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_names: set[str] = set()


def operation_label(name: str | None, claim: bool = True) -> str:
    """The operation name when it is a short identifier, among the first MAX_OPERATION_NAMES
    seen by this process; "anonymous" without a name, "other" otherwise. Never query text.
    With `claim=False` a name not seen yet is "other" and takes no place."""
    if not name:
        return "anonymous"
    if name in _names:
        return name
    if not claim or len(_names) >= MAX_OPERATION_NAMES or not _NAME.fullmatch(name):
        return "other"
    _names.add(name)
    return name


def operation_display(name: str | None) -> str:
    """The name for logs and spans, which have no cardinality to bound: any short identifier."""
    if not name:
        return "anonymous"
    return name if _NAME.fullmatch(name) else "other"


# -- SQL statements per operation ------------------------------------------------------------

class StatementTally:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


# The operation's tally; tasks it starts inherit it (their statements count to it until it ends).
statements: ContextVar[StatementTally | None] = ContextVar("pcg_statements", default=None)


def _count_statement() -> None:
    SQL_STATEMENTS.inc()
    tally = statements.get()
    if tally is not None:
        tally.count += 1


class SqlVisibility(logging.Filter):
    """On the `tortoise.db_client` logger: its DEBUG records (one per statement, made only when
    the logger is at DEBUG) go on only to someone who listens for them (a handler on that
    logger, as tests/querycount.py adds, or `--log-level debug`), not to every handler of the
    root logger."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger
        self.show = False

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG or self.show or bool(self.logger.handlers)


def install_statement_counter(show_sql: bool = False) -> None:
    """Idempotent: statements counted (models/orm.on_statement) for the operation's tally and
    pcg_sql_statements_total; SQL logged when `show_sql`."""
    orm.on_statement(_count_statement)
    logger = logging.getLogger("tortoise.db_client")
    for existing in logger.filters:
        if isinstance(existing, SqlVisibility):
            existing.show = existing.show or show_sql
            break
    else:
        visibility = SqlVisibility(logger)
        visibility.show = show_sql
        logger.addFilter(visibility)
    if show_sql:
        logger.setLevel(logging.DEBUG)
