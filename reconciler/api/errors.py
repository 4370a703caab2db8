"""The API's expected failures and their one JSON shape, {error, message, field}."""

from __future__ import annotations

from typing import Any

from ..errors import ReconcilerError


class ApiError(ReconcilerError):
    """An expected failure with its HTTP status; rendered as {error, message, field}."""

    def __init__(self, status: int, error: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.field = field


def error_body(error: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": error, "message": message, "field": field}
