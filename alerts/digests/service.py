"""Planning and sending digests, exactly once.

`send_due` is a boundary like a job: it owns its transactions, because delivery has to
commit after every message the SMTP server accepted.

1. Plan: walk subscribers in chunks (one transaction each); for each active alert take
   the latest slot at or before `now` (schedule.latest_slot) if it is after the alert's
   activation; alerts of one subscriber sharing frequency and slot make one digest,
   keyed `subscriber:frequency:slot`. A key that exists was planned already (by an
   earlier run or another process: the insert skips it), so a slot is planned once and
   only the latest slot ever is: a missed slot is not replayed. A digest records the
   events it delivers per alert (DigestEntry, unique per alert and event): the shown
   ones and those past `max_items` (only behind the "more" link), so nothing is
   delivered twice and nothing is carried into the next digest.
2. Send: lease pending digests in chunks, render them (in worker processes for large
   runs) while the main thread sends over one SMTP connection, and record each digest
   `sent` right after the server accepted it, committing at once: a crash can resend at
   most the one message in flight, and it carries the same Message-ID. A temporary
   refusal leaves the digest pending for the next run; a permanent one marks it failed
   and the address bounced. A lease that expired (a sender killed mid-batch) is taken
   over; a sent digest is never claimed again.
"""

from __future__ import annotations

import base64
import logging
import os
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.digests import repository as repo
from alerts.digests.compose import (
    SOURCE_LABELS,
    Candidate,
    DigestView,
    ItemView,
    Section,
    SourceHealth,
    TargetSection,
    canonical_url,
    describe_changes,
    group_items,
    item_source_label,
    order_key,
    split_shown,
    subject_line,
)
from alerts.digests.render import RenderedDigest, Renderer, public_host
from alerts.digests.schedule import (
    FREQUENCIES,
    ScheduleError,
    digest_key,
    latest_slot,
    message_id,
)
from alerts.digests.schemas import DigestOut, DigestPage, DigestStatus
from alerts.errors import Unprocessable
from alerts.mail.base import MailConnection, Mailer, PermanentMailError, TemporaryMailError
from db.clock import utc_now
from db.models import Alert
from db.session import transaction

log = logging.getLogger(__name__)

#: Source health lists PubMed, ClinicalTrials.gov, then feeds.
SOURCE_ORDER = {source: n for n, source in enumerate(SOURCE_LABELS)}

#: Subscribers planned per transaction.
PLAN_CHUNK = 500
#: Digests leased, loaded and rendered per step of the send pipeline.
SEND_CHUNK = 50
#: An event created this long before an alert's last slot is still looked for: it may
#: have been committed after that digest was planned. (A poll transaction would have to
#: stay open this long for an event to be missed.)
SCAN_GRACE = timedelta(days=1)
#: Temporary refusals after which a digest is given up (status failed, no bounce).
GIVE_UP_AFTER = 20
#: Temporary failures in a row after which the run stops: the server is not taking mail.
ABORT_AFTER = 5
#: Runs sending at least this many digests render in worker processes.
POOL_MIN_DIGESTS = 200


@dataclass
class SendReport:
    """What one run did: digests planned (to send) and recorded empty, sent, failed for
    good, and left pending (for the next run); distinct addresses sent to."""

    planned: int = 0
    sent: int = 0
    empty: int = 0
    failed: int = 0
    pending: int = 0
    addresses: int = 0
    #: Temporary refusals this run (those digests are still pending).
    deferred: int = 0
    #: Not sent because the address bounced or every alert was unsubscribed meanwhile.
    cancelled: int = 0
    #: Why the run stopped early (e.g. the SMTP server could not be reached).
    error: str | None = None


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


def plan_due(
    session_factory: sessionmaker[Session],
    settings: Settings,
    *,
    now: datetime,
    frequency: str | None = None,
    on_chunk: Callable[[PlanReport], None] | None = None,
) -> PlanReport:
    """Plan every digest due at `now` that is not planned yet; commits per chunk."""
    _check_frequency(frequency)
    report = PlanReport()
    host = public_host(settings)
    slots: dict[tuple[str, str, int, str], datetime | None] = {}
    after = 0
    while True:
        with transaction(session_factory) as session:
            subscriber_ids = repo.next_subscriber_ids(
                session, after=after, limit=PLAN_CHUNK, frequency=frequency
            )
            if not subscriber_ids:
                break
            planned, empty = plan_chunk(
                session, subscriber_ids, now=now, frequency=frequency, host=host, slots=slots
            )
        report.planned += planned
        report.empty += empty
        after = subscriber_ids[-1]
        if on_chunk is not None:
            on_chunk(report)
    return report


