"""Planning: which digests are due at a moment, and what each one holds.

Subscribers are walked in chunks (one transaction each); for each active alert the
latest slot at or before `now` (schedule.latest_slot) counts if it is after the alert's
activation; alerts of one subscriber sharing frequency and slot make one digest, keyed
`subscriber:frequency:slot`. A key that exists was planned already (by an earlier run or
another process: the insert skips it), so a slot is planned once and only the latest
slot ever is: a missed slot is not replayed. A digest records the events it delivers per
alert (DigestEntry, unique per alert and event): the shown ones and those past
`max_items` (only behind the "more" link), so nothing is delivered twice and nothing is
carried into the next digest. Digest, DigestAlert and DigestEntry rows of a chunk are
written in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.digests import repository as repo
from alerts.digests.compose import subject_line
from alerts.digests.message import public_host
from alerts.digests.schedule import (
    FREQUENCIES,
    ScheduleError,
    digest_key,
    latest_slot,
    message_id,
)
from db.clock import utc_now
from db.session import transaction

log = logging.getLogger(__name__)

#: Subscribers planned per transaction.
PLAN_CHUNK = 500
#: An event created this long before an alert's last slot is still looked for: it may
#: have been committed after that digest was planned. (A poll transaction would have to
#: stay open this long for an event to be missed.)
SCAN_GRACE = timedelta(days=1)

#: (frequency, weekday, send_hour, timezone) -> latest slot, per run.
SlotCache = dict[tuple[str, str, int, str], datetime | None]


@dataclass
class PlanReport:
    planned: int = 0
    empty: int = 0


# --- planning -------------------------------------------------------------------------


@dataclass
class _Group:
    key: str
    subscriber_id: int
    frequency: str
    slot_at: datetime
    alerts: list[repo.DueAlert] = field(default_factory=list)


@dataclass(frozen=True)
class PlanStep:
    """What planning one chunk did; `last` is None when no subscriber was left."""

    planned: int
    empty: int
    last: int | None


def plan_next(
    session_factory: sessionmaker[Session],
    *,
    now: datetime,
    frequency: str | None,
    after: int,
    limit: int,
    host: str,
    slots: SlotCache,
) -> PlanStep:
    """Plan the next `limit` subscribers after `after`, in one transaction."""
    with transaction(session_factory) as session:
        subscriber_ids = repo.next_subscriber_ids(
            session, after=after, limit=limit, frequency=frequency
        )
        if not subscriber_ids:
            return PlanStep(0, 0, None)
        planned, empty = plan_chunk(
            session, subscriber_ids, now=now, frequency=frequency, host=host, slots=slots
        )
    return PlanStep(planned, empty, subscriber_ids[-1])


class Planner:
    """Plans what is due at `now`, one chunk of subscribers per step (and per
    transaction), so the sender can interleave planning with sending: `step` plans here,
    or a worker process plans `next_args()` and the result comes back through `apply`."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        *,
        now: datetime,
        frequency: str | None = None,
    ) -> None:
        check_frequency(frequency)
        self.session_factory = session_factory
        self.now = now
        self.frequency = frequency
        self.report = PlanReport()
        self.done = False
        self.host = public_host(settings)
        self._slots: SlotCache = {}
        self._after = 0

    def step(self) -> bool:
        """Plan the next chunk here; False when everything due is planned."""
        if self.done:
            return False
        self.apply(plan_next(
            self.session_factory, now=self.now, frequency=self.frequency, after=self._after,
            limit=PLAN_CHUNK, host=self.host, slots=self._slots,
        ))
        return not self.done

    def next_args(self) -> dict[str, object]:
        """The arguments of `plan_next` for the next chunk (for a worker to plan it)."""
        return {"now": self.now, "frequency": self.frequency, "after": self._after,
                "limit": PLAN_CHUNK, "host": self.host}

    def apply(self, step: PlanStep) -> None:
        if step.last is None:
            self.done = True
            return
        self.report.planned += step.planned
        self.report.empty += step.empty
        self._after = step.last


