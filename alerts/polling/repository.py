"""Poll state in the database: source states and their leases, feed caching state, and
the per-source advisory lock that keeps NCBI's rate limit across processes.

The database is the schedule: each (source, target) row says when it is next due, who
holds it (a lease that expires, so a killed process frees it) and how it last went.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from alerts.items.repository import insert_ignoring_conflicts
from alerts.polling import due
from alerts.polling.due import is_due
from alerts.sources.base import FeedOutcome, FeedStatus
from alerts.sources.urls import without_credentials
from db import leases
from db.models import Feed, SourceState, Target

GONE_REASON = "HTTP 410 Gone"


def ensure_states(session: Session, pairs: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """Make sure a state row exists for every (source, target id); their ids. Two
    processes may do this at once: the insert ignores rows that exist."""
    if not pairs:
        return {}
    insert_ignoring_conflicts(
        session,
        SourceState,
        [
            {"source": source, "target_id": target_id, "cursor": {}, "warnings": [],
             "consecutive_failures": 0, "polls_total": 0, "failures_total": 0}
            for source, target_id in sorted(set(pairs))
        ],
        ("source", "target_id"),
    )
    wanted = set(pairs)
    rows = session.execute(
        select(SourceState.source, SourceState.target_id, SourceState.id).where(
            SourceState.target_id.in_({target_id for _s, target_id in wanted})
        )
    )
    return {(s, t): state_id for s, t, state_id in rows
            if t is not None and (s, t) in wanted}


def ensure_catalogue_states(session: Session, sources: Sequence[str]) -> dict[str, int]:
    """Make sure each source has its catalogue-wide state row (the one without a target,
    unique per source by a partial index); their ids by source. Two processes may do
    this at once: the insert ignores rows that exist."""
    if not sources:
        return {}
    dialect = session.get_bind().dialect.name
    make_insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = make_insert(SourceState).on_conflict_do_nothing(
        index_elements=["source"], index_where=SourceState.target_id.is_(None)
    )
    session.execute(statement, [
        {"source": source, "target_id": None, "cursor": {}, "warnings": [],
         "consecutive_failures": 0, "polls_total": 0, "failures_total": 0}
        for source in sorted(set(sources))
    ])
    rows = session.execute(
        select(SourceState.source, SourceState.id)
        .where(SourceState.target_id.is_(None), SourceState.source.in_(set(sources)))
    )
    return {source: state_id for source, state_id in rows}


def polled_targets(session: Session, source: str) -> set[int]:
    """The targets polled successfully at least once for `source` on their own (their
    first history is done)."""
    return set(session.scalars(
        select(SourceState.target_id).where(
            SourceState.source == source, SourceState.target_id.is_not(None),
            SourceState.last_success_at.is_not(None),
        )
    ))


def claim(
    session: Session, state_id: int, owner: str, *, now: datetime, lease: timedelta,
    due_only: bool,
) -> bool:
    """Take the lease on a state in one atomic UPDATE; True iff this call got it. Works
    the same on SQLite and PostgreSQL: of two concurrent claims, one matches the row."""
    where = [SourceState.id == state_id]
    if due_only:
        where.append(is_due(now))
    return leases.claim(
        session, SourceState, *where, owner=owner, now=now, until=now + lease,
        values={"last_attempt_at": now},
    ) == 1


def renew_lease(session: Session, state_id: int, owner: str, *, expires_at: datetime) -> bool:
    """Extend `owner`'s lease; False when it is no longer theirs."""
    return leases.renew(session, SourceState, SourceState.id == state_id, owner=owner,
                        until=expires_at) == 1


def held_by_other(session: Session, state_id: int, *, now: datetime) -> bool:
    """True when a lease that has not expired holds the state (after a failed claim: held,
    rather than not due)."""
    expires = session.scalar(
        select(SourceState.lease_expires_at).where(SourceState.id == state_id)
    )
    return leases.is_held(expires, now)


def get_state(session: Session, state_id: int) -> SourceState:
    return session.get_one(SourceState, state_id)


def record_success(
    session: Session,
    state_id: int,
    owner: str,
    *,
    now: datetime,
    cursor: dict[str, Any] | None,
    warnings: list[str],
    interval: timedelta,
) -> datetime:
    """A poll stored its items: move the cursor (None keeps it), count, reschedule, and
    release the lease, in the caller's (storing) transaction. Returns the next poll."""
    next_poll_at = due.next_poll_at(now, interval=interval)
    values: dict[str, Any] = {
        "last_success_at": now,
        "consecutive_failures": 0,
        "polls_total": SourceState.polls_total + 1,
        "warnings": warnings,
        "next_poll_at": next_poll_at,
        **leases.freed_if_held_by(SourceState, owner),
    }
    if cursor is not None:
        values["cursor"] = cursor
    session.execute(
        update(SourceState).where(SourceState.id == state_id).values(values)
        .execution_options(synchronize_session=False)
    )
    return next_poll_at


