"""Errors a client may see. Anything else is masked as INTERNAL_SERVER_ERROR."""

from __future__ import annotations

import errno
import socket
from typing import Any


class AppError(Exception):
    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions


class Unauthenticated(AppError):
    code = "UNAUTHENTICATED"

    def __init__(self, message: str = "Authentication required", **extensions: Any) -> None:
        super().__init__(message, **extensions)


class Forbidden(AppError):
    code = "FORBIDDEN"


class NotFound(AppError):
    code = "NOT_FOUND"

    def __init__(self, what: str = "Object", **extensions: Any) -> None:
        super().__init__(f"{what} not found", **extensions)


class BadInput(AppError):
    code = "BAD_USER_INPUT"

    def __init__(self, message: str, field: str | None = None, **extensions: Any) -> None:
        if field is not None:
            extensions["field"] = field
        super().__init__(message, **extensions)


class Conflict(AppError):
    code = "CONFLICT"


class RateLimited(AppError):
    code = "RATE_LIMITED"


class QuotaExceeded(AppError):
    code = "QUOTA_EXCEEDED"


class PlanLimitReached(AppError):
    """A write would take the organization past its plan's limit. Extensions: `resource`
    (members, projects, tasksPerProject, organizations), `limit`, `current` and `plan`."""

    code = "PLAN_LIMIT_REACHED"


class EmailNotVerified(AppError):
    """The caller's email address is not verified yet, and this needs it (accepting an invite,
    creating a second organization). `resendVerificationEmail` sends a new link."""

    code = "EMAIL_NOT_VERIFIED"


class ServiceUnavailable(AppError):
    """A dependency (database, broker) failed or timed out: the request may succeed if retried
    in a few seconds. HTTP answers carry status 503 and Retry-After."""

    code = "SERVICE_UNAVAILABLE"
    # Seconds a client should wait before retrying: long enough for a pool to reconnect or a
    # failover to finish, short enough that a blip costs little.
    retry_after = 2

    def __init__(self, message: str = "Service temporarily unavailable, retry shortly", **extensions: Any) -> None:
        super().__init__(message, **extensions)


# SQLSTATE classes of a server that cannot serve now, not of a bad statement: 08 connection
# exception, 53 insufficient resources (too many connections, out of memory or disk),
# 57 operator intervention (statement timeout 57014, admin shutdown, cannot connect now),
# 58 system error (I/O). Client errors (22 data, 23 integrity, 42 syntax) stay what they are.
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57", "58")
# asyncpg's own failures of a connection that is closed or broken underneath the operation.
_ASYNCPG_UNAVAILABLE = ("ConnectionDoesNotExistError", "ConnectionFailureError")
_NETWORK_ERRNOS = {
    errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EHOSTUNREACH,
    errno.ENETUNREACH, errno.ENETDOWN, errno.ETIMEDOUT, errno.EPIPE,
}
_SQLITE_UNAVAILABLE = ("database is locked", "database is busy", "unable to open database file", "disk i/o error")


def unavailable_from(error: BaseException | None) -> ServiceUnavailable | None:
    """A ServiceUnavailable when `error` (or what it wraps) is a dependency failure.

    The one classification of dependency failures: transport (OSError, ConnectionError,
    TimeoutError), asyncpg connection state and server-side SQLSTATE classes, Tortoise's
    DBConnectionError, SQLite busy beyond its busy_timeout, redis-py connection errors.
    Everything else, including every client error and every bug, returns None."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, ServiceUnavailable):
            return error
        if isinstance(error, AppError):
            return None
        if _is_dependency_failure(error):
            return ServiceUnavailable()
        error = error.__cause__ or error.__context__
    return None


def _is_dependency_failure(error: BaseException) -> bool:
    if isinstance(error, (ConnectionError, TimeoutError, socket.gaierror)):
        return True
    if isinstance(error, OSError):
        # A network failure, not a missing file or a permission: asyncpg reports a refused
        # connection to several addresses as a bare OSError naming each attempt.
        return error.errno in _NETWORK_ERRNOS or (error.errno is None and "Connect call failed" in str(error))
    module = type(error).__module__
    name = type(error).__name__
    if module.startswith("asyncpg"):
        if name in _ASYNCPG_UNAVAILABLE:
            return True
        sqlstate = getattr(error, "sqlstate", None) or ""
        if sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES:
            return True
        # A connection closed under the caller, or one whose protocol was left mid-operation
        # by a server-side termination it had not yet noticed.
        text = str(error)
        return name in ("InterfaceError", "InternalClientError") and (
            "connection is closed" in text or "pool is closing" in text or "cannot switch to state" in text
        )
    if module.startswith("tortoise") and name == "DBConnectionError":
        return True
    if module == "sqlite3" and name == "OperationalError":
        return str(error).lower().startswith(_SQLITE_UNAVAILABLE)
    if module.startswith("redis"):
        return name in ("ConnectionError", "TimeoutError", "BusyLoadingError")
    return False


def last_owner(message: str) -> Conflict:
    """The last owner of an organization or project may not be demoted or removed."""
    return Conflict(message, reason="LAST_OWNER")
