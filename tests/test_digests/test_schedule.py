"""When digests are due: the latest slot at or before a moment, in the alert's zone,
correct on both daylight-saving days of two zones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerts.digests.schedule import ScheduleError, digest_key, latest_slot, message_id


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-05-04T08:00:00Z", "2026-05-04T08:00:00Z"),  # exactly at the slot
        ("2026-05-04T07:59:59Z", "2026-05-03T08:00:00Z"),  # just before: yesterday's
        ("2026-05-04T23:00:00Z", "2026-05-04T08:00:00Z"),
    ],
)
def test_daily_slot_is_the_latest_at_or_before_now(now: str, expected: str) -> None:
    assert latest_slot("daily", "monday", 8, "UTC", utc(now)) == utc(expected)


def test_daily_slot_follows_the_local_day_of_the_zone() -> None:
    # 08:00 in Tokyo is 23:00 UTC the day before.
    slot = latest_slot("daily", "monday", 8, "Asia/Tokyo", utc("2026-05-04T00:30:00Z"))
    assert slot == utc("2026-05-04T08:00:00+09:00")


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-05-04T09:00:00Z", "2026-05-04T09:00:00Z"),  # Monday 09:00 itself
        ("2026-05-10T23:59:00Z", "2026-05-04T09:00:00Z"),  # all that week
        ("2026-05-04T08:59:00Z", "2026-04-27T09:00:00Z"),  # Monday before 09:00: last week
    ],
)
def test_weekly_slot_is_once_a_week_on_the_weekday(now: str, expected: str) -> None:
    assert latest_slot("weekly", "monday", 9, "UTC", utc(now)) == utc(expected)


@pytest.mark.parametrize(
    ("zone", "send_hour", "now", "expected"),
    [
        # Spring forward: 02:00-02:59 does not exist; fire when the clock jumps to 03:00.
        ("America/New_York", 2, "2026-03-08T12:00:00Z", "2026-03-08T03:00:00-04:00"),
        ("Europe/Berlin", 2, "2026-03-29T12:00:00Z", "2026-03-29T03:00:00+02:00"),
        # The hours around the gap are untouched.
        ("America/New_York", 3, "2026-03-08T12:00:00Z", "2026-03-08T03:00:00-04:00"),
        ("Europe/Berlin", 1, "2026-03-29T12:00:00Z", "2026-03-29T01:00:00+01:00"),
        # Fall back: 01:00 (New York) and 02:00 (Berlin) happen twice; the first counts.
        ("America/New_York", 1, "2026-11-01T12:00:00Z", "2026-11-01T01:00:00-04:00"),
        ("Europe/Berlin", 2, "2026-10-25T12:00:00Z", "2026-10-25T02:00:00+02:00"),
        # A normal hour on the fall-back day uses the new offset.
        ("America/New_York", 8, "2026-11-01T14:00:00Z", "2026-11-01T08:00:00-05:00"),
        ("Europe/Berlin", 8, "2026-10-25T12:00:00Z", "2026-10-25T08:00:00+01:00"),
    ],
)
def test_daylight_saving_days(zone: str, send_hour: int, now: str, expected: str) -> None:
    assert latest_slot("daily", "monday", send_hour, zone, utc(now)) == utc(expected)


@pytest.mark.parametrize(
    ("zone", "hour", "first", "second"),
    [
        ("America/New_York", 1, "2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00"),
        ("Europe/Berlin", 2, "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"),
    ],
)
def test_an_ambiguous_hour_fires_once(zone: str, hour: int, first: str, second: str) -> None:
    """When the hour comes round again, the latest slot is still its first occurrence:
    the same digest key, so nothing is planned twice."""
    assert latest_slot("daily", "monday", hour, zone, utc(second)) == utc(first)


def test_weekly_slot_across_a_change_keeps_the_local_hour() -> None:
    """Sunday 08:00 in Berlin is 07:00 UTC in March before the change, 06:00 after."""
    before = latest_slot("weekly", "sunday", 8, "Europe/Berlin", utc("2026-03-28T12:00:00Z"))
    after = latest_slot("weekly", "sunday", 8, "Europe/Berlin", utc("2026-04-04T12:00:00Z"))
    assert before == utc("2026-03-22T07:00:00Z")
    assert after == utc("2026-03-29T06:00:00Z")
    assert (after - before).total_seconds() == 7 * 24 * 3600 - 3600


def test_weekly_slot_in_a_gap_on_the_change_day() -> None:
    slot = latest_slot("weekly", "sunday", 2, "America/New_York", utc("2026-03-09T12:00:00Z"))
    assert slot == utc("2026-03-08T07:00:00Z")  # 03:00 EDT, the end of the gap


def test_a_half_hour_gap_ends_on_the_half_hour() -> None:
    # Lord Howe Island moves its clocks by 30 minutes: 02:00 -> 02:30.
    slot = latest_slot("daily", "monday", 2, "Australia/Lord_Howe", utc("2026-10-03T23:00:00Z"))
    assert slot == utc("2026-10-04T02:30:00+11:00")


@pytest.mark.parametrize(
    ("frequency", "weekday", "send_hour", "zone", "message"),
    [
        ("hourly", "monday", 8, "UTC", "frequency"),
        ("weekly", "someday", 8, "UTC", "weekday"),
        ("daily", "monday", 24, "UTC", "send_hour"),
        ("daily", "monday", 8, "Mars/Olympus", "time zone"),
    ],
)
def test_a_schedule_that_makes_no_sense_is_refused(
    frequency: str, weekday: str, send_hour: int, zone: str, message: str
) -> None:
    with pytest.raises(ScheduleError, match=message):
        latest_slot(frequency, weekday, send_hour, zone, utc("2026-05-04T12:00:00Z"))


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        latest_slot("daily", "monday", 8, "UTC", datetime(2026, 5, 4, 12))


def test_key_and_message_id_name_subscriber_frequency_and_slot() -> None:
    slot = utc("2026-05-04T10:00:00+02:00")
    assert digest_key(7, "daily", slot) == "7:daily:2026-05-04T08:00Z"
    assert message_id(7, "daily", slot, "alerts.example.org") == (
        "<digest.7.daily.20260504T0800Z@alerts.example.org>"
    )
