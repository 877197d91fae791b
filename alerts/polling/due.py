"""When a (source, target) is polled: THE rule, for the query that picks due states and
for the time a poll's outcome schedules next.

A state is due when it has no `next_poll_at` yet or that time has come. After a poll
that stored its items, the next one is `interval` later (ALERTS_POLL_INTERVAL_MINUTES);
after failures in a row it backs off by the one backoff rule (alerts.backoff): the
interval doubled per earlier failure in the row, at most `MAX_BACKOFF`, and never before
the upstream's Retry-After.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_

from alerts.backoff import backoff_seconds
from db.models import SourceState

#: The longest a failing source waits between polls.
MAX_BACKOFF = timedelta(hours=24)


def is_due(now: datetime) -> ColumnElement[bool]:
    """The states whose poll time has come at `now`."""
    return or_(SourceState.next_poll_at.is_(None), SourceState.next_poll_at <= now)


def next_poll_at(
    now: datetime,
    *,
    interval: timedelta,
    failures_in_a_row: int = 0,
    retry_after: float | None = None,
) -> datetime:
    """When to poll again after a poll that ended at `now`: `interval` later after a
    success (`failures_in_a_row` 0), else backed off (the first failure waits
    `interval`, the second twice that ...)."""
    if failures_in_a_row == 0:
        return now + interval
    delay = backoff_seconds(
        failures_in_a_row - 1,
        base=interval.total_seconds(),
        cap=MAX_BACKOFF.total_seconds(),
        retry_after=retry_after,
    )
    return now + timedelta(seconds=delay)