def _slot(alert: repo.DueAlert, now: datetime,
          slots: dict[tuple[str, str, int, str], datetime | None]) -> datetime | None:
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
    slots: dict[tuple[str, str, int, str], datetime | None],
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
    last_slots = repo.last_slot_at(session, [alert.alert_id for alert in alerts])
    windows = {
        alert.alert_id: max(alert.activated_at, last_slots[alert.alert_id] - SCAN_GRACE)
        if alert.alert_id in last_slots else alert.activated_at
        for alert in alerts
    }
    by_alert: dict[int, list[Candidate]] = defaultdict(list)
    for candidate in repo.undelivered_events(session, windows, until=now):
        by_alert[candidate.alert_id].append(candidate)

    created = utc_now()
    digest_rows = []
    composed: dict[str, list[tuple[int, list[Candidate], list[Candidate]]]] = {}
    for group in todo:
        parts = []
        subject_parts = []
        for alert in group.alerts:
            shown, hidden = split_shown(by_alert.get(alert.alert_id, ()), alert.max_items)
            parts.append((alert.alert_id, shown, hidden))
            counts: dict[Section, int] = defaultdict(int)
            for candidate in (*shown, *hidden):
                counts[candidate.section] += 1
            subject_parts.append((alert.target_name, counts))
        total = sum(len(shown) + len(hidden) for _a, shown, hidden in parts)
        wanted = total > 0 or any(alert.send_when_empty for alert in group.alerts)
        composed[group.key] = parts
        subject_parts.sort(key=lambda part: part[0])
        digest_rows.append({
            "key": group.key,
            "subscriber_id": group.subscriber_id,
            "frequency": group.frequency,
            "slot_at": group.slot_at,
            "status": repo.PENDING if wanted else repo.EMPTY,
            "attempts": 0,
            "message_id": message_id(group.subscriber_id, group.frequency, group.slot_at, host),
            "subject": subject_line(subject_parts, group.frequency),
            "item_count": total,
            "created_at": created,
        })

    inserted = repo.insert_digests(session, digest_rows)
    alert_rows = []
    entry_rows = []
    for key, digest_id in inserted.items():
        for alert_id, shown, hidden in composed[key]:
            alert_rows.append({"digest_id": digest_id, "alert_id": alert_id})
            entry_rows.extend(
                {"digest_id": digest_id, "alert_id": alert_id, "event_id": c.event_id,
                 "shown": True}
                for c in shown
            )
            entry_rows.extend(
                {"digest_id": digest_id, "alert_id": alert_id, "event_id": c.event_id,
                 "shown": False}
                for c in hidden
            )
    repo.insert_rows(session, repo.digest_alerts_t, alert_rows)
    repo.insert_rows(session, repo.entries_t, entry_rows)
    session.flush()
    empty = sum(
        1 for row in digest_rows if row["key"] in inserted and row["status"] == repo.EMPTY
    )
    return len(inserted) - empty, empty


# --- what a digest shows --------------------------------------------------------------


def item_view(event: repo.EventRow) -> ItemView:
    section = event.section
    date = event.created_at if section is Section.trial_updates else (
        event.published_at or event.created_at
    )
    return ItemView(
        event_id=event.event_id,
        section=section,
        title=" ".join(event.title.split()) or event.external_id,
        source_label=item_source_label(event.source, event.feed_title),
        date=date,
        url=canonical_url(event.source, event.external_id, event.url),
        matched_terms=tuple(event.matched_terms),
        changes=describe_changes(event.changes) if event.event_kind == "updated" else (),
    )


def _source_health(row: repo.SourceRow, threshold: int) -> SourceHealth:
    return SourceHealth(
        source=row.source,
        label=SOURCE_LABELS.get(row.source, row.source),
        last_success_at=row.last_success_at,
        consecutive_failures=row.consecutive_failures,
        failing=row.consecutive_failures >= threshold,
        last_error=" ".join(row.last_error.split())[:200] if row.last_error else None,
        warnings=tuple(row.warnings),
    )


