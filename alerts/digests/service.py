"""The digest API's service: an alert's preview and the operator's list of digests.

Sending digests is alerts.digests.delivery.send.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from alerts.digests import repository as repo
from alerts.digests.planning import SCAN_GRACE
from alerts.digests.schemas import DigestOut, DigestPage, DigestStatus
from alerts.pagination import decode_cursor, encode_cursor
from db.clock import utc_now
from db.models import Alert


@dataclass(frozen=True)
class Preview:
    """What the alert's next digest would hold: the shown events, and how many more."""

    events: list[repo.EventRow]
    more: int


def preview(session: Session, alert: Alert, *, now: datetime | None = None) -> Preview:
    """The selection planning would make for `alert` at `now`, with nothing written. A
    pending alert has no digest yet (its items start at activation): nothing."""
    if alert.activated_at is None:
        return Preview([], 0)
    last = repo.last_slot_at(session, [alert.id]).get(alert.id)
    since = max(alert.activated_at, last - SCAN_GRACE) if last else alert.activated_at
    ranked = repo.undelivered_ranked(session, alert.id, since=since, until=now or utc_now())
    shown = [event_id for event_id, is_shown in ranked if is_shown]
    events = repo.events_by_id(session, shown)
    return Preview([events[e] for e in shown if e in events], len(ranked) - len(shown))


# --- the operator's list --------------------------------------------------------------

MAX_DIGEST_PAGE = 200


def list_digests(
    session: Session, *, status: str | None, cursor: str | None, limit: int
) -> DigestPage:
    before = decode_cursor(cursor, int)[0] if cursor else None
    records = repo.list_digests(session, status=status, before_id=before, limit=limit + 1)
    page = records[:limit]
    alert_ids = repo.digest_alert_ids(session, [record.id for record in page])
    data = [
        DigestOut(
            id=record.id, key=record.key, email=record.email, frequency=record.frequency,
            slot_at=record.slot_at, status=DigestStatus(record.status),
            attempts=record.attempts, last_error=record.last_error, subject=record.subject,
            item_count=record.item_count, created_at=record.created_at,
            sent_at=record.sent_at, mail_status=record.mail_status,
            alert_ids=alert_ids.get(record.id, []),
        )
        for record in page
    ]
    more = len(records) > limit
    return DigestPage(data=data, next_cursor=encode_cursor(page[-1].id) if more else None)
