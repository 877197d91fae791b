"""Domain errors carry their HTTP status; one handler renders them as JSON.

Services raise these for business rules; routes never build HTTPException for them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


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


class InvalidFields(AlertsError):
    """422 naming each bad field, in FastAPI's own shape: [{loc, msg, type}]."""

    status_code = 422

    def __init__(
        self, problems: list[tuple[tuple[int | str, ...], str]], *, location: str = "body"
    ) -> None:
        super().__init__([{"loc": [location, *loc], "msg": message, "type": "value_error"}
                          for loc, message in problems])


class Unprocessable(InvalidFields):
    """422 for one bad field."""

    def __init__(self, field: str, message: str, *, location: str = "body") -> None:
        super().__init__([((field,), message)], location=location)


class TooManyRequests(AlertsError):
    status_code = 429

    def __init__(self, detail: Any = "too many requests", retry_after: int = 60) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after)}


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    """Every error answer of the JSON API: a sentence, or for 422 the invalid fields."""

    detail: str | list[FieldError]


#: What each error status means wherever a route documents it.
_MEANINGS = {
    400: "Malformed request",
    401: "Missing, invalid or expired bearer token",
    403: "Needs the admin token",
    404: "Not found (another subscriber's alert is not found either)",
    409: "Conflicts with the current state",
    413: "Request body over the size limit",
    422: "Invalid field or parameter; `detail[].loc` names it",
    429: "Too many requests; retry after `Retry-After` seconds",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that answers these error statuses."""
    documented: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        documented[code] = {"model": ErrorOut, "description": _MEANINGS[code]}
        if code == 429:
            documented[code]["headers"] = {
                "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
            }
    return documented
