"""Scheduler heartbeats: each scheduler process's last sign of life, in the database.

The API and the schedulers may be different processes (or machines), so the only place
where `/metrics` can see whether some scheduler is alive is a row per scheduler. A row
that stops moving is a scheduler that died (SIGKILL, OOM, lost host); a clean stop
removes its own row, and rows silent for longer than `STALE_AFTER` are pruned by any
live scheduler so restarts do not pile up owners forever.

Services here only flush; the job that calls them commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from db.models import SchedulerHeartbeat

#: How long the row of a scheduler that vanished without a clean stop is kept (and so
#: shown by /metrics with a growing age) before a live scheduler prunes it.
STALE_AFTER = timedelta(days=1)


def record_heartbeat(
    session: Session, owner: str, *, now: datetime, started_at: datetime
) -> SchedulerHeartbeat:
    """Upsert `owner`'s row (each owner is one process, so no other writer races on
    it) and prune rows of schedulers gone for longer than `STALE_AFTER`."""
    row = session.get(SchedulerHeartbeat, owner)
    if row is None:
        row = SchedulerHeartbeat(owner=owner, started_at=started_at, seen_at=now)
        session.add(row)
    else:
        row.seen_at = now
    session.execute(
        delete(SchedulerHeartbeat).where(
            SchedulerHeartbeat.seen_at < now - STALE_AFTER, SchedulerHeartbeat.owner != owner
        )
    )
    session.flush()
    return row


def forget_heartbeat(session: Session, owner: str) -> None:
    """Remove `owner`'s row after a clean stop: a stopped scheduler is not a dead one."""
    session.execute(delete(SchedulerHeartbeat).where(SchedulerHeartbeat.owner == owner))
    session.flush()