def record_failure(
    session: Session,
    state_id: int,
    owner: str,
    *,
    now: datetime,
    error: str,
    interval: timedelta,
    retry_after: float | None,
) -> tuple[int, datetime]:
    """A poll failed: keep the error, count it, back off (alerts.polling.due), release
    the lease. Returns (consecutive failures, next poll)."""
    failures = (
        session.scalar(
            select(SourceState.consecutive_failures).where(SourceState.id == state_id)
        )
        or 0
    ) + 1
    next_poll_at = due.next_poll_at(
        now, interval=interval, failures_in_a_row=failures, retry_after=retry_after
    )
    session.execute(
        update(SourceState)
        .where(SourceState.id == state_id)
        .values(
            last_error=error,
            last_error_at=now,
            consecutive_failures=SourceState.consecutive_failures + 1,
            failures_total=SourceState.failures_total + 1,
            polls_total=SourceState.polls_total + 1,
            next_poll_at=next_poll_at,
            **leases.freed_if_held_by(SourceState, owner),
        )
        .execution_options(synchronize_session=False)
    )
    return failures, next_poll_at


def apply_feed_outcomes(
    session: Session, target_id: int | None, outcomes: Sequence[FeedOutcome], now: datetime
) -> None:
    """Store what each feed fetch learned: validators, title, health; a permanent redirect
    moves the URL (or, when the target already has that URL, disables the old entry); 410
    disables the feed. `target_id` None: the catalogue's own feeds."""
    if not outcomes:
        return
    feeds = {
        feed.id: feed
        for feed in session.scalars(
            select(Feed).where(
                _of_target(target_id), Feed.id.in_([o.feed_id for o in outcomes])
            )
        )
    }
    for outcome in outcomes:
        feed = feeds.get(outcome.feed_id)
        if feed is None:  # removed while it was being fetched
            continue
        feed.last_fetched_at = now
        if outcome.status is FeedStatus.failed:
            feed.last_error = outcome.error or "fetch failed"
            feed.consecutive_failures += 1
            continue
        if outcome.status is FeedStatus.gone:
            feed.enabled = False
            feed.disabled_reason = GONE_REASON
            feed.last_error = GONE_REASON
            continue
        feed.last_success_at = now
        feed.last_error = None
        feed.consecutive_failures = 0
        for attribute in ("etag", "last_modified", "content_hash", "title"):
            value = getattr(outcome, attribute)
            if value is not None:
                setattr(feed, attribute, value)
        if outcome.new_url and outcome.new_url != feed.url:
            _move_feed(session, feed, outcome.new_url)
    session.flush()


def _move_feed(session: Session, feed: Feed, new_url: str) -> None:
    taken = session.scalar(
        select(Feed.id).where(
            _of_target(feed.target_id), Feed.url == new_url, Feed.id != feed.id
        )
    )
    if taken is not None:
        feed.enabled = False
        shown = without_credentials(new_url)
        feed.disabled_reason = f"moved permanently to {shown}, which the target already has"
    else:
        feed.url = new_url
        session.flush()  # the next feed's clash check must see this URL taken


def _of_target(target_id: int | None) -> Any:
    """Feeds of the target, or of the whole catalogue when `target_id` is None."""
    return Feed.target_id.is_(None) if target_id is None else Feed.target_id == target_id


def statuses(session: Session) -> list[tuple[SourceState, str | None]]:
    """Every source state with its target's slug (None: the catalogue-wide state), by
    source, the catalogue-wide state first, then slug."""
    rows = session.execute(
        select(SourceState, Target.slug)
        .outerjoin(Target, Target.id == SourceState.target_id)
        .order_by(SourceState.source, SourceState.target_id.is_not(None), Target.slug)
    )
    return [(state, slug) for state, slug in rows]


class SourceLock:
    """A PostgreSQL session-level advisory lock on one source, held while a process polls
    it, so the upstream's per-IP rate limit holds across processes: a second poller finds
    it taken and skips instead of doubling the request rate. On SQLite (one process by
    design) it is always granted.

    The lock lives on a connection of its own (autocommit, no transaction left open while
    fetching); it is released explicitly, and dies with the connection if the process
    does.
    """

    def __init__(self, bind: Engine | Connection, source: str) -> None:
        self.bind = bind
        self.key = lock_key(source)
        self._connection: Connection | None = None
        self._owns_connection = False

    def acquire(self) -> bool:
        if self.bind.dialect.name != "postgresql":
            return True
        if isinstance(self.bind, Engine):
            connection = self.bind.connect().execution_options(isolation_level="AUTOCOMMIT")
            owns = True
        else:  # a connection handed in (tests run inside one transaction)
            connection, owns = self.bind, False
        got = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
        ).scalar_one()
        if got:
            self._connection, self._owns_connection = connection, owns
        elif owns:
            connection.close()
        return bool(got)

    def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        except Exception:
            if self._owns_connection:
                connection.invalidate()  # a lock we could not release dies with it
            raise
        finally:
            if self._owns_connection:
                connection.close()


def lock_key(source: str) -> int:
    """A stable 32-bit advisory lock key per source name (the same in every process)."""
    return zlib.crc32(f"target-alerts:poll:{source}".encode())
