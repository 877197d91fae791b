"""Domain errors carry their HTTP status; one handler renders them as JSON.

Services raise these for business rules; routes never build HTTPException for them.
"""

from __future__ import annotations

from typing import Any


class AlertsError(Exception):
    status_code = 400

    def __init__(self, detail: Any, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail if isinstance(detail, str) else repr(detail))
        self.detail = detail
        self.headers = headers


class Unauthorized(AlertsError):
    status_code = 401

    def __init__(self, detail: Any = "missing or invalid bearer token") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class NotFound(AlertsError):
    status_code = 404


class Conflict(AlertsError):
    status_code = 409


class PayloadTooLarge(AlertsError):
    status_code = 413


class Unprocessable(AlertsError):
    """422 with a detail in FastAPI's own shape: [{loc, msg, type}]."""

    status_code = 422

    def __init__(self, field: str, message: str, *, location: str = "body") -> None:
        super().__init__([{"loc": [location, field], "msg": message, "type": "value_error"}])


class TooManyRequests(AlertsError):
    status_code = 429

    def __init__(self, detail: Any = "too many requests", retry_after: int = 60) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after)}
