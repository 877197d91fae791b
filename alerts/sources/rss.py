"""The RSS/Atom source: every feed of a target fetched concurrently, parsed off the loop.

HTTP semantics first, so an unchanged feed costs one small request and no parse:
conditional GET (`If-None-Match`, `If-Modified-Since`; 304 = nothing new), a body whose
SHA-256 equals the last one counts as unchanged too, 301/308 report the URL to store,
410 reports the feed gone. Redirects are followed here (the shared client does not), at
most `REDIRECT_LIMIT` hops, never in a loop, and never from a public host to an internal
address (`urls.check_redirect`). A body is downloaded only up to `max_body_bytes`
(decoded): past it that feed fails, and nothing bigger is ever held in memory.

Each feed has a total `deadline`, counted from its first request to its parsed entries:
a server that sends one byte every few seconds never trips a read timeout, and would
otherwise hold its feed (and the poll) for ever. Credentials in a feed URL are sent as
HTTP Basic auth to that URL's origin only, and never reach item ids, links or errors.

Fetches run concurrently (at most `concurrency` in flight, `per_host_concurrency` to one
host) through the shared
`UpstreamClient`, so timeouts, retries and Retry-After apply per feed. Each body is handed
to a process pool as soon as it arrives, so parsing uses every core while the other
fetches continue. One failing feed yields a `failed` outcome and never fails the others;
only when every feed failed does the poll raise.

Terms are not matched here: the ingest keeps the entries that match the target.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import logging
import multiprocessing
import os
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urljoin, urlsplit

import httpx

from alerts.config import Settings
from alerts.sources.base import (
    FeedOutcome,
    FeedRef,
    FeedStatus,
    FetchedItem,
    PollRequest,
    PollResult,
    RetryLater,
    Source,
    SourceError,
    SourceName,
    TargetQuery,
)
from alerts.sources.feedparse import MAX_FEED_BYTES, FeedParseError, ParsedFeed, parse_feed
from alerts.sources.http import RETRY_STATUSES, UpstreamClient, counting_requests, host_key
from alerts.sources.urls import (
    RedirectRefused,
    Resolver,
    check_redirect,
    same_origin,
    scrub_credentials,
    split_credentials,
    system_resolver,
    with_credentials,
    without_credentials,
)

log = logging.getLogger(__name__)

#: (body, stored feed URL, URL the body came from) -> ParsedFeed. Must be picklable (a
#: module-level function) when the executor is a process pool.
ParseFn = Callable[[bytes, str, str], ParsedFeed]

REDIRECT_LIMIT = 5
PERMANENT_REDIRECTS = frozenset({301, 308})
REDIRECTS = PERMANENT_REDIRECTS | {302, 303, 307}
#: Every status the client would not retry is handed back to us: 304, redirects and 410
#: have meanings here, and any other reads better as "HTTP 404 Not Found" than as the
#: page the server sent with it.
HANDLED_STATUSES = frozenset(range(100, 600)) - RETRY_STATUSES
ACCEPT = (
    "application/atom+xml, application/rss+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)
#: Browsers open at most six connections per host; so do we.
PER_HOST_CONCURRENCY = 6
#: Bodies up to this size are parsed on the event loop. None are by default: handing even
#: a 1 KB body to a worker costs the loop about 0.2 ms of CPU against 1.3 ms to parse it
#: there, and the loop's CPU is what the other fetches wait for (bench/feeds_fetch.py).
#: With a single usable CPU a pool buys no parallelism, and everything is parsed inline.
INLINE_MAX_BYTES = 0
#: ALERTS_FEED_DEADLINE_SECONDS' default: one feed, first request to parsed entries.
FEED_DEADLINE_SECONDS = 120.0


# --- the parser pool -------------------------------------------------------------------

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()
_atexit_registered = False


def shared_parser_pool() -> ProcessPoolExecutor:
    """The process-wide parser pool, one worker per core, created on first use and shut
    down at interpreter exit (or by `shutdown_parser_pool`)."""
    global _pool, _atexit_registered
    with _pool_lock:
        if _pool is None:
            # Not "fork": the service forks from a process running threads (event loop,
            # scheduler), which can leave a lock held forever in the child.
            method = (
                "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
            )
            context = multiprocessing.get_context(method)
            if method == "forkserver":
                # Workers fork from a server that imported feedparser once.
                context.set_forkserver_preload(["alerts.sources.feedparse"])
            _pool = ProcessPoolExecutor(max_workers=_usable_cpus(), mp_context=context)
            if not _atexit_registered:
                atexit.register(shutdown_parser_pool)
                _atexit_registered = True
        return _pool


def _usable_cpus() -> int:
    """CPUs this process may run on (a container pinned to two of 64 cores gets two)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def shutdown_parser_pool() -> None:
    """Stop the shared pool's workers (the next poll starts a new pool)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def _discard_broken_pool(pool: Executor) -> None:
    global _pool
    with _pool_lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False, cancel_futures=True)


# --- the adapter -----------------------------------------------------------------------


class _FeedFailed(Exception):
    """One feed failed; `retry_after` is set when trying again later may help."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Fetched:
    outcome: FeedOutcome
    #: For a failed feed: seconds after which a retry may succeed; None = permanent.
    retry_after: float | None = None
    warning: str | None = None


