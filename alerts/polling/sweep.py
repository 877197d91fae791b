"""The catalogue-wide poll: per source and per cycle, what is new upstream is fetched ONCE
for the whole catalogue and matched locally against every target.

Why: a poll per (source, target) costs each target its own PubMed search, its own
ClinicalTrials.gov query and its own feeds, so the requests of a cycle grow with the
catalogue (10,000 targets at NCBI's 10 requests/s is more than half an hour a cycle).
The sources publish a bounded delta instead (PubMed adds some 5,000 records a day), so:

- PubMed: every record that entered PubMed in the window (Entrez date), through the
  History server, in batches (`PubMedSource.poll_catalogue`).
- ClinicalTrials.gov: every study whose last update was posted in the window, only the
  fields the service reads, 1,000 a page (`ClinicalTrialsSource.poll_catalogue`).
- RSS/Atom: each feed of the catalogue (a feed added without a target) once.

Each fetched record is then matched against every target by the compiled catalogue
(`alerts.matching.compile_catalogue`: one scan of its text finds the targets it names,
and only their rules read it), compiled once per catalogue version. What matched is
stored through `alerts.items.service.ingest_catalogue` (items, links with evidence, `new`
and `updated` events, as a target's own poll stores them); what matched nothing is kept
in the unmatched window for ALERTS_UNMATCHED_RETENTION_DAYS, pruned every cycle, so a new
or edited target is back-filled from it by `rematch` without refetching.

The cycle is the per-target cycle of `alerts.polling.service` with one job per source:
the same state row machinery (a `source_states` row without a target, unique per source,
shown by /api/v1/sources and /metrics as target "*"), lease, renewal, deadline, advisory
lock per rate-limited source, failure recording and backoff; only what a job fetches and
how it is stored differ. Requests per cycle do not depend on the number of targets.

A target's own poll stays for `alerts backfill`, for its first history (a target never
polled on its own gets its own search once: the window before it joined) and for its own
feeds (`alerts.polling.service.poll(alongside_catalogue=True)`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.items import service as items_service
from alerts.items.match_fields import match_input
from alerts.items.service import IngestCounts
from alerts.matching import CatalogueRule, compile_catalogue
from alerts.ops.logging import log_event
from alerts.polling import repository
from alerts.polling.schemas import CATALOGUE, NO_FEEDS, NOT_CONFIGURED, SourceReport
from alerts.polling.service import _Clock, _Cycle, _Job, _Unclosed
from alerts.sources.base import (
    FeedRef,
    FetchedItem,
    PollRequest,
    PollResult,
    Source,
    SourceName,
    TargetQuery,
)
from alerts.sources.pubmed import ALL_RECORDS_TERM
from alerts.sources.registry import make_adapter, make_client
from alerts.targets import repository as targets_repository
from alerts.targets import service as targets_service
from db.session import transaction

log = logging.getLogger(__name__)

#: What the catalogue asks of each source: everything in the window. An adapter is
#: asked whether it is configured for this query (the feeds source: only with feeds).
EVERYTHING_CTGOV = "AREA[LastUpdatePostDate]RANGE[MIN,MAX]"


class RuleCache:
    """The compiled catalogue and slug -> target id, rebuilt only when the catalogue's
    version (`targets.repository.catalogue_version`: every target's slug, name and rule)
    changes. One per process; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: tuple[Any, ...] | None = None
        self._compiled: tuple[CatalogueRule, dict[str, int]] | None = None

    def get(self, session: Session) -> tuple[CatalogueRule, dict[str, int]]:
        version = targets_repository.catalogue_version(session)
        with self._lock:
            if self._compiled is None or self._version != version:
                targets = targets_service.list_targets(session)
                rule = compile_catalogue({t.slug: t.match_terms for t in targets})
                self._compiled = (rule, {t.slug: t.id for t in targets})
                self._version = version
            return self._compiled


#: The process's compiled catalogue (the scheduler and `alerts poll` share it).
RULES = RuleCache()


class _Everything(Source):
    """A source's catalogue-wide fetch behind the adapter's `poll` signature, so the
    cycle's claim, deadline, lease renewal and failure handling run it unchanged. The
    feeds adapter needs nothing new: its query carries the catalogue's feeds."""

    name: ClassVar[SourceName]

    def __init__(self, inner: Source) -> None:
        self.inner = inner

    def is_configured_for(self, target: TargetQuery) -> bool:
        return self.inner.is_configured_for(target)

    async def _poll(self, request: PollRequest) -> PollResult:
        r = request
        if r.target.feeds:
            return await self.inner.poll(r.target, r.cursor, now=r.now, since=r.since,
                                         known_ids=r.known_ids, progress=r.progress)
        return await self.inner.poll_catalogue(r.cursor, now=r.now, since=r.since,
                                               known_ids=r.known_ids, progress=r.progress)


def poll_catalogue(
    session_factory: sessionmaker[Session],
    settings: Settings,
    *,
    source: SourceName | None = None,
    now: datetime | None = None,
    owner: str,
    due_only: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    rules: RuleCache = RULES,
) -> list[SourceReport]:
    """One catalogue-wide cycle over `source` (default: all): one report per source, with
    target CATALOGUE ("*"). `owner`, `due_only`, `now` and `transport` as for
    `alerts.polling.service.poll`; `rules` is the compiled catalogue's cache."""
    if now is not None and now.tzinfo is None:
        raise ValueError("poll_catalogue(now=...) needs an aware datetime")
    names = [SourceName(source)] if source is not None else list(SourceName)
    shared = _Unclosed(transport) if transport is not None else None
    clients = {name: make_client(settings, shared) for name in names}
    adapters: dict[SourceName, Source] = {
        name: _Everything(make_adapter(name, settings, clients[name])) for name in names
    }

    with transaction(session_factory) as session:
        jobs, reports = _plan(session, adapters)

    cycle = _CatalogueCycle(session_factory, settings, _Clock(now), owner, due_only, rules)
    reports.extend(asyncio.run(cycle.run(jobs, adapters, clients)))
    order = {name: index for index, name in enumerate(SourceName)}
    return sorted(reports, key=lambda r: order[r.source])


def _plan(
    session: Session, adapters: dict[SourceName, Source]
) -> tuple[list[_Job], list[SourceReport]]:
    """One job per source the catalogue has something to ask of, its state row made sure
    of; a skipped report for the others (no target at all, or no catalogue feed)."""
    has_targets = bool(targets_service.list_targets(session))
    query = TargetQuery(
        slug=CATALOGUE,
        pubmed_query=ALL_RECORDS_TERM if has_targets else None,
        ctgov_term=EVERYTHING_CTGOV if has_targets else None,
        feeds=tuple(
            FeedRef(f.id, f.url, etag=f.etag, last_modified=f.last_modified,
                    content_hash=f.content_hash)
            for f in (targets_service.catalogue_feeds(session) if has_targets else [])
        ),
    )
    wanted = [name for name, adapter in adapters.items() if adapter.is_configured_for(query)]
    reports = [
        SourceReport(name, CATALOGUE, skipped=True,
                     reason=NO_FEEDS if name is SourceName.rss else NOT_CONFIGURED)
        for name in adapters if name not in wanted
    ]
    state_ids = repository.ensure_catalogue_states(session, [str(name) for name in wanted])
    jobs = [
        _Job(source=name, state_id=state_ids[str(name)], target_id=None, slug=CATALOGUE,
             query=query, match_terms={})
        for name in wanted
    ]
    return jobs, reports


class _CatalogueCycle(_Cycle):
    """The per-target cycle with catalogue-wide jobs: known ids are whatever is stored or
    kept in the window, and a job's items are matched against every target."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        clock: _Clock,
        owner: str,
        due_only: bool,
        rules: RuleCache,
    ) -> None:
        super().__init__(session_factory, settings, clock, owner, due_only, None, None)
        self.rules = rules
        self.retention = timedelta(days=settings.unmatched_retention_days)
        #: Each job's items with their matches, from matching to storing.
        self._decided: dict[SourceName, list[tuple[FetchedItem, dict[int, Any]]]] = {}

    def _known_ids(self, job: _Job) -> Callable[[Sequence[str]], Collection[str]]:
        """A record stored as an item or kept in the window was decided against the whole
        catalogue when it came; a target added since is back-filled by `rematch`."""

        def known(external_ids: Sequence[str]) -> Collection[str]:
            with self._db_lock, self.session_factory() as session:
                return items_service.stored_or_kept(session, job.source, external_ids)

        return known

    def _store(
        self, job: _Job, result: PollResult, cursor: dict[str, Any] | None
    ) -> tuple[IngestCounts, datetime]:
        # Matching takes seconds at a large catalogue: done before the storing
        # transaction opens, so no write lock waits on it.
        fetched = [*result.items, *(item for feed in result.feeds for item in feed.items)]
        with transaction(self.session_factory) as session:
            rule, target_ids = self.rules.get(session)
        started = time.perf_counter()
        self._decided[job.source] = [(item, _matches(rule, target_ids, item)) for item in fetched]
        log_event(log, "poll.matched", source=job.source, target=job.slug, items=len(fetched),
                  targets=len(target_ids), seconds=round(time.perf_counter() - started, 3))
        try:
            return super()._store(job, result, cursor)
        finally:
            del self._decided[job.source]

    def _ingest(
        self, session: Session, job: _Job, result: PollResult, at: datetime
    ) -> IngestCounts:
        """Store the decided items for every target, the catalogue feeds' state, and
        prune the unmatched window."""
        counts = items_service.ingest_catalogue(
            session, source=job.source, decided=self._decided[job.source], now=at
        )
        repository.apply_feed_outcomes(session, None, result.feeds, at)
        pruned = items_service.prune_unmatched(session, before=at - self.retention)
        log_event(log, "poll.window", source=job.source, unmatched=counts.unmatched,
                  pruned=pruned)
        return IngestCounts(new=counts.new, updated=counts.updated)


def _matches(
    rule: CatalogueRule, target_ids: Mapping[str, int], item: FetchedItem
) -> dict[int, Any]:
    """target id -> Match of the targets whose rules match the item."""
    return {
        target_ids[slug]: decision
        for slug, decision in rule.match(match_input(item)).items()
        if slug in target_ids
    }