def build_views(data: repo.DigestData, settings: Settings) -> tuple[list[DigestView], list[int]]:
    """(views, ids of digests with nothing left to send: every alert unsubscribed)."""
    alerts_of: dict[int, list[repo.DigestAlertRow]] = defaultdict(list)
    for row in data.alerts:
        if row.alert_status != "unsubscribed":
            alerts_of[row.digest_id].append(row)
    counts: dict[tuple[int, int], dict[Section, int]] = defaultdict(lambda: defaultdict(int))
    hidden: dict[tuple[int, int], int] = defaultdict(int)
    oldest: dict[tuple[int, int], datetime] = {}
    for count in data.counts:
        pair = (count.digest_id, count.alert_id)
        counts[pair][count.section] += count.count
        if not count.shown:
            hidden[pair] += count.count
        if pair not in oldest or count.oldest < oldest[pair]:
            oldest[pair] = count.oldest
    shown: dict[tuple[int, int], list[int]] = defaultdict(list)
    for digest_id, alert_id, event_id in data.shown:
        shown[(digest_id, alert_id)].append(event_id)
    sources: dict[int, list[SourceHealth]] = defaultdict(list)
    for source_row in sorted(data.sources, key=lambda r: SOURCE_ORDER.get(r.source, 99)):
        sources[source_row.target_id].append(
            _source_health(source_row, settings.failure_alert_threshold)
        )
    # One ItemView per event, shared by every digest of the chunk (pickled once).
    items: dict[int, ItemView] = {}

    def view_of(event_id: int) -> ItemView:
        if event_id not in items:
            items[event_id] = item_view(data.events[event_id])
        return items[event_id]

    views: list[DigestView] = []
    nothing_left: list[int] = []
    for head in data.heads:
        rows = sorted(alerts_of.get(head.digest_id, ()), key=lambda r: (r.target_name, r.alert_id))
        if not rows:
            nothing_left.append(head.digest_id)
            continue
        sections = []
        for row in rows:
            pair = (head.digest_id, row.alert_id)
            events = sorted(
                (data.events[e] for e in shown.get(pair, ()) if e in data.events),
                key=lambda e: order_key(e.section, e.sort_at, e.event_id),
            )
            sections.append(TargetSection(
                alert_id=row.alert_id,
                target_slug=row.target_slug,
                target_name=row.target_name,
                groups=group_items(view_of(event.event_id) for event in events),
                counts=dict(counts.get(pair, {})),
                hidden=hidden.get(pair, 0),
                since=oldest.get(pair),
                sources=tuple(sources.get(row.target_id, ())),
            ))
        views.append(DigestView(
            digest_id=head.digest_id,
            key=head.key,
            message_id=head.message_id,
            subscriber_id=head.subscriber_id,
            email=head.email,
            frequency=head.frequency,
            slot_at=head.slot_at,
            timezone=rows[0].timezone,
            sections=tuple(sections),
        ))
    return views, nothing_left


def load_views(session: Session, settings: Settings, digest_ids: Sequence[int]) -> list[DigestView]:
    """The views of these digests (what their emails show), in id order."""
    views, _nothing_left = build_views(repo.load_digest_data(session, digest_ids), settings)
    return views


# --- sending --------------------------------------------------------------------------


def send_due(
    session_factory: sessionmaker[Session],
    settings: Settings,
    mailer: Mailer,
    *,
    now: datetime,
    owner: str,
    frequency: str | None = None,
    render_workers: int | None = None,
) -> SendReport:
    """Plan everything due at `now`, then send every pending digest (of `frequency`, when
    given), this run's and earlier runs' leftovers alike.

    `owner` names this sender in leases (unique per process). `render_workers`: None
    renders in `os.cpu_count() - 1` worker processes when at least POOL_MIN_DIGESTS are
    to be sent, inline otherwise; 0 always inline; n always n processes."""
    _check_frequency(frequency)
    report = SendReport()
    auto = render_workers is None
    workers = max(1, (os.cpu_count() or 2) - 1) if auto else int(render_workers or 0)
    with Renderer(settings, workers) as renderer:
        if not auto and workers > 0:
            renderer.start_pool()

        def warm_up_when_busy(progress: PlanReport) -> None:
            if auto and progress.planned >= POOL_MIN_DIGESTS:
                renderer.start_pool()  # workers import while planning goes on

        planned = plan_due(
            session_factory, settings, now=now, frequency=frequency, on_chunk=warm_up_when_busy
        )
        report.planned, report.empty = planned.planned, planned.empty
        _Delivery(session_factory, settings, mailer, owner, frequency, report, renderer,
                  auto).run()
    with transaction(session_factory) as session:
        report.pending = repo.count_pending(session, frequency)
    return report