class _Slots:
    """Requests in flight: at most `total`, and at most `per_host` to one host (a
    publisher hosting twenty of a target's feeds sees a few at a time, not twenty)."""

    def __init__(self, total: int, per_host: int) -> None:
        self._total = asyncio.Semaphore(total)
        self._per_host = per_host
        self._hosts: dict[str, asyncio.Semaphore] = {}

    @contextlib.asynccontextmanager
    async def for_url(self, url: str) -> AsyncIterator[None]:
        host = self._hosts.setdefault(host_key(url), asyncio.Semaphore(self._per_host))
        # Host first: a request queued behind its host must not hold a slot that a
        # request to an idle host could use.
        async with host, self._total:
            yield


class FeedSource(Source):
    """RSS/Atom feeds of a target, fetched `concurrency` at a time (at most
    `per_host_concurrency` per host). Parsing runs in `executor` (default: the shared
    process pool); bodies up to `inline_max_bytes` are parsed on the event loop. A feed
    still unfinished `deadline` seconds after its first request fails. `resolve` answers
    where a redirect's host points (tests hand in a table)."""

    name: ClassVar[SourceName] = SourceName.rss

    def __init__(
        self,
        client: UpstreamClient,
        *,
        concurrency: int = 32,
        per_host_concurrency: int = PER_HOST_CONCURRENCY,
        executor: Executor | None = None,
        inline_max_bytes: int = INLINE_MAX_BYTES,
        max_body_bytes: int = MAX_FEED_BYTES,
        parse: ParseFn = parse_feed,
        deadline: float = FEED_DEADLINE_SECONDS,
        resolve: Resolver = system_resolver,
    ) -> None:
        if concurrency < 1 or per_host_concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if deadline <= 0:
            raise ValueError("deadline must be positive")
        self._deadline = deadline
        self._resolve = resolve
        self._client = client
        self._concurrency = concurrency
        self._per_host_concurrency = per_host_concurrency
        self._executor = executor
        self._inline_max_bytes = inline_max_bytes
        self._max_body_bytes = max_body_bytes
        self._parse_fn = parse
        #: Bodies handed to the parser since this adapter was made (benchmarks, tests).
        self.parse_calls = 0

    @classmethod
    def from_settings(cls, settings: Settings, client: UpstreamClient) -> FeedSource:
        return cls(
            client,
            concurrency=settings.feed_concurrency,
            deadline=settings.feed_deadline_seconds,
        )

    def is_configured_for(self, target: TargetQuery) -> bool:
        return bool(target.feeds)

    async def _poll(self, request: PollRequest) -> PollResult:
        """Fetch every feed of the target. Returns all entries (the ingest matches and
        deduplicates them) and one FeedOutcome per feed, in the target's feed order.

        Raises RetryLater when every feed failed and one of them may recover, SourceError
        when every feed failed for good. Feeds carry their own state (FeedRef), so the
        cursor stays empty.
        """
        feeds, progress = list(request.target.feeds), request.progress
        slots = _Slots(self._concurrency, self._per_host_concurrency)
        done = 0

        async def one(ref: FeedRef) -> _Fetched:
            nonlocal done
            fetched = await self._fetch_feed(ref, slots)
            done += 1
            if progress is not None:
                progress("feeds", done, len(feeds))
            return fetched

        with counting_requests() as sent:  # redirect hops and retries included
            results: Sequence[_Fetched] = await asyncio.gather(*(one(ref) for ref in feeds))
        failed = [r for r in results if r.outcome.status is FeedStatus.failed]
        if feeds and len(failed) == len(feeds):
            self._raise_all_failed(failed)

        items: list[FetchedItem] = []
        seen: set[str] = set()
        for result in results:
            for item in result.outcome.items:
                # The same global id (a DOI, a tag: URI) may come from two feeds.
                if item.external_id not in seen:
                    seen.add(item.external_id)
                    items.append(item)
        return PollResult(
            items=items,
            cursor={},
            warnings=[r.warning for r in results if r.warning],
            feeds=[r.outcome for r in results],
            requests=sent[0],
        )

    @staticmethod
    def _raise_all_failed(failed: Sequence[_Fetched]) -> None:
        first = failed[0].outcome.error
        message = f"all {len(failed)} feeds failed; first: {first}"
        waits = [r.retry_after for r in failed if r.retry_after is not None]
        if waits:
            raise RetryLater(message, seconds=min(waits))
        raise SourceError(message)

    async def _fetch_feed(self, ref: FeedRef, slots: _Slots) -> _Fetched:
        """One feed, end to end, within its deadline; every failure becomes a `failed`
        outcome."""
        shown = without_credentials(ref.url)
        # Armed when the first request gets its slot: waiting behind other feeds of the
        # same host is not this feed's slowness.
        deadline = asyncio.timeout(None)
        try:
            async with deadline:
                return await self._fetch_and_parse(ref, slots, deadline)
        except _FeedFailed as exc:
            message, retry_after = str(exc), exc.retry_after
        except RetryLater as exc:  # 5xx/429/timeout after the client's own retries
            message, retry_after = str(exc), exc.seconds
        except SourceError as exc:  # the client's own permanent errors
            message, retry_after = str(exc), None
        except FeedParseError as exc:
            message, retry_after = f"feed {shown}: {exc}", None
        except httpx.InvalidURL as exc:
            message, retry_after = f"feed {shown}: invalid URL ({exc})", None
        except Exception as exc:
            if isinstance(exc, TimeoutError) and deadline.expired():
                # Transient: the same server may answer at its usual speed next time.
                message = f"feed {shown}: gave up after the {self._deadline:g} s deadline"
                retry_after = self._deadline
            else:  # a parser crash on odd input must not cost the other feeds
                log.exception("rss.feed_crashed feed_id=%d url=%s", ref.feed_id, shown)
                message, retry_after = f"feed {shown}: {type(exc).__name__}: {exc}", None
        message = " ".join(scrub_credentials(message).split())
        log.info("rss.feed_failed feed_id=%d error=%s", ref.feed_id, message)
        outcome = FeedOutcome(
            feed_id=ref.feed_id,
            status=FeedStatus.failed,
            error=message,
            etag=ref.etag,
            last_modified=ref.last_modified,
            content_hash=ref.content_hash,
        )
        return _Fetched(outcome, retry_after=retry_after)

    async def _fetch_and_parse(
        self, ref: FeedRef, slots: _Slots, deadline: asyncio.Timeout
    ) -> _Fetched:
        response, new_url = await self._download(ref, slots, deadline)
        status = response.status_code
        etag = response.headers.get("ETag") or ref.etag
        last_modified = response.headers.get("Last-Modified") or ref.last_modified
        if status == 410:
            return _Fetched(
                FeedOutcome(ref.feed_id, FeedStatus.gone, new_url=new_url, error="HTTP 410 Gone")
            )
        unchanged = FeedOutcome(
            ref.feed_id,
            FeedStatus.not_modified,
            new_url=new_url,
            etag=etag,
            last_modified=last_modified,
            content_hash=ref.content_hash,
        )
        if status == 304:
            return _Fetched(unchanged)

        body = response.content  # at most max_body_bytes: the client stops past it
        digest = hashlib.sha256(body).hexdigest()
        if digest == ref.content_hash:
            # A server without validators, or one whose ETag changes on every request.
            return _Fetched(unchanged)

        # Item ids are prefixed with the feed URL and shown publicly: no credentials.
        stored_url = without_credentials(new_url or ref.url)
        parsed = await self._parse(body, stored_url, str(response.url))
        warning = f"feed {stored_url}: {parsed.warning}" if parsed.warning else None
        outcome = FeedOutcome(
            ref.feed_id,
            FeedStatus.ok,
            items=parsed.items,
            new_url=new_url,
            etag=etag,
            last_modified=last_modified,
            content_hash=digest,
            title=parsed.title,
        )
        return _Fetched(outcome, warning=warning)

    async def _download(
        self, ref: FeedRef, slots: _Slots, deadline: asyncio.Timeout
    ) -> tuple[httpx.Response, str | None]:
        """GET the feed, following redirects. Returns the final response (2xx, 304 or
        410) and the URL to store when every hop so far was permanent."""
        headers = {"Accept": ACCEPT}
        if ref.etag:
            headers["If-None-Match"] = ref.etag
        if ref.last_modified:
            headers["If-Modified-Since"] = ref.last_modified
        # Every hop's URL is credential-free; the credentials go to their origin only.
        origin, credentials = split_credentials(ref.url)
        url, new_url, permanent = origin, None, True
        visited = {url}
        for _hop in range(REDIRECT_LIMIT + 1):
            if urlsplit(url).scheme not in ("http", "https"):
                raise _FeedFailed(f"feed {url}: not an http(s) URL")
            async with slots.for_url(url):
                if deadline.when() is None:
                    deadline.reschedule(asyncio.get_running_loop().time() + self._deadline)
                response = await self._client.request(
                    "GET",
                    url,
                    what=f"feed {url}",
                    headers=headers,
                    ok_statuses=HANDLED_STATUSES,
                    max_bytes=self._max_body_bytes,
                    auth=credentials if same_origin(url, origin) else None,
                )
            status = response.status_code
            if status not in REDIRECTS:
                if not (200 <= status < 300 or status in (304, 410)):
                    reason = response.reason_phrase or "error"
                    raise _FeedFailed(f"feed {url}: HTTP {status} {reason}")
                return response, new_url
            location = response.headers.get("Location", "").strip()
            if not location:
                raise _FeedFailed(f"feed {url}: HTTP {status} without a Location")
            target = without_credentials(urljoin(url, location))
            if target in visited:
                raise _FeedFailed(f"feed {url}: redirect loop (back to {target})")
            try:
                await check_redirect(url, target, self._resolve)
            except RedirectRefused as exc:
                raise _FeedFailed(f"feed {url}: {exc}") from None
            visited.add(target)
            url = target
            # A temporary hop anywhere in the chain keeps the stored URL.
            permanent = permanent and status in PERMANENT_REDIRECTS
            if permanent:
                new_url = with_credentials(url, credentials) if same_origin(url, origin) else url
        raise _FeedFailed(f"feed {origin}: more than {REDIRECT_LIMIT} redirects")

    async def _parse(self, body: bytes, feed_url: str, base_url: str) -> ParsedFeed:
        self.parse_calls += 1
        if len(body) <= self._inline_max_bytes or (self._executor is None and _usable_cpus() < 2):
            return self._parse_fn(body, feed_url, base_url)
        executor = self._executor or shared_parser_pool()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, self._parse_fn, body, feed_url, base_url)
        except BrokenProcessPool:
            # A worker died (out of memory, killed): the pool is unusable from now on.
            if self._executor is None:
                _discard_broken_pool(executor)
            raise _FeedFailed(
                f"feed {feed_url}: the parser process died", retry_after=60.0
            ) from None
