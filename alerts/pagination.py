"""The one pagination cursor codec and the bounds every id and date from a client obeys.

A cursor is opaque to clients: the sort key of a page's last row, as a JSON list in
base64url. Whatever a client sends back instead (a cut cursor, a huge number, thousands
of brackets, a date past year 9999 once moved to UTC) is one 422 naming `cursor`, never
a 500: the text is bounded before it is decoded, and every value is checked against the
type and range the database can hold. Ids in paths and forms share the same bound
(`MAX_ID`, PostgreSQL's bigint), so an id no row can have is a 422 or a 404, not an
overflow inside the driver.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import Path, Query

from alerts.errors import Unprocessable

#: The largest id a row can have (BIGINT); ids from clients are checked against it.
MAX_ID = 2**63 - 1
#: Longer than any cursor this API makes; longer text is refused before decoding, which
#: also bounds how deeply a forged JSON value can nest.
MAX_CURSOR_LENGTH = 200

IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="A positive id.")]
CursorQuery = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page."),
]

_BAD_CURSOR = "invalid cursor: pass the next_cursor of a previous page"


def encode_cursor(*key: int | datetime) -> str:
    """The cursor after a row whose sort key is `key` (ids and aware datetimes)."""
    parts = [part.astimezone(UTC).isoformat() if isinstance(part, datetime) else part
             for part in key]
    raw = json.dumps(parts, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *shape: type[int] | type[datetime]) -> tuple[Any, ...]:
    """The sort key `encode_cursor` wrote, one value per type in `shape`: ids as ints
    from 0 to MAX_ID, datetimes as aware UTC datetimes. 422 for anything else."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise _invalid()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _invalid() from None
    if not isinstance(parts, list) or len(parts) != len(shape):
        raise _invalid()
    return tuple(_checked(part, kind) for part, kind in zip(parts, shape, strict=True))


def _checked(value: Any, kind: type[int] | type[datetime]) -> Any:
    if kind is datetime:
        moment = parse_moment(value) if isinstance(value, str) else None
        if moment is None:
            raise _invalid()
        return moment
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise _invalid()
    return value


def parse_moment(text: str, *, date_only_ok: bool = False) -> datetime | None:
    """An ISO-8601 datetime as an aware UTC datetime (naive means UTC; with
    `date_only_ok`, a bare date means its midnight UTC), or None when it is not one or
    falls outside what a UTC datetime can hold (year 1 to 9999 after the offset)."""
    value = text.strip()
    try:
        if date_only_ok and len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _invalid() -> Unprocessable:
    return Unprocessable("cursor", _BAD_CURSOR, location="query")
