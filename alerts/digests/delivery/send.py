"""Sending digests, exactly once.

`send_due` is a boundary like a job: it owns its transactions, because delivery has to
commit right behind the SMTP server's acceptances, not at the end of the run.

It plans what is due (alerts.digests.planning), then leases pending digests in chunks,
loads and renders them (in worker processes for large runs: alerts.digests.delivery.
workers) while the main thread sends over one SMTP connection, and records each digest
`sent` only after the server accepted it, committed right behind the acceptance by a
recording thread (alerts.digests.delivery.sent_log): a crash can resend at most the
message(s) accepted within that commit's millisecond, each with the same Message-ID, so
receivers can drop the duplicate. A temporary refusal leaves the digest pending for the
next run; a permanent one marks it failed and the address bounced. A lease that expired
(a sender killed mid-batch) is taken over; a sent digest is never claimed again.

One message never stops the run: an address the relay cannot carry, or any error while
sending one digest, fails that digest alone (reason in `last_error`) and the run goes
on. A relay that takes nothing at all (every address refused, a refused sender, the
server unreachable) opens the run's breaker (alerts.mail.breaker): the run stops, its
digests stay pending for a later run, and nobody is marked bounced.

Planning and sending are interleaved: the first chunk is planned before anything is
sent; the next ones are planned by a worker between its render batches (inline: here,
whenever nothing is left to claim), so sending starts at once and no process idles.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.digests import repository as repo
from alerts.digests.delivery.render import RenderedBatch, RenderedDigest, RenderFailure
from alerts.digests.delivery.sent_log import RecordingFailed, SentLog
from alerts.digests.delivery.workers import Workers
from alerts.digests.planning import Planner, PlanStep
from alerts.mail.base import (
    AddressNotSupported,
    MailConnection,
    Mailer,
    PermanentMailError,
    TemporaryMailError,
)
from alerts.mail.breaker import RelayBreaker
from alerts.ops.logging import log_event
from db.clock import utc_now
from db.session import transaction

log = logging.getLogger(__name__)

#: Digests leased, loaded and rendered per step of the send pipeline.
SEND_CHUNK = 200
#: Temporary refusals after which a digest is given up (status failed, no bounce).
GIVE_UP_AFTER = 20
#: Digests in a row, to different addresses, that the relay did not take (refused for
#: good or for now, or unreachable) after which the run stops: it is taking no mail.
ABORT_AFTER = 5
#: Runs sending at least this many digests (pending, or planned in the first chunk)
#: render in worker processes.
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
    #: The run stopped because the relay took no mail (`error` says why); what it
    #: refused was not counted against the addresses.
    relay_refusing: bool = False


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
    planner = Planner(session_factory, settings, now=now, frequency=frequency)
    report = SendReport()
    auto = render_workers is None
    workers = max(1, (os.cpu_count() or 2) - 1) if auto else int(render_workers or 0)
    if settings.database_url in ("sqlite://", "sqlite:///:memory:"):
        workers = 0  # another process cannot see an in-memory database
    with Workers(settings, workers, session_factory) as pool:
        if not auto and workers > 0:
            pool.start_pool()
        _Delivery(session_factory, settings, mailer, owner, frequency, report, pool,
                  planner, auto).run()
    report.planned, report.empty = planner.report.planned, planner.report.empty
    with transaction(session_factory) as session:
        report.pending = repo.count_pending(session, frequency)
    if report.relay_refusing:
        report.error = (f"stopped: {report.error}; nobody was marked bounced, and "
                        f"{report.pending} digests stay pending for the next run")
    return report


class _Abort(Exception):
    pass


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
        workers: Workers,
        planner: Planner,
        auto_pool: bool,
    ) -> None:
        self.session_factory = session_factory
        self.planner = planner
        self.settings = settings
        self.mailer = mailer
        self.owner = owner
        self.frequency = frequency
        self.report = report
        self.workers = workers
        self.auto_pool = auto_pool
        #: Leased to this run and not settled yet (bounded by the pipeline's depth).
        self.unfinished: set[int] = set()
        self.bounced: set[int] = set()
        #: Subscribers sent to (ids: the smallest exact record of distinct addresses).
        self.addresses: set[int] = set()
        self.breaker: RelayBreaker[RenderedDigest] = RelayBreaker(ABORT_AFTER, run="digests")

    def run(self) -> None:
        session = self.session_factory()
        sent_log = SentLog(self.session_factory, self.owner,
                           patience=self.settings.lease_seconds)
        try:
            with session.begin():
                self.report.cancelled += repo.cancel_for_bounced(
                    session, reason="not sent: the address bounced"
                )
                backlog = repo.count_pending(session, self.frequency)
            self.planner.step()
            if self.auto_pool and backlog + self.planner.report.planned >= POOL_MIN_DIGESTS:
                self.workers.start_pool()
            self._pipeline(session, sent_log)
        except _Abort:
            pass
        except RecordingFailed as exc:
            # The database went away: nothing more is sent until it can record it.
            # What the server accepted meanwhile is recorded when it is back (by
            # `sent_log.close`); the rest stays pending for the next run.
            log_event(log, "digests.stopped", level=logging.WARNING, reason="database",
                      error=type(exc.__cause__ or exc).__name__)
            self.report.error = f"stopped: {exc}; the rest stays pending for the next run"
        finally:
            try:
                sent_log.close()
            finally:
                self._settle_held(session)
                self._release_unfinished(session)
                session.close()
                self.report.addresses = len(self.addresses)

    def _pipeline(self, session: Session, sent_log: SentLog) -> None:
        """Send everything pending, planning the rest of what is due on the way.

        With workers, a few render batches are in flight so they render while this
        thread sends, and one planning chunk at a time is handed to them between those
        batches. Inline, one batch at a time, planning here whenever nothing is left to
        claim."""
        pooled = self.workers.pooled
        depth = 2 * self.workers.count + 1 if pooled else 1
        in_flight: deque[Future[RenderedBatch]] = deque()
        planning: Future[PlanStep] | None = None
        after = 0
        with self.mailer.connect() as connection:
            while True:
                if pooled:
                    if planning is not None and planning.done():
                        self.planner.apply(planning.result())
                        planning = None
                    if planning is None and not self.planner.done:
                        planning = self.workers.submit_plan(self.planner.next_args())
                while len(in_flight) < depth:
                    ids = self._claim(session, after)
                    if ids:
                        after = ids[-1]
                        in_flight.append(self.workers.submit_render(ids, utc_now()))
                    elif pooled or not self.planner.step():
                        break
                if not in_flight:
                    if planning is None:
                        return
                    self.planner.apply(planning.result())  # wait for what it plans
                    planning = None
                    continue
                batch = in_flight.popleft().result()
                if batch.nothing_left:
                    self._cancel(session, batch.nothing_left,
                                 "not sent: every alert of the digest was unsubscribed")
                for message in batch.messages:
                    self._deliver(session, connection, sent_log, message)

    def _claim(self, session: Session, after: int) -> list[int]:
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
        self.unfinished.update(ids)
        return ids

    def _cancel(self, session: Session, digest_ids: Sequence[int], reason: str) -> None:
        with session.begin():
            for digest_id in digest_ids:
                repo.mark_failed(session, digest_id, owner=self.owner, status=repo.CANCELLED,
                                 error=reason, count_attempt=False)
        self.unfinished.difference_update(digest_ids)
        self.report.cancelled += len(digest_ids)

    def _deliver(
        self, session: Session, connection: MailConnection, sent_log: SentLog,
        rendered: RenderedDigest | RenderFailure,
    ) -> None:
        digest_id = rendered.digest_id
        if isinstance(rendered, RenderFailure):
            self._fail(session, digest_id, rendered.error)
            return
        if rendered.subscriber_id in self.bounced:
            self._cancel(session, [digest_id], "not sent: the address bounced")
            return
        if any(held.subscriber_id == rendered.subscriber_id
               for held, _error in self.breaker.held):
            return  # refused this run already: released, and cancelled if it bounced
        sent_log.check()  # nothing is sent that could not be recorded
        try:
            connection.send_raw(rendered.sender, [rendered.recipient], rendered.data)
        except AddressNotSupported as exc:  # this relay cannot carry it: no retry
            self._fail(session, digest_id, str(exc))
            return
        except TemporaryMailError as exc:
            self._retry(session, digest_id, str(exc))
            self.breaker.not_taken(rendered.recipient, exc)
        except PermanentMailError as exc:
            if exc.recipient is None:  # not about the address: whatever we send
                self._retry(session, digest_id, str(exc))
                self.breaker.refuses_everything(exc)
            else:  # held until the relay shows it takes mail (alerts.mail.breaker)
                self.breaker.refused(rendered, rendered.recipient, exc)
        except Exception as exc:  # noqa: BLE001 - fails this digest, not the run
            log.exception("digest %s could not be sent", digest_id)
            self._fail(session, digest_id, f"unexpected error: {type(exc).__name__}: {exc}")
            self.breaker.not_taken(rendered.recipient, exc)
        else:
            # Accepted: recorded right away (by the sent log's thread).
            sent_log.add(digest_id, rendered.subject)
            self.unfinished.discard(digest_id)
            self.report.sent += 1
            self.addresses.add(rendered.subscriber_id)
            self._bounce(session, self.breaker.accepted())
        if self.breaker.open:
            raise _Abort  # reported by _settle_held

    def _fail(self, session: Session, digest_id: int, error: str) -> None:
        with session.begin():
            repo.mark_failed(session, digest_id, owner=self.owner, error=error)
        self.report.failed += 1
        self.unfinished.discard(digest_id)

    def _retry(self, session: Session, digest_id: int, error: str) -> None:
        with session.begin():
            status = repo.mark_retry(session, digest_id, owner=self.owner,
                                     error=error, give_up_after=GIVE_UP_AFTER)
        self.unfinished.discard(digest_id)
        if status == repo.FAILED:
            self.report.failed += 1
        else:
            self.report.deferred += 1

    def _bounce(self, session: Session, refused: list[tuple[RenderedDigest, str]]) -> None:
        """Permanent refusals that were their addresses': the digest fails and the
        address is marked bounced (nothing more goes to it)."""
        for rendered, error in refused:
            with session.begin():
                repo.mark_failed(session, rendered.digest_id, owner=self.owner, error=error)
                repo.bounce_subscriber(session, rendered.subscriber_id, error=error,
                                       at=utc_now())
            self.bounced.add(rendered.subscriber_id)
            self.unfinished.discard(rendered.digest_id)
            self.report.failed += 1

    def _settle_held(self, session: Session) -> None:
        """At the end of the run: refusals still held were their addresses' (bounces),
        unless the breaker opened (retried later, nobody blamed)."""
        try:
            if session.in_transaction():
                session.rollback()
            self._bounce(session, self.breaker.settle())
            if self.breaker.open:
                self.report.error = self.breaker.reason
                self.report.relay_refusing = True
            for rendered, error in self.breaker.held:
                self._retry(session, rendered.digest_id,
                            f"{error} (not counted against the address: "
                            f"{self.breaker.reason})")
        except Exception:  # noqa: BLE001 - their leases expire; a later run retries
            log.exception("could not record the refused digests")

    def _release_unfinished(self, session: Session) -> None:
        unfinished = self.unfinished
        if not unfinished:
            return
        try:
            if session.in_transaction():
                session.rollback()
            with session.begin():
                repo.release(session, unfinished, owner=self.owner)
        except Exception:  # noqa: BLE001 - the leases expire by themselves
            log.exception("could not release %d digest leases", len(unfinished))
