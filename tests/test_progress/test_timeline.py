"""Weekly counts and the chart's geometry."""

from __future__ import annotations

from datetime import UTC, date, datetime

from alerts.progress.timeline import chart, week_start, weekly_counts

TODAY = date(2026, 12, 9)  # a Wednesday


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def test_weeks_start_on_monday() -> None:
    assert week_start(at("2026-12-09T23:00")) == date(2026, 12, 7)
    assert week_start(date(2026, 12, 7)) == date(2026, 12, 7)
    assert week_start(date(2026, 12, 13)) == date(2026, 12, 7)


def test_counts_per_week_and_kind_over_the_window() -> None:
    weeks = weekly_counts([
        (at("2026-12-07T00:00"), "publications"),
        (at("2026-12-13T23:59"), "publications"),
        (at("2026-12-08T10:00"), "new_trials"),
        (at("2026-11-30T10:00"), "trial_updates"),
        (at("2026-12-01T10:00"), "news"),
        (at("2025-12-01T10:00"), "news"),  # older than 52 weeks
        (at("2026-12-14T00:00"), "news"),  # next week: not yet in the window
        (at("2026-12-08T00:00"), "something else"),
    ], today=TODAY, weeks=52)

    assert len(weeks) == 52
    assert weeks[0].start == date(2025, 12, 15) and weeks[-1].start == date(2026, 12, 7)
    assert weeks[-1].counts == {"new_trials": 1, "trial_updates": 0, "publications": 2,
                                "news": 0}
    assert weeks[-2].counts == {"new_trials": 0, "trial_updates": 1, "publications": 0,
                                "news": 1}
    assert sum(w.total for w in weeks) == 5


def test_the_busiest_week_fills_the_chart_and_bars_stack() -> None:
    weeks = weekly_counts([(at("2026-12-07T00:00"), "publications")] * 3
                          + [(at("2026-12-07T00:00"), "new_trials")]
                          + [(at("2026-11-30T00:00"), "news")], today=TODAY, weeks=4)

    drawn = chart(weeks, width=400, height=120)

    plot = 120 - 20
    assert drawn.max_total == 4
    last = [bar for bar in drawn.bars if bar.x > 300]
    assert sum(bar.height for bar in last) == plot
    assert min(bar.y for bar in last) == 0
    assert {bar.label for bar in last} == {"Week of 2026-12-07: 1 new trials",
                                           "Week of 2026-12-07: 3 publications"}


def test_an_empty_year_draws_no_bars() -> None:
    drawn = chart(weekly_counts([], today=TODAY))
    assert drawn.bars == [] and drawn.max_total == 0
