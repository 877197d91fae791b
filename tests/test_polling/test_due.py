"""When a source is polled next: an interval after a success, backed off by the one rule
after failures in a row, never before the upstream's Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.polling.due import MAX_BACKOFF, next_poll_at

NOW = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("failures_in_a_row", "after"),
    [(0, HOUR), (1, HOUR), (2, 2 * HOUR), (3, 4 * HOUR), (5, 16 * HOUR), (6, MAX_BACKOFF),
     (40, MAX_BACKOFF)],
)
def test_a_source_is_polled_an_interval_later_backing_off_after_failures(
    failures_in_a_row: int, after: timedelta
) -> None:
    assert next_poll_at(NOW, interval=HOUR, failures_in_a_row=failures_in_a_row) == NOW + after


def test_a_failed_poll_waits_for_a_longer_retry_after() -> None:
    assert next_poll_at(NOW, interval=HOUR, failures_in_a_row=1,
                        retry_after=3 * 3600) == NOW + 3 * HOUR
    assert next_poll_at(NOW, interval=HOUR, failures_in_a_row=1, retry_after=60) == NOW + HOUR
