"""The upstream fault matrix: every way PubMed, ClinicalTrials.gov or a feed can fail,
each over real loopback sockets against the recorded payloads, with the same four
promises checked for each:

1. nothing lost: the failed poll stores nothing and leaves the cursor where the last
   good poll put it; the next good poll stores everything published meanwhile;
2. nothing doubled: a poll after that finds nothing new, every item has one event;
3. the failure is visible: `last_error`, `consecutive_failures` and a backed-off
   `next_poll_at` in `GET /api/v1/sources`, the counters in `/metrics`;
4. the process keeps running: the next cycle, in the same process, works.

The upstream grows between the first good poll and the failing one (half of its
records are held back at first), so "nothing lost" covers records that appeared while
the source was failing. Per-host rate limits are not under test here and are lifted.
"""

from __future__ import annotations

import gzip
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.app import create_app
from alerts.config import Settings
from alerts.polling import service as polling_service
from alerts.polling.service import poll
from alerts.sources import ctgov, pubmed, registry
from alerts.sources.base import SourceName
from alerts.sources.feedparse import MAX_FEED_BYTES
from alerts.sources.http import UpstreamClient
from db.models import Item
from tests.conftest import DATA, make_settings
from tests.fakes.upstream import (
    CTGOV_PATH,
    FEEDS_PATH,
    PUBMED_PATH,
    Behaviour,
    FakeUpstream,
    drip,
    endless_body,
    replace_body,
    stall,
    truncate,
)
from tests.test_polling.conftest import NOW, SLUG, add_feed, events, rejected, state_of

#: The hosts the service is configured with; the transport below takes them to the fake.
PUBMED_BASE = "http://eutils.pubmed.test/entrez/eutils"
CTGOV_BASE = "http://api.ctgov.test/api/v2"
FEED_URL = "http://news.example/feeds/news.xml"
INTERNAL = "http://169.254.169.254/latest/meta-data/"

#: The failing poll's read timeout; the drips below stay well within it. The good polls
#: around it run with calm settings, so a busy machine cannot fail them.
HTTP_TIMEOUT = 1.5
DRIP_INTERVAL = 0.1
#: Room for a first parse to start the parser pool on a busy machine.
FEED_DEADLINE = 3.0
POLL_DEADLINE = 4.0
#: Response caps of PubMed and ClinicalTrials.gov, lowered from 256 MB so a bomb is cheap
#: (the caps themselves are tested in test_sources/test_http_limits.py).
API_CAP = 4 * 1024 * 1024
LONG_RETRY_AFTER = 7200  # 2 h: longer than the first backoff (1 h), so it shows

PATHS = {
    SourceName.pubmed: f"{PUBMED_PATH}/efetch.fcgi",  # after ESearch succeeded
    SourceName.ctgov: f"{CTGOV_PATH}/studies",  # after the version check succeeded
    SourceName.rss: f"{FEEDS_PATH}/news.xml",
}
CAPS = {SourceName.pubmed: API_CAP, SourceName.ctgov: API_CAP, SourceName.rss: MAX_FEED_BYTES}


# --- the loopback upstream -------------------------------------------------------------


class Routes(httpx.AsyncBaseTransport):
    """Real HTTP to the loopback fake for the configured host names (a closed port when
    `refuse` is set); any other host is refused and remembered in `strangers`."""

    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake
        # No kept-alive connections: each poll runs its own event loop.
        self.inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
        self.refuse = False
        self.strangers: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host not in {httpx.URL(u).host for u in (PUBMED_BASE, CTGOV_BASE, FEED_URL)}:
            self.strangers.append(str(request.url))
            raise httpx.ConnectError("no route to this host in the test", request=request)
        target = httpx.URL(closed_port_url() if self.refuse else self.fake.url)
        request.url = request.url.copy_with(host=target.host, port=target.port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@cache
def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nobody listens there once the probe is closed


def news_feed(count: int) -> bytes:
    entries = "".join(
        f"<item><title>HER2 exon 20 insertion update {n}</title>"
        f"<guid isPermaLink='false'>tag:news.example,2026:{n}</guid>"
        f"<link>https://news.example/posts/{n}</link>"
        f"<pubDate>Mon, 01 Jun 2026 0{n % 8}:00:00 GMT</pubDate></item>"
        for n in range(count)
    )
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>News</title>'
            f"<link>https://news.example/</link>{entries}</channel></rss>").encode()


