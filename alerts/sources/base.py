"""The one interface every source adapter implements.

An adapter turns (target query, cursor) into parsed items and the next cursor. It
touches no database and sends no mail: storage, matching and digests live elsewhere,
so the same adapter serves the poller, backfill and API previews.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar


class SourceName(StrEnum):
    pubmed = "pubmed"
    ctgov = "ctgov"
    rss = "rss"


class ItemKind(StrEnum):
    publication = "publication"
    trial = "trial"
    news = "news"


class SourceError(Exception):
    """A permanent failure: retrying the same request will not help (400, 404, a body
    that is not what the API documents, an XML bomb)."""


class RetryLater(Exception):
    """A transient failure (429, 5xx, timeout, connection refused) after the adapter's own
    retries; the poller should not try again before `seconds` have passed."""

    def __init__(self, message: str, seconds: float = 60.0) -> None:
        super().__init__(message)
        self.seconds = seconds


@dataclass(frozen=True)
class FetchedItem:
    """One parsed upstream record."""

    source: SourceName
    external_id: str  # PMID, NCT id, feed entry id
    kind: ItemKind
    title: str
    url: str
    summary: str = ""
    published_at: datetime | None = None
    #: Parsed fields worth keeping (authors, journal, DOI; trial status, phases ...).
    data: Mapping[str, Any] = field(default_factory=dict)
    #: Fields whose change makes an `updated` event ({"overall_status": "RECRUITING"}).
    #: Compared with the stored copy by the ingest service; empty for non-trials.
    tracked: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FeedRef:
    """A feed to poll and what we know from its last fetch."""

    feed_id: int
    url: str
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None


class FeedStatus(StrEnum):
    ok = "ok"  # parsed; `items` holds its entries
    not_modified = "not_modified"  # 304, or the same bytes as last time: nothing parsed
    gone = "gone"  # 410: disable the feed
    failed = "failed"  # this feed failed; the others still count


@dataclass(frozen=True)
class FeedOutcome:
    feed_id: int
    status: FeedStatus
    items: Sequence[FetchedItem] = ()
    #: The URL to store after a permanent redirect (301/308), else None.
    new_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    title: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class TargetQuery:
    """What an adapter needs to know about a target."""

    slug: str
    pubmed_query: str | None = None
    ctgov_term: str | None = None
    ctgov_intr: str | None = None
    feeds: Sequence[FeedRef] = ()


@dataclass(frozen=True)
class PollResult:
    items: Sequence[FetchedItem]
    #: Stored only after the items are committed; handed back on the next poll.
    cursor: Mapping[str, Any]
    #: Non-fatal upstream warnings (PubMed phrases not found ...), shown to operators.
    warnings: Sequence[str] = ()
    #: Per-feed outcomes (RSS only).
    feeds: Sequence[FeedOutcome] = ()
    #: Upstream HTTP requests this poll made, for the operator and the benchmarks.
    requests: int = 0
    #: True when the upstream said nothing changed and no search was run.
    skipped: bool = False


#: Which of these external ids are stored already (the ingest answers from the database,
#: so an adapter can skip fetching details it would only throw away).
KnownIds = Callable[[Sequence[str]], Collection[str]]

#: Progress of a long poll (backfill): (what, done, total or None).
Progress = Callable[[str, int, int | None], None]


#: The target slug of a catalogue-wide poll.
CATALOGUE_SLUG = "*"


@dataclass(frozen=True)
class PollRequest:
    """One poll's arguments, as `Source.poll` takes them, for the adapter's `_poll`."""

    target: TargetQuery
    cursor: Mapping[str, Any]
    now: datetime
    since: datetime
    known_ids: KnownIds | None = None
    progress: Progress | None = None


class Source(ABC):
    """A source adapter. `poll` raises SourceError or RetryLater; it never partially
    succeeds silently: what it returns is complete up to the returned cursor.

    Adapters subclass this and implement `_poll`, so the signature every caller relies
    on is written once, here."""

    name: ClassVar[SourceName]

    @abstractmethod
    def is_configured_for(self, target: TargetQuery) -> bool:
        """False when the target has no query for this source (nothing to poll)."""

    async def poll(
        self,
        target: TargetQuery,
        cursor: Mapping[str, Any],
        *,
        now: datetime,
        since: datetime,
        known_ids: KnownIds | None = None,
        progress: Progress | None = None,
    ) -> PollResult:
        """Fetch what is new: since `cursor` when it holds a resume point, else since
        `since` (the first poll's look-back, or a backfill's start date)."""
        return await self._poll(PollRequest(target, cursor, now, since, known_ids, progress))

    @abstractmethod
    async def _poll(self, request: PollRequest) -> PollResult:
        """`poll`, with its arguments in one value."""

    async def poll_catalogue(
        self,
        cursor: Mapping[str, Any],
        *,
        now: datetime,
        since: datetime,
        known_ids: KnownIds | None = None,
        progress: Progress | None = None,
    ) -> PollResult:
        """Fetch what is new for the whole catalogue at once (target CATALOGUE_SLUG), for
        the sources that can (PubMed, ClinicalTrials.gov); the others raise
        NotImplementedError."""
        everything = TargetQuery(slug=CATALOGUE_SLUG)
        return await self._poll_catalogue(
            PollRequest(everything, cursor, now, since, known_ids, progress)
        )

    async def _poll_catalogue(self, request: PollRequest) -> PollResult:
        """`poll_catalogue`, with its arguments in one value."""
        raise NotImplementedError(f"{self.name}: no catalogue-wide poll")