class _Abort(Exception):
    pass


@dataclass(frozen=True, slots=True)
class RenderFailure:
    digest_id: int
    error: str


class _Delivery:
    """One run of the send pipeline (see the module docstring)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        mailer: Mailer,
        owner: str,
        frequency: str | None,
        report: SendReport,
        renderer: Renderer,
        auto_pool: bool,
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.mailer = mailer
        self.owner = owner
        self.frequency = frequency
        self.report = report
        self.renderer = renderer
        self.auto_pool = auto_pool
        self.claimed: set[int] = set()
        self.finished: set[int] = set()
        self.bounced: set[int] = set()
        self.addresses: set[str] = set()
        self.temporary_in_a_row = 0

    def run(self) -> None:
        session = self.session_factory()
        try:
            with session.begin():
                self.report.cancelled += repo.cancel_for_bounced(
                    session, reason="not sent: the address bounced"
                )
                backlog = repo.count_pending(session, self.frequency)
            if self.auto_pool and backlog >= POOL_MIN_DIGESTS:
                self.renderer.start_pool()
            self._pipeline(session)
        except _Abort:
            pass
        finally:
            self._release_unfinished(session)
            session.close()
            self.report.addresses = len(self.addresses)

    def _pipeline(self, session: Session) -> None:
        depth = 3 if self.renderer.pooled else 1
        in_flight: deque[Future[list[RenderedDigest | RenderFailure]]] = deque()
        after = 0
        exhausted = False
        with self.mailer.connect() as connection:
            while True:
                while not exhausted and len(in_flight) < depth:
                    step = self._claim_and_load(session, after)
                    if step is None:
                        exhausted = True
                        break
                    after, views = step
                    if views:
                        in_flight.append(self._submit(views))
                if not in_flight:
                    return
                for rendered in in_flight.popleft().result():
                    self._deliver(session, connection, rendered)

    def _submit(self, views: list[DigestView]) -> Future[list[RenderedDigest | RenderFailure]]:
        # Render one by one so a digest that cannot be rendered fails alone.
        outer: Future[list[RenderedDigest | RenderFailure]] = Future()
        inner = self.renderer.submit(views, utc_now())

        def done(future: Future[list[RenderedDigest]]) -> None:
            try:
                outer.set_result(list(future.result()))
            except Exception:  # noqa: BLE001 - fall back to one at a time, inline
                outer.set_result([self._render_alone(view) for view in views])

        inner.add_done_callback(done)
        return outer

    def _render_alone(self, view: DigestView) -> RenderedDigest | RenderFailure:
        from alerts.digests.render import render_digest

        try:
            return render_digest(view, self.settings, date=utc_now())
        except Exception as exc:  # noqa: BLE001 - recorded on the digest
            log.exception("digest %s could not be rendered", view.digest_id)
            return RenderFailure(view.digest_id, f"render error: {type(exc).__name__}: {exc}")

    def _claim_and_load(self, session: Session, after: int) -> tuple[int, list[DigestView]] | None:
        with session.begin():
            now = utc_now()
            ids = repo.claim(
                session,
                owner=self.owner,
                after_id=after,
                limit=SEND_CHUNK,
                now=now,
                lease_until=now + timedelta(seconds=self.settings.lease_seconds),
                frequency=self.frequency,
            )
            if not ids:
                return None
            self.claimed.update(ids)
            views, nothing_left = build_views(repo.load_digest_data(session, ids), self.settings)
            for digest_id in nothing_left:
                repo.mark_failed(
                    session, digest_id, owner=self.owner, status=repo.CANCELLED,
                    error="not sent: every alert of the digest was unsubscribed",
                    count_attempt=False,
                )
                self.finished.add(digest_id)
                self.report.cancelled += 1
        return ids[-1], views

    def _deliver(
        self, session: Session, connection: MailConnection,
        rendered: RenderedDigest | RenderFailure,
    ) -> None:
        digest_id = rendered.digest_id
        if isinstance(rendered, RenderFailure):
            with session.begin():
                repo.mark_failed(session, digest_id, owner=self.owner, error=rendered.error)
            self.report.failed += 1
            self.finished.add(digest_id)
            return
        if rendered.subscriber_id in self.bounced:
            with session.begin():
                repo.mark_failed(session, digest_id, owner=self.owner, status=repo.CANCELLED,
                                 error="not sent: the address bounced", count_attempt=False)
            self.report.cancelled += 1
            self.finished.add(digest_id)
            return
        try:
            connection.send_raw(rendered.sender, [rendered.recipient], rendered.data)
        except TemporaryMailError as exc:
            with session.begin():
                status = repo.mark_retry(session, digest_id, owner=self.owner,
                                         error=str(exc), give_up_after=GIVE_UP_AFTER)
            self.finished.add(digest_id)
            if status == repo.FAILED:
                self.report.failed += 1
            else:
                self.report.deferred += 1
            self.temporary_in_a_row += 1
            if self.temporary_in_a_row >= ABORT_AFTER:
                self.report.error = (
                    f"stopped after {ABORT_AFTER} temporary failures in a row: {exc}"
                )
                raise _Abort from None
            return
        except PermanentMailError as exc:
            with session.begin():
                repo.mark_failed(session, digest_id, owner=self.owner, error=str(exc))
                repo.bounce_subscriber(session, rendered.subscriber_id, error=str(exc),
                                       at=utc_now())
            self.bounced.add(rendered.subscriber_id)
            self.finished.add(digest_id)
            self.report.failed += 1
            self.temporary_in_a_row = 0
            return
        self.temporary_in_a_row = 0
        # Accepted: record it now, before the next message (the crash window is this
        # one message, and a resend of it carries the same Message-ID).
        with session.begin():
            kept = repo.mark_sent(session, digest_id, owner=self.owner,
                                  subject=rendered.subject, at=utc_now())
        if not kept:
            log.warning("digest %s was sent after its lease expired", digest_id)
        self.finished.add(digest_id)
        self.report.sent += 1
        self.addresses.add(rendered.recipient.lower())

    def _release_unfinished(self, session: Session) -> None:
        unfinished = self.claimed - self.finished
        if not unfinished:
            return
        try:
            if session.in_transaction():
                session.rollback()
            with session.begin():
                repo.release(session, unfinished, owner=self.owner)
        except Exception:  # noqa: BLE001 - the leases expire by themselves
            log.exception("could not release %d digest leases", len(unfinished))


def _check_frequency(frequency: str | None) -> None:
    if frequency is not None and frequency not in FREQUENCIES:
        raise ValueError(f"frequency must be one of {', '.join(FREQUENCIES)}, not {frequency!r}")


# --- preview --------------------------------------------------------------------------


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
    moment = now or utc_now()
    last = repo.last_slot_at(session, [alert.id]).get(alert.id)
    window = max(alert.activated_at, last - SCAN_GRACE) if last else alert.activated_at
    candidates = repo.undelivered_events(session, {alert.id: window}, until=moment)
    shown, hidden = split_shown(candidates, alert.max_items)
    events = repo.events_by_id(session, (c.event_id for c in shown))
    return Preview([events[c.event_id] for c in shown if c.event_id in events], len(hidden))


# --- the operator's list --------------------------------------------------------------

MAX_DIGEST_PAGE = 200


def _encode_cursor(digest_id: int) -> str:
    return base64.urlsafe_b64encode(f"d{digest_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("d"):
            raise ValueError(raw)
        return int(raw[1:])
    except ValueError:
        raise Unprocessable(
            "cursor", "invalid cursor: pass the next_cursor of a previous page",
            location="query",
        ) from None


def list_digests(
    session: Session, *, status: str | None, cursor: str | None, limit: int
) -> DigestPage:
    before = _decode_cursor(cursor) if cursor else None
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
    return DigestPage(data=data, next_cursor=_encode_cursor(page[-1].id) if more else None)