@dataclass
class Upstream:
    fake: FakeUpstream
    routes: Routes
    held: dict[str, Any]
    #: Every record id of each source, the held-back ones included.
    served: dict[SourceName, set[str]]

    def hold_back_half(self) -> None:
        """Serve half of every source's records: the rest "appears" in `release`."""
        for name, records in (("articles", self.fake.articles), ("studies", self.fake.studies)):
            keys = sorted(records)[len(records) // 2 :]
            self.held[name] = {key: records.pop(key) for key in keys}
        self.fake.add_feed("news", news_feed(3))

    def release(self) -> None:
        self.fake.articles.update(self.held.pop("articles"))
        self.fake.studies.update(self.held.pop("studies"))
        self.fake.refresh()
        self.fake.add_feed("news", news_feed(6))

    def served_ids(self, source: SourceName) -> set[str]:
        return self.served[source]


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with FakeUpstream(posted_on=NOW.date()) as fake:
        served = {
            SourceName.pubmed: set(fake.pmids),
            SourceName.ctgov: set(fake.nct_ids),
            SourceName.rss: {f"tag:news.example,2026:{n}" for n in range(6)},
        }
        yield Upstream(fake, Routes(fake), {}, served)


# --- the faults --------------------------------------------------------------------------


@cache
def gzip_bomb(size: int) -> bytes:
    """A gzip body of `size` zeros: a few KB on the wire per MB once decoded."""
    return gzip.compress(b"\0" * size, compresslevel=9)


def json_nesting_bomb() -> bytes:
    return b'{"studies": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"


Inject = Callable[[Upstream, SourceName], None]


def misbehave(make: Callable[[SourceName], Behaviour]) -> Inject:
    def inject(up: Upstream, source: SourceName) -> None:
        up.fake.misbehave(PATHS[source], make(source))

    return inject


def status(code: int, **headers: str) -> Inject:
    def inject(up: Upstream, source: SourceName) -> None:
        up.fake.fail(PATHS[source], code, headers=headers)

    return inject


def redirect_to(location: Callable[[SourceName], str]) -> Inject:
    def inject(up: Upstream, source: SourceName) -> None:
        up.fake.fail(PATHS[source], 302, headers={"Location": location(source)})

    return inject


def refuse(up: Upstream, _source: SourceName) -> None:
    up.routes.refuse = True


MALFORMED = {
    SourceName.pubmed: b"<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1",
    SourceName.ctgov: b'{"studies": [{"protocolSection": ',
    SourceName.rss: (DATA / "feeds" / "truncated_rss.xml").read_bytes(),
}
ENTITY_BOMB = {
    SourceName.pubmed: (DATA / "feeds" / "billion_laughs.xml").read_bytes(),
    SourceName.ctgov: json_nesting_bomb(),  # JSON has no entities; nesting is its bomb
    SourceName.rss: (DATA / "feeds" / "billion_laughs.xml").read_bytes(),
}

#: "pubmed efetch: ..." / "ctgov studies (query.term): ..."
API_HTTP = r"(pubmed efetch|ctgov studies[^:]*)"


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Inject
    #: source -> a regex the recorded error matches
    errors: dict[SourceName, str]
    #: The failure's next poll: after the first backoff (1 h), or later when asked.
    wait: timedelta = timedelta(hours=1)


def same_error(pattern: str, rss: str | None = None) -> dict[SourceName, str]:
    return {SourceName.pubmed: pattern, SourceName.ctgov: pattern,
            SourceName.rss: rss or pattern}


FAULTS = [
    Fault("http 500", status(500), same_error(r"HTTP 500 \(gave up after 1 attempts\)")),
    Fault("429 with Retry-After", status(429, **{"Retry-After": str(LONG_RETRY_AFTER)}),
          same_error(rf"HTTP 429, Retry-After {LONG_RETRY_AFTER} s"),
          wait=timedelta(seconds=LONG_RETRY_AFTER)),
    Fault("refused connection", refuse, same_error(r"connection failed \(ConnectError\)")),
    Fault("read timeout", misbehave(lambda _s: stall(for_seconds=3 * HTTP_TIMEOUT)),
          same_error(rf"timed out after {HTTP_TIMEOUT:g} s")),
    Fault("slow drip", misbehave(lambda _s: drip(interval=DRIP_INTERVAL, for_seconds=10)),
          same_error(rf"poll: gave up after the {POLL_DEADLINE:g} s deadline",
                     rss=rf"feed {FEED_URL}: gave up after the {FEED_DEADLINE:g} s deadline")),
    Fault("truncated body", misbehave(lambda _s: truncate),
          same_error(r"connection failed \(RemoteProtocolError\)")),
    Fault("malformed body", misbehave(lambda s: replace_body(MALFORMED[s])),
          {SourceName.pubmed: r"pubmed efetch: malformed XML",
           SourceName.ctgov: r"ctgov studies[^:]*: malformed JSON",
           SourceName.rss: r"feed .*: malformed feed"}),
    Fault("entity bomb", misbehave(lambda s: replace_body(ENTITY_BOMB[s])),
          {SourceName.pubmed: r"pubmed efetch: refused unsafe XML \(EntitiesForbidden\)",
           SourceName.ctgov: r"ctgov studies[^:]*: malformed JSON \(nested too deeply\)",
           SourceName.rss: r"refused: the body declares XML entities"}),
    Fault("oversized body", misbehave(lambda s: endless_body(declared=CAPS[s] + 1)),
          same_error(r"body over [\d,]+ bytes \(Content-Length \d+\)")),
    Fault("oversized body without a length", misbehave(lambda _s: endless_body(None)),
          same_error(r"body over [\d,]+ bytes$")),
    Fault("gzip bomb", misbehave(lambda s: replace_body(
              gzip_bomb(CAPS[s] + 1024 * 1024), **{"Content-Encoding": "gzip"})),
          same_error(r"body over [\d,]+ bytes$")),
    Fault("redirect loop", redirect_to(lambda s: PATHS[s]),
          same_error(rf"{API_HTTP}: HTTP 302", rss=r"redirect loop \(back to")),
    Fault("redirect to an internal address", redirect_to(lambda _s: INTERNAL),
          same_error(rf"{API_HTTP}: HTTP 302",
                     rss=r"redirect from a public host to the internal address "
                         r"169\.254\.169\.254 refused")),
]


# --- the test ------------------------------------------------------------------------------


@pytest.fixture
def matrix_settings(tmp_path: Path, shared_url: str) -> Settings:
    """The failing poll's settings: short timeouts and deadlines."""
    return make_settings(
        tmp_path, shared_url, pubmed_base_url=PUBMED_BASE, ctgov_base_url=CTGOV_BASE,
        http_timeout_seconds=HTTP_TIMEOUT, http_max_retries=0,
        poll_deadline_seconds=POLL_DEADLINE, feed_deadline_seconds=FEED_DEADLINE,
    )


@pytest.fixture
def calm_settings(matrix_settings: Settings) -> Settings:
    """The good polls' settings: the same service with room to spare."""
    return matrix_settings.model_copy(update={
        "http_timeout_seconds": 30.0, "poll_deadline_seconds": 120.0,
        "feed_deadline_seconds": 60.0,
    })


@pytest.fixture(autouse=True)
def _no_rate_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    def unlimited(settings: Settings, transport: httpx.AsyncBaseTransport | None = None
                  ) -> UpstreamClient:
        return replace(registry.make_client(settings, transport), host_rates={})

    monkeypatch.setattr(polling_service, "make_client", unlimited)
    monkeypatch.setattr(pubmed, "MAX_RESPONSE_BYTES", API_CAP)
    monkeypatch.setattr(ctgov, "MAX_RESPONSE_BYTES", API_CAP)


@pytest.fixture
def no_real_adapters() -> None:
    """Overrides the package's scripted fakes: the real adapters are under test here."""


@pytest.mark.parametrize("source", [SourceName.pubmed, SourceName.ctgov, SourceName.rss])
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_an_upstream_fault_loses_nothing_doubles_nothing_and_shows(
    fault: Fault, source: SourceName, upstream: Upstream, matrix_settings: Settings,
    calm_settings: Settings, session: Session, session_factory: sessionmaker[Session],
    engine: Engine, move_clock: Any,
) -> None:
    add_feed(session, SLUG, FEED_URL)
    api = TestClient(create_app(matrix_settings, engine=engine, session_factory=session_factory))

    def run(settings: Settings = calm_settings) -> Any:
        [report] = poll(session_factory, settings, owner="test", source=source,
                        target_slug=SLUG, transport=upstream.routes)
        return report

    upstream.hold_back_half()
    first = run()
    assert not first.failed, first.error
    before = stored(session, source)
    assert before and before < upstream.served_ids(source)
    cursor = state_of(session, source).cursor

    upstream.release()
    fault.inject(upstream, source)
    failed = run(matrix_settings)

    # 1. Nothing stored, the cursor where it was.
    assert failed.failed
    assert re.search(fault.errors[source], failed.error or ""), failed.error
    assert stored(session, source) == before
    assert state_of(session, source).cursor == cursor
    # 3. Visible to the operator, with its backoff.
    [row] = [r for r in api.get("/api/v1/sources").json()["data"] if r["source"] == source]
    assert row["last_error"] == failed.error
    assert row["consecutive_failures"] == 1
    assert row["next_poll_at"] == (NOW + fault.wait).isoformat().replace("+00:00", "Z")
    metrics = api.get("/metrics").text
    assert f'alerts_source_consecutive_failures{{source="{source}",target="{SLUG}"}} 1.0' in (
        metrics)
    assert f'alerts_source_failures_total{{source="{source}"}} 1.0' in metrics
    assert not upstream.routes.strangers  # nothing was fetched from an internal address

    # 1., 4. The next cycle of the same process stores everything, once.
    upstream.fake.clear_failures()
    upstream.routes.refuse = False
    recovered = run()
    assert not recovered.failed, recovered.error
    assert stored(session, source) == upstream.served_ids(source)
    assert state_of(session, source).consecutive_failures == 0

    # 2. Nothing doubled: every record decided for the target once (linked with one `new`
    # event, or rejected by its rule).
    again = run()
    assert (again.failed, again.new, again.updated) == (False, 0, 0)
    served = upstream.served_ids(source)
    announced = [external_id for external_id, kind, _changes in events(session)
                 if external_id in served]
    set_aside = rejected(session) & served
    assert len(announced) == len(set(announced))
    assert sorted([*announced, *set_aside]) == sorted(served)


def stored(session: Session, source: SourceName) -> set[str]:
    session.expire_all()
    return set(session.scalars(select(Item.external_id).where(Item.source == source)))
