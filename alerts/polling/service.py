"""One poll cycle: claim each (source, target) that is due, fetch, store, reschedule.

The order of a poll, and why:

1. Claim the state row with a lease (one atomic UPDATE) and commit: another process, or a
   scheduler tick that overlaps this one, sees it taken and moves on.
2. Fetch with no database transaction open: upstream calls take seconds to minutes, and a
   transaction held that long would pin locks (SQLite: the whole database).
3. Store in ONE transaction: items, target links, events, feed state, the new cursor,
   counters, next poll time and the lease release. The cursor therefore advances only
   together with the items it covers; a failure anywhere stores nothing.

A failure (an adapter's SourceError or RetryLater, or anything unexpected) is recorded on
the state (error, counters, the backed-off next poll of alerts.polling.due) and reported;
it never stops the other sources or targets of the cycle.

Every poll of a (source, target) has a total deadline (ALERTS_POLL_DEADLINE_SECONDS):
an upstream that answers one byte at a time never trips a read timeout, so without one
a poll, and the lease renewed beside it, could last for ever. Passing it cancels the
fetch and is recorded as a failure like any other; the lease is never renewed beyond
it. A backfill (`since`) runs in the foreground with no deadline.

Sources run concurrently (asyncio.gather); one source's targets run one after another.
PubMed and ClinicalTrials.gov limit requests per IP, so on PostgreSQL a process holds an
advisory lock per source while polling it, and a second process skips that source.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.items import service as items_service
from alerts.items.service import IngestCounts
from alerts.ops.logging import log_event
from alerts.polling import repository
from alerts.polling.schemas import (
    CATALOGUE,
    HELD,
    NO_FEEDS,
    NOT_CONFIGURED,
    NOT_DUE,
    UNCHANGED,
    SourceReport,
    SourceStatusOut,
)
from alerts.sources.base import (
    FeedRef,
    PollResult,
    Progress,
    RetryLater,
    Source,
    SourceError,
    SourceName,
    TargetQuery,
)
from alerts.sources.http import UpstreamClient
from alerts.sources.registry import make_adapter, make_client
from alerts.sources.urls import scrub_credentials
from alerts.targets import service as targets_service
from db.clock import utc_now
from db.models import Target
from db.session import transaction

log = logging.getLogger(__name__)

#: Sources whose upstream limits requests per client IP: one process polls each at a time.
RATE_LIMITED_SOURCES = frozenset({SourceName.pubmed, SourceName.ctgov})
#: The sources whose every record the catalogue-wide poll fetches (a target's feeds are
#: its own: only the catalogue's feeds are fetched for everyone).
CATALOGUE_SERVED = frozenset({SourceName.pubmed, SourceName.ctgov})
#: A running fetch extends its lease every lease_seconds * LEASE_RENEWAL.
LEASE_RENEWAL = 1 / 3

T = TypeVar("T")


@dataclass(frozen=True)
class _Job:
    source: SourceName
    state_id: int
    target_id: int | None  # None: the whole catalogue (alerts.polling.sweep)
    slug: str
    query: TargetQuery
    match_terms: dict[str, Any]


class _Clock:
    """The cycle's time: `now` (default: the real time at the start), advanced by the
    real time elapsed since, so the leases of a long cycle's last targets are not born
    expired. Under `db.clock.frozen_clock` it stands still, which makes tests exact."""

    def __init__(self, now: datetime | None) -> None:
        self.started = utc_now()
        self.origin = now if now is not None else self.started

    def __call__(self) -> datetime:
        return self.origin + (utc_now() - self.started)


def poll(
    session_factory: sessionmaker[Session],
    settings: Settings,
    *,
    source: SourceName | None = None,
    target_slug: str | None = None,
    now: datetime | None = None,
    owner: str,
    due_only: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Progress | None = None,
    since: datetime | None = None,
    alongside_catalogue: bool = False,
) -> list[SourceReport]:
    """Run one poll cycle over `source` (default: all) and `target_slug` (default: all
    targets); one report per (source, target), by source then slug.

    `alongside_catalogue` leaves out what the catalogue-wide poll (`alerts.polling.sweep`)
    serves: a target's PubMed and ClinicalTrials.gov searches once they succeeded, so
    they run for its first history only (and for `alerts backfill`); a target's own feeds
    are not the catalogue's and are polled as always.

    `owner` names the caller's leases (a process id). `due_only` polls only states whose
    `next_poll_at` has come (the scheduler); without it every state not leased by another
    process is polled (`alerts poll`). `since` starts the search window at that time
    instead of the cursor's resume point (a backfill): the items are stored as usual, and
    an existing cursor is kept, so the regular polls resume where they were. `transport`
    reaches the upstreams through a test double. Raises NotFound for an unknown target.
    """
    if now is not None and now.tzinfo is None:
        raise ValueError("poll(now=...) needs an aware datetime")
    if since is not None and since.tzinfo is None:
        raise ValueError("poll(since=...) needs an aware datetime")
    names = [SourceName(source)] if source is not None else list(SourceName)
    # One client per source: its request count is that source's alone, and its
    # connections close when that source is done. A given transport is shared, not closed.
    shared = _Unclosed(transport) if transport is not None else None
    clients = {name: make_client(settings, shared) for name in names}
    adapters = {name: make_adapter(name, settings, clients[name]) for name in names}

    with transaction(session_factory) as session:
        jobs, reports = _plan(session, adapters, target_slug, alongside_catalogue)

    cycle = _Cycle(session_factory, settings, _Clock(now), owner, due_only, progress, since)
    reports.extend(asyncio.run(cycle.run(jobs, adapters, clients)))
    order = {name: index for index, name in enumerate(SourceName)}
    return sorted(reports, key=lambda r: (order[r.source], r.target))


def _plan(
    session: Session,
    adapters: dict[SourceName, Source],
    target_slug: str | None,
    alongside_catalogue: bool = False,
) -> tuple[list[_Job], list[SourceReport]]:
    """The (source, target) pairs to poll, their state rows made sure of; a skipped
    report for each pair a source has nothing to search for. With `alongside_catalogue`,
    the pairs the catalogue-wide poll serves are left out without a report."""
    targets: list[Target] = (
        [targets_service.get_target_by_slug(session, target_slug)]
        if target_slug is not None
        else targets_service.list_targets(session)
    )
    feeds = targets_service.enabled_feeds(session, [t.id for t in targets])
    queries = {
        target.id: TargetQuery(
            slug=target.slug,
            pubmed_query=target.pubmed_query,
            ctgov_term=target.ctgov_term,
            ctgov_intr=target.ctgov_intr,
            feeds=tuple(
                FeedRef(f.id, f.url, etag=f.etag, last_modified=f.last_modified,
                        content_hash=f.content_hash)
                for f in feeds[target.id]
            ),
        )
        for target in targets
    }
    wanted: list[tuple[SourceName, Target]] = []
    reports: list[SourceReport] = []
    for target in targets:
        for name, adapter in adapters.items():
            if adapter.is_configured_for(queries[target.id]):
                wanted.append((name, target))
            else:
                reason = NO_FEEDS if name is SourceName.rss else NOT_CONFIGURED
                reports.append(SourceReport(name, target.slug, skipped=True, reason=reason))
    if alongside_catalogue:
        served = {name: repository.polled_targets(session, str(name))
                  for name in adapters if name in CATALOGUE_SERVED}
        wanted = [(name, target) for name, target in wanted
                  if target.id not in served.get(name, ())]
    state_ids = repository.ensure_states(session, [(str(n), t.id) for n, t in wanted])
    jobs = [
        _Job(
            source=name,
            state_id=state_ids[(str(name), target.id)],
            target_id=target.id,
            slug=target.slug,
            query=queries[target.id],
            match_terms=dict(target.match_terms),
        )
        for name, target in wanted
    ]
    return jobs, reports


class _Cycle:
    """The asynchronous part of one cycle. Database work runs in worker threads, one at a
    time (`_db_lock`): the event loop stays free for the other sources' HTTP, and a
    session factory bound to a single connection (tests) is never used from two threads
    at once."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        clock: _Clock,
        owner: str,
        due_only: bool,
        progress: Progress | None,
        since: datetime | None,
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.clock = clock
        self.owner = owner
        self.due_only = due_only
        self.progress = progress
        self.since = since
        self.interval = timedelta(minutes=settings.poll_interval_minutes)
        self.lease = timedelta(seconds=settings.lease_seconds)
        self.deadline = None if since is not None else settings.poll_deadline_seconds
        self._db_lock = threading.Lock()

    async def run(
        self,
        jobs: Sequence[_Job],
        adapters: dict[SourceName, Source],
        clients: dict[SourceName, UpstreamClient],
    ) -> list[SourceReport]:
        by_source: dict[SourceName, list[_Job]] = {}
        for job in jobs:
            by_source.setdefault(job.source, []).append(job)
        results = await asyncio.gather(
            *(
                self._poll_source(name, source_jobs, adapters[name], clients[name])
                for name, source_jobs in by_source.items()
            )
        )
        return [report for reports in results for report in reports]

    async def _poll_source(
        self,
        name: SourceName,
        jobs: Sequence[_Job],
        adapter: Source,
        client: UpstreamClient,
    ) -> list[SourceReport]:
        lock = (
            repository.SourceLock(_bind_of(self.session_factory), str(name))
            if name in RATE_LIMITED_SOURCES
            else None
        )
        if lock is not None and not await self._db(lock.acquire):
            for job in jobs:
                log_event(log, "poll.skipped", source=name, target=job.slug, reason=HELD)
            return [SourceReport(name, job.slug, skipped=True, reason=HELD) for job in jobs]
        try:
            async with client:
                return [await self._poll_one(job, adapter, client) for job in jobs]
        finally:
            if lock is not None:
                await self._db(lock.release)

    async def _poll_one(
        self, job: _Job, adapter: Source, client: UpstreamClient
    ) -> SourceReport:
        at = self.clock()
        claimed = await self._db(self._claim, job, at)
        if isinstance(claimed, str):
            level = logging.DEBUG if claimed == NOT_DUE else logging.INFO
            log_event(log, "poll.skipped", level=level, source=job.source, target=job.slug,
                      reason=claimed)
            return SourceReport(job.source, job.slug, skipped=True, reason=claimed)
        cursor = claimed

        backfill = self.since is not None
        since = self.since or at - timedelta(days=self.settings.initial_lookback_days)
        sent_before = client.requests_sent
        deadline = asyncio.timeout(self.deadline)
        ends_at = None if self.deadline is None else at + timedelta(seconds=self.deadline)
        renewal = asyncio.create_task(self._keep_lease(job, ends_at))
        try:
            async with deadline:
                result = await adapter.poll(
                    job.query,
                    {} if backfill else cursor,
                    now=at,
                    since=since,
                    known_ids=self._known_ids(job),
                    progress=self.progress,
                )
        except RetryLater as exc:
            return await self._failed(job, str(exc), client.requests_sent - sent_before,
                                      retry_after=exc.seconds)
        except SourceError as exc:
            return await self._failed(job, str(exc), client.requests_sent - sent_before)
        except Exception as exc:
            if isinstance(exc, TimeoutError) and deadline.expired():
                # Transient like a timeout: the next attempt comes after the usual backoff.
                return await self._failed(
                    job, f"{job.source} poll: gave up after the {self.deadline:g} s deadline",
                    client.requests_sent - sent_before,
                )
            log_event(log, "poll.crashed", level=logging.ERROR, exc_info=True,
                      source=job.source, target=job.slug)
            return await self._failed(job, f"unexpected {type(exc).__name__}: {exc}",
                                      client.requests_sent - sent_before)
        finally:
            renewal.cancel()

        # A backfill searched from `since`, not from the cursor: its cursor replaces only
        # an empty one, so the regular polls never resume from an earlier point.
        new_cursor = dict(result.cursor) if not backfill or not cursor else None
        try:
            counts, next_poll_at = await self._db(self._store, job, result, new_cursor)
        except Exception as exc:
            log_event(log, "poll.store_failed", level=logging.ERROR, exc_info=True,
                      source=job.source, target=job.slug)
            return await self._failed(
                job, f"storing failed: {type(exc).__name__}: {exc}", result.requests
            )

        log_event(
            log, "poll.done", source=job.source, target=job.slug, new=counts.new,
            updated=counts.updated, requests=result.requests,
            skipped=UNCHANGED if result.skipped else None,
        )
        for warning in result.warnings:
            log_event(log, "poll.warning", level=logging.WARNING, source=job.source,
                      target=job.slug, warning=warning)
        return SourceReport(
            job.source,
            job.slug,
            new=counts.new,
            updated=counts.updated,
            warnings=list(result.warnings),
            requests=result.requests,
            skipped=result.skipped,
            reason=UNCHANGED if result.skipped else None,
            next_poll_at=next_poll_at,
        )

    async def _keep_lease(self, job: _Job, ends_at: datetime | None) -> None:
        """Extend this owner's lease while a fetch runs (a backfill can outlast
        `lease_seconds`), so no other process takes the state over meanwhile; a process
        that dies stops renewing and its lease expires as usual. Never beyond the poll's
        deadline `ends_at`: a process stuck past it frees the state for the others."""
        period = self.lease.total_seconds() * LEASE_RENEWAL
        while True:
            await asyncio.sleep(period)
            try:
                await self._db(self._renew, job, ends_at)
            except Exception:
                log_event(log, "poll.lease_renewal_failed", level=logging.WARNING,
                          exc_info=True, source=job.source, target=job.slug)

    # -- database steps (run in a worker thread, one at a time) ---------------------------

    def _renew(self, job: _Job, ends_at: datetime | None) -> None:
        expires_at = self.clock() + self.lease
        if ends_at is not None:
            expires_at = min(expires_at, ends_at)
        with transaction(self.session_factory) as session:
            repository.renew_lease(session, job.state_id, self.owner, expires_at=expires_at)

    def _claim(self, job: _Job, at: datetime) -> dict[str, Any] | str:
        """The state's cursor when this owner got the lease, else why not."""
        with transaction(self.session_factory) as session:
            if repository.claim(session, job.state_id, self.owner, now=at, lease=self.lease,
                                due_only=self.due_only):
                return dict(repository.get_state(session, job.state_id).cursor or {})
            if repository.held_by_other(session, job.state_id, now=at):
                return HELD
            return NOT_DUE

    def _store(
        self, job: _Job, result: PollResult, cursor: dict[str, Any] | None
    ) -> tuple[IngestCounts, datetime]:
        with transaction(self.session_factory) as session:
            at = self.clock()
            counts = self._ingest(session, job, result, at)
            next_poll_at = repository.record_success(
                session,
                job.state_id,
                self.owner,
                now=at,
                cursor=cursor,
                warnings=list(dict.fromkeys(result.warnings)),
                interval=self.interval,
            )
        return counts, next_poll_at

    def _ingest(
        self, session: Session, job: _Job, result: PollResult, at: datetime
    ) -> IngestCounts:
        """Store what the poll fetched, in the storing transaction: the target's items and
        decisions, and its feeds' state."""
        assert job.target_id is not None  # a target's poll
        fetched = [*result.items, *(item for feed in result.feeds for item in feed.items)]
        counts = items_service.ingest(
            session,
            source=job.source,
            target_id=job.target_id,
            match_terms=job.match_terms,
            fetched=fetched,
            now=at,
        )
        repository.apply_feed_outcomes(session, job.target_id, result.feeds, at)
        return counts

    async def _failed(
        self, job: _Job, error: str, requests: int, *, retry_after: float | None = None
    ) -> SourceReport:
        # Shown by the anonymous /api/v1/sources: no URL's password in it.
        error = " ".join(scrub_credentials(error).split()) or "failed"
        try:
            failures, next_poll_at = await self._db(
                self._record_failure, job, error, retry_after
            )
        except Exception:
            # The database is unreachable too: the lease expires by itself and the state
            # is polled again then; the other sources of the cycle go on.
            log_event(log, "poll.failure_not_recorded", level=logging.ERROR, exc_info=True,
                      source=job.source, target=job.slug, error=error)
            return SourceReport(job.source, job.slug, failed=True, error=error,
                                requests=requests)
        log_event(
            log, "poll.failed", level=logging.WARNING, source=job.source, target=job.slug,
            consecutive_failures=failures, next_poll_at=next_poll_at.isoformat(), error=error,
        )
        return SourceReport(job.source, job.slug, failed=True, error=error,
                            requests=requests, next_poll_at=next_poll_at)

    def _record_failure(
        self, job: _Job, error: str, retry_after: float | None
    ) -> tuple[int, datetime]:
        with transaction(self.session_factory) as session:
            return repository.record_failure(
                session,
                job.state_id,
                self.owner,
                now=self.clock(),
                error=error,
                interval=self.interval,
                retry_after=retry_after,
            )

    def _known_ids(self, job: _Job) -> Callable[[Sequence[str]], Collection[str]]:
        """The adapter's KnownIds: called from the event loop, briefly, between fetches."""

        assert job.target_id is not None  # a target's poll

        def known(external_ids: Sequence[str]) -> Collection[str]:
            assert job.target_id is not None
            with self._db_lock, self.session_factory() as session:
                return items_service.known_ids(session, job.source, job.target_id, external_ids)

        return known

    async def _db(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(self._serialised, function, *args)

    def _serialised(self, function: Callable[..., T], *args: Any) -> T:
        with self._db_lock:
            return function(*args)


class _Unclosed(httpx.AsyncBaseTransport):
    """A transport handed to several clients; its owner closes it, not the clients."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        pass


def _bind_of(session_factory: sessionmaker[Session]) -> Engine | Connection:
    bind = session_factory.kw.get("bind")
    if not isinstance(bind, Engine | Connection):
        raise TypeError("poll() needs a session factory bound to an engine or connection")
    return bind


def source_statuses(session: Session, settings: Settings) -> list[SourceStatusOut]:
    """Every (source, target) the poller knows, with its health."""
    return [
        SourceStatusOut(
            source=SourceName(state.source),
            target=CATALOGUE if slug is None else slug,
            last_success_at=state.last_success_at,
            last_error=state.last_error,
            last_error_at=state.last_error_at,
            consecutive_failures=state.consecutive_failures,
            next_poll_at=state.next_poll_at,
            warnings=list(state.warnings or []),
            failing=state.consecutive_failures >= settings.failure_alert_threshold,
        )
        for state, slug in repository.statuses(session)
    ]