def _slot(alert: repo.DueAlert, now: datetime, slots: SlotCache) -> datetime | None:
    """The alert's latest slot, computed once per distinct schedule in a run."""
    schedule = (alert.frequency, alert.weekday, alert.send_hour, alert.timezone)
    if schedule not in slots:
        try:
            slots[schedule] = latest_slot(*schedule, now)
        except ScheduleError as exc:
            log.warning("alert %s has an unusable schedule: %s", alert.alert_id, exc)
            slots[schedule] = None
    return slots[schedule]


def plan_chunk(
    session: Session,
    subscriber_ids: Sequence[int],
    *,
    now: datetime,
    frequency: str | None,
    host: str,
    slots: SlotCache,
) -> tuple[int, int]:
    """Plan the due digests of these subscribers: (pending, empty) digests written.
    Flushes only; the caller commits Digest, DigestAlert and DigestEntry rows together."""
    groups: dict[str, _Group] = {}
    for alert in repo.active_alerts(session, subscriber_ids, frequency):
        slot_at = _slot(alert, now, slots)
        if slot_at is None or slot_at <= alert.activated_at:
            continue  # not due yet: its first slot is after its activation
        key = digest_key(alert.subscriber_id, alert.frequency, slot_at)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(key, alert.subscriber_id, alert.frequency, slot_at)
        group.alerts.append(alert)
    if not groups:
        return 0, 0
    planned = repo.planned_keys(session, list(groups))
    todo = [group for key, group in groups.items() if key not in planned]
    if not todo:
        return 0, 0

    alerts = [alert for group in todo for alert in group.alerts]
    alert_ids = [alert.alert_id for alert in alerts]
    since = _scan_from(session, alerts)
    counts = repo.undelivered_counts(session, alert_ids, since=since, until=now)

    created = utc_now()
    digest_rows = []
    #: Subscribers of the same targets mostly get the same counts, so the same subject.
    subjects: dict[tuple[object, ...], str] = {}
    for group in todo:
        parts = sorted(
            ((alert.target_name, counts.get(alert.alert_id, {})) for alert in group.alerts),
            key=lambda part: part[0],
        )
        total = sum(sum(part[1].values()) for part in parts)
        shape = (group.frequency, *((name, *part.items()) for name, part in parts))
        subject = subjects.get(shape)
        if subject is None:
            subject = subjects[shape] = subject_line(parts, group.frequency)
        wanted = total > 0 or any(alert.send_when_empty for alert in group.alerts)
        digest_rows.append({
            "key": group.key,
            "subscriber_id": group.subscriber_id,
            "frequency": group.frequency,
            "slot_at": group.slot_at,
            "status": repo.PENDING if wanted else repo.EMPTY,
            "attempts": 0,
            "message_id": message_id(group.subscriber_id, group.frequency, group.slot_at, host),
            "subject": subject,
            "item_count": total,
            "created_at": created,
        })

    inserted = repo.insert_digests(session, digest_rows)
    repo.insert_rows(session, repo.digest_alerts_t, [
        {"digest_id": inserted[group.key], "alert_id": alert.alert_id}
        for group in todo if group.key in inserted
        for alert in group.alerts
    ])
    repo.record_entries(session, list(inserted.values()), since=since, until=now)
    session.flush()
    empty = sum(
        1 for row in digest_rows if row["key"] in inserted and row["status"] == repo.EMPTY
    )
    return len(inserted) - empty, empty


def _scan_from(session: Session, alerts: Sequence[repo.DueAlert]) -> datetime:
    """How far back to look for undelivered events of these alerts: to each one's
    activation, or to shortly before its last digest's slot, whichever is later; for a
    chunk, the earliest of those."""
    last_slots = repo.last_slot_at(session, [alert.alert_id for alert in alerts])
    return min(
        max(alert.activated_at, last_slots[alert.alert_id] - SCAN_GRACE)
        if alert.alert_id in last_slots else alert.activated_at
        for alert in alerts
    )


def check_frequency(frequency: str | None) -> None:
    if frequency is not None and frequency not in FREQUENCIES:
        raise ValueError(f"frequency must be one of {', '.join(FREQUENCIES)}, not {frequency!r}")


