"""Due times across time zones and DST changes, as the scheduler meets them: the digest
job is run on a moving clock, tick after tick, the way APScheduler would call it, and
each subscriber gets one digest per local day (or week) at the local send hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.mail.mailbox import MailboxMailer
from db.clock import frozen_clock
from db.models import Alert, Digest, Subscriber, Target
from scheduler.jobs import JobContext, send_due_digests
from tests.conftest import make_settings


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


SCENARIOS = {
    # Europe/Berlin moves to CEST on 2026-03-29: 08:00 local is 07:00Z, then 06:00Z.
    "berlin-spring": ("Europe/Berlin", "daily", "monday", 8, "2026-03-28T00:00", "2026-03-31T00:00",
                      timedelta(minutes=30),
                      ["2026-03-28T07:00", "2026-03-29T06:00", "2026-03-30T06:00"]),
    # ... and back to CET on 2026-10-25: 06:00Z, then 07:00Z.
    "berlin-autumn": ("Europe/Berlin", "daily", "monday", 8, "2026-10-24T00:00",
                      "2026-10-27T00:00", timedelta(minutes=30),
                      ["2026-10-24T06:00", "2026-10-25T07:00", "2026-10-26T07:00"]),
    # 02:00 does not exist in New York on 2026-03-08: the digest goes when the clock
    # jumps (03:00 EDT, 07:00Z), once.
    "new-york-gap": ("America/New_York", "daily", "monday", 2, "2026-03-07T00:00",
                     "2026-03-10T00:00", timedelta(minutes=30),
                     ["2026-03-07T07:00", "2026-03-08T07:00", "2026-03-09T06:00"]),
    # 01:00 happens twice in New York on 2026-11-01: one digest, at the first.
    "new-york-fold": ("America/New_York", "daily", "monday", 1, "2026-10-31T12:00",
                      "2026-11-02T12:00", timedelta(minutes=30),
                      ["2026-11-01T05:00", "2026-11-02T06:00"]),
    # UTC+05:45, no DST: 08:00 local is 02:15Z.
    "kathmandu": ("Asia/Kathmandu", "daily", "monday", 8, "2026-03-28T00:00",
                  "2026-03-30T00:00", timedelta(minutes=15),
                  ["2026-03-28T02:15", "2026-03-29T02:15"]),
    # Weekly on Sunday 08:00 Berlin, across the change (two-hourly ticks, two weeks).
    "berlin-weekly": ("Europe/Berlin", "weekly", "sunday", 8, "2026-03-21T00:00",
                      "2026-04-06T00:00", timedelta(hours=2),
                      ["2026-03-22T07:00", "2026-03-29T06:00", "2026-04-05T06:00"]),
}


@pytest.mark.parametrize(
    ("zone", "frequency", "weekday", "hour", "start", "end", "tick", "slots"),
    list(SCENARIOS.values()),
    ids=list(SCENARIOS),
)
def test_the_digest_job_sends_one_digest_per_local_slot(
    isolated: tuple[Engine, sessionmaker[Session]],
    db_url: str,
    tmp_path: Path,
    zone: str,
    frequency: str,
    weekday: str,
    hour: int,
    start: str,
    end: str,
    tick: timedelta,
    slots: list[str],
) -> None:
    _engine, factory = isolated
    begin, finish = utc(start), utc(end)
    with factory() as session:
        target = session.scalars(select(Target)).first()
        assert target is not None
        reader = Subscriber(email="reader@example.org", verified_at=begin - timedelta(days=1))
        session.add(reader)
        session.flush()
        session.add(Alert(subscriber_id=reader.id, target_id=target.id, frequency=frequency,
                          weekday=weekday, send_hour=hour, timezone=zone, status="active",
                          send_when_empty=True, activated_at=begin - timedelta(hours=1)))
        session.commit()
    mailer = MailboxMailer(tmp_path / "mailbox")
    ctx = JobContext(settings=make_settings(tmp_path, db_url), session_factory=factory,
                     mailer=mailer, owner="dst-test", started_at=begin)

    with frozen_clock(begin) as move:
        at = begin
        while at < finish:
            move(at)
            send_due_digests(ctx)
            at += tick

    with factory() as session:
        digests = session.scalars(select(Digest).order_by(Digest.slot_at)).all()
    assert [d.slot_at for d in digests] == [utc(slot) for slot in slots]
    for digest in digests:
        # Sent by the first tick at or after its slot, never before it.
        assert digest.status == "sent" and digest.sent_at is not None
        assert digest.slot_at <= digest.sent_at < digest.slot_at + tick
    assert len(mailer.messages()) == len(slots)
