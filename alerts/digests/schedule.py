"""When a digest is due: pure functions of an alert's schedule and a moment.

A daily alert is due once per local day at `send_hour` in its IANA time zone; a weekly
one once per local week on `weekday` at `send_hour`. Everything here works on aware
datetimes and answers in UTC, so a slot is one instant whatever the zone:

- a `send_hour` that does not exist that day (the spring-forward gap, e.g. 02:30 in
  America/New_York on the second Sunday of March) fires at the first instant after the
  gap, which is when the local clock jumps;
- an ambiguous one (the fall-back hour happens twice) fires once, at its first
  occurrence (fold=0).

Only the latest slot at or before a moment is ever planned: a service that was down
for three days sends one digest when it is back, not three.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS: tuple[str, ...] = (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
)
FREQUENCIES: tuple[str, ...] = ("daily", "weekly")


class ScheduleError(ValueError):
    """An alert's schedule cannot be evaluated (unknown frequency, weekday or zone)."""


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r}") from None


def local_instant(day: date, hour: int, zone: ZoneInfo) -> datetime:
    """The UTC instant at which the wall clock of `zone` reads `hour`:00 on `day`.

    Ambiguous wall times resolve to their first occurrence; wall times inside a
    spring-forward gap resolve to the end of the gap (the transition instant)."""
    if not 0 <= hour <= 23:
        raise ScheduleError(f"send_hour must be 0-23, not {hour}")
    wall = datetime.combine(day, time(hour))
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    return _gap_end(wall, zone)


def _gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant whose local time is at or after `wall`, which lies in a gap.

    For a time in a gap, fold=1 maps with the offset after the transition (an instant
    before the gap) and fold=0 with the one before it (an instant after the gap), so the
    transition lies between them; the wall clock only moves forward there, so a
    bisection over whole seconds finds it."""
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    low, high = 0, int((after - before).total_seconds())
    while low < high:
        middle = (low + high) // 2
        candidate = before + timedelta(seconds=middle)
        if candidate.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle + 1
    return before + timedelta(seconds=low)


def latest_slot(
    frequency: str, weekday: str, send_hour: int, timezone: str, now: datetime
) -> datetime:
    """The latest delivery slot at or before `now`, as an aware UTC datetime.

    `weekday` only matters for weekly alerts. Raises ScheduleError for a schedule that
    makes no sense (the API refuses those before they are stored)."""
    if now.tzinfo is None:
        raise ValueError("latest_slot needs an aware datetime")
    zone = _zone(timezone)
    today = now.astimezone(zone).date()
    if frequency == "daily":
        step = 1
        day = today
    elif frequency == "weekly":
        try:
            wanted = WEEKDAYS.index(weekday)
        except ValueError:
            raise ScheduleError(f"unknown weekday {weekday!r}") from None
        step = 7
        day = today - timedelta(days=(today.weekday() - wanted) % 7)
    else:
        raise ScheduleError(f"unknown frequency {frequency!r}")
    slot = local_instant(day, send_hour, zone)
    if slot > now:
        slot = local_instant(day - timedelta(days=step), send_hour, zone)
    return slot


@lru_cache(maxsize=256)
def _slot_text(slot_at: datetime) -> tuple[str, str]:
    """A slot in UTC as the key and the Message-ID write it (planning formats the same
    few slots for every subscriber)."""
    utc = slot_at.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%MZ}", f"{utc:%Y%m%dT%H%MZ}"


def digest_key(subscriber_id: int, frequency: str, slot_at: datetime) -> str:
    """The idempotency key of a digest: one per subscriber, frequency and slot."""
    return f"{subscriber_id}:{frequency}:{_slot_text(slot_at)[0]}"


def message_id(subscriber_id: int, frequency: str, slot_at: datetime, host: str) -> str:
    """A Message-ID derived from the digest key, so a retried send carries the same one
    and a receiver can drop the duplicate (a key's `:` is not allowed in a msg-id)."""
    return f"<digest.{subscriber_id}.{frequency}.{_slot_text(slot_at)[1]}@{host}>"
