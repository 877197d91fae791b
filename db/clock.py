"""The single clock of the application, so tests can move time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return _now()


@contextmanager
def frozen_clock(at: datetime) -> Iterator[Callable[[datetime], None]]:
    """Freeze `utc_now()` at `at`; the yielded function moves it."""
    global _now
    if at.tzinfo is None:
        raise ValueError("frozen_clock needs an aware datetime")
    previous = _now
    current = [at.astimezone(UTC)]

    def move(to: datetime) -> None:
        current[0] = to.astimezone(UTC)

    _now = lambda: current[0]  # noqa: E731
    try:
        yield move
    finally:
        _now = previous
