"""The one backoff rule: doubling per earlier failure, capped, jitter within [50 %, 100 %]
when asked for, and never before the server's Retry-After."""

from __future__ import annotations

import pytest

from alerts.backoff import backoff_seconds


@pytest.mark.parametrize(
    ("failures_before", "expected"),
    [(0, 60.0), (1, 120.0), (2, 240.0), (5, 1920.0), (6, 3600.0), (60, 3600.0)],
)
def test_the_delay_doubles_per_earlier_failure_up_to_the_cap(
    failures_before: int, expected: float
) -> None:
    assert backoff_seconds(failures_before, base=60, cap=3600) == expected


def test_without_a_cap_the_exponent_still_stays_bounded() -> None:
    assert backoff_seconds(10_000, base=1) == 2.0**30


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.5), (0.5, 0.75), (0.999, 0.9995)])
def test_jitter_scales_the_delay_into_half_to_all_of_it(draw: float, factor: float) -> None:
    assert backoff_seconds(2, base=1, jitter=lambda: draw) == pytest.approx(4 * factor)


def test_jitter_applies_after_the_cap() -> None:
    assert backoff_seconds(20, base=1, cap=30, jitter=lambda: 0.0) == 15.0


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(None, 240.0), (10.0, 240.0), (500.0, 500.0), (90_000.0, 90_000.0)],
)
def test_retry_after_is_a_floor_the_cap_never_cuts(
    retry_after: float | None, expected: float
) -> None:
    assert backoff_seconds(2, base=60, cap=3600, retry_after=retry_after) == expected


def test_retry_after_wins_over_a_jittered_delay() -> None:
    assert backoff_seconds(0, base=4, jitter=lambda: 0.0, retry_after=3.0) == 3.0


def test_a_negative_failure_count_is_refused() -> None:
    with pytest.raises(ValueError, match="failures_before"):
        backoff_seconds(-1, base=1)

