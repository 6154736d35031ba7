"""Errors a client may see. Anything else is masked as INTERNAL_SERVER_ERROR."""

from __future__ import annotations

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
