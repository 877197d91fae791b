"""Matched items per week, by kind, and the stacked bar chart drawn from them.

A week starts on Monday (UTC). An item counts in the week it happened: a publication
or news item by its publication date when known, a new trial by its first posting, a
trial update by when the service saw the change. So a target added today shows its
history, not one tall bar for the day its backfill ran.

The chart is geometry only (rectangles with their counts); the page's template draws
it as inline SVG beside a table that says the same in text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

#: The kinds counted, in the chart's stacking order, with their labels and colours.
KINDS: tuple[tuple[str, str, str], ...] = (
    ("new_trials", "New trials", "#1b6e3a"),
    ("trial_updates", "Trial updates", "#7fb77e"),
    ("publications", "Publications", "#1d3f72"),
    ("news", "News", "#c98a1a"),
)
KIND_NAMES = tuple(kind for kind, _label, _colour in KINDS)


@dataclass(frozen=True)
class Week:
    start: date
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def week_start(moment: datetime | date) -> date:
    day = moment.date() if isinstance(moment, datetime) else moment
    return day - timedelta(days=day.weekday())


def weekly_counts(
    happenings: Iterable[tuple[datetime, str]], *, today: date, weeks: int = 52
) -> list[Week]:
    """`weeks` weeks ending with the one holding `today`, oldest first, each with its
    count per kind; happenings outside them or of another kind are not counted."""
    last = week_start(today)
    first = last - timedelta(weeks=weeks - 1)
    counts = {first + timedelta(weeks=n): dict.fromkeys(KIND_NAMES, 0) for n in range(weeks)}
    for moment, kind in happenings:
        bucket = counts.get(week_start(moment))
        if bucket is not None and kind in bucket:
            bucket[kind] += 1
    return [Week(start, per_kind) for start, per_kind in counts.items()]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    label: str  # what a pointer's tooltip says: "Week of 2026-05-04: 3 publications"


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: Sequence[Bar]
    max_total: int
    #: (x, text) of the month labels under the axis.
    ticks: Sequence[tuple[float, str]]


def chart(weeks: Sequence[Week], *, width: int = 640, height: int = 160) -> Chart:
    """Stacked bars, one column per week, scaled to the busiest week."""
    plot_height = height - 20  # room for the month labels
    max_total = max((w.total for w in weeks), default=0)
    column = width / max(len(weeks), 1)
    bars: list[Bar] = []
    ticks: list[tuple[float, str]] = []
    for n, week in enumerate(weeks):
        x = n * column
        if week.start.day <= 7 and x < width - 24:  # a label needs room on its right
            ticks.append((round(x, 1), week.start.strftime("%b")))
        y = float(plot_height)
        for kind, label, colour in KINDS:
            count = week.counts.get(kind, 0)
            if not count or not max_total:
                continue
            bar_height = plot_height * count / max_total
            y -= bar_height
            bars.append(Bar(
                x=round(x + 1, 1), y=round(y, 1), width=round(max(column - 2, 1), 1),
                height=round(bar_height, 1), colour=colour,
                label=f"Week of {week.start.isoformat()}: {count} {label.lower()}",
            ))
    return Chart(width=width, height=height, bars=bars, max_total=max_total, ticks=ticks)
