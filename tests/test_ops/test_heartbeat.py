"""Scheduler heartbeats: one row per live scheduler, upserted; dead ones age, then go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.ops.heartbeat import STALE_AFTER, forget_heartbeat, record_heartbeat
from db.models import SchedulerHeartbeat

T0 = datetime(2026, 3, 29, 6, 0, tzinfo=UTC)


def _rows(session: Session) -> dict[str, datetime]:
    return {
        row.owner: row.seen_at
        for row in session.scalars(select(SchedulerHeartbeat).order_by(SchedulerHeartbeat.owner))
    }


def test_a_heartbeat_is_upserted_by_owner(session: Session) -> None:
    record_heartbeat(session, "host-1-aaa", now=T0, started_at=T0)
    record_heartbeat(session, "host-1-aaa", now=T0 + timedelta(minutes=1), started_at=T0)
    row = session.get(SchedulerHeartbeat, "host-1-aaa")
    assert row is not None
    assert (row.started_at, row.seen_at) == (T0, T0 + timedelta(minutes=1))
    assert list(_rows(session)) == ["host-1-aaa"]


def test_silent_schedulers_are_kept_for_a_day_then_pruned(session: Session) -> None:
    record_heartbeat(session, "killed-long-ago", now=T0 - STALE_AFTER - timedelta(seconds=1),
                     started_at=T0 - timedelta(days=3))
    record_heartbeat(session, "killed-recently", now=T0 - timedelta(hours=1),
                     started_at=T0 - timedelta(days=1))
    record_heartbeat(session, "alive", now=T0, started_at=T0)
    assert list(_rows(session)) == ["alive", "killed-recently"]


def test_a_clean_stop_forgets_only_its_own_row(session: Session) -> None:
    record_heartbeat(session, "a", now=T0, started_at=T0)
    record_heartbeat(session, "b", now=T0, started_at=T0)
    forget_heartbeat(session, "a")
    assert list(_rows(session)) == ["b"]
