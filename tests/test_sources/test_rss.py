"""The RSS/Atom adapter.

- Parsing: the three recorded feed formats (PubMed RSS 2.0, a journal TOC, RSS 1.0 with
  PRISM) and synthetic ones; entry identity; plain-text titles and summaries.
- HTTP: conditional GET, 304 and unchanged bodies cost no parse, redirects, 410.
- Failures: every bad feed becomes a one-line `failed` outcome and never costs the other
  feeds; only when all feeds fail does the poll raise.
- A real loopback server with ETags, fetched concurrently and parsed in the process pool.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerts.config import Settings
from alerts.sources import feedparse, rss
from alerts.sources.base import (
    FeedOutcome,
    FeedRef,
    FeedStatus,
    ItemKind,
    PollResult,
    RetryLater,
    SourceError,
    SourceName,
    TargetQuery,
)
from alerts.sources.feedparse import (
    EXTERNAL_ID_MAX_CHARS,
    FeedParseError,
    ParsedFeed,
    entry_external_id,
    parse_feed,
    plain_text,
)
from alerts.sources.http import UpstreamClient
from alerts.sources.rss import FeedSource, shutdown_parser_pool

DATA = Path(__file__).resolve().parent.parent / "data"
RECORDED = DATA / "upstream" / "rss"
SYNTHETIC = DATA / "feeds"
NOW = datetime(2025, 3, 5, 12, 0, tzinfo=UTC)

ATOM_URL = "https://news.example.org/oncology/atom.xml"
LAB_URL = "https://lab.example.com/feed.rss"
JOURNAL_URL = "https://journal.example.org/toc.rss"


def recorded(name: str) -> bytes:
    return (RECORDED / name).read_bytes()


def synthetic(name: str) -> bytes:
    return (SYNTHETIC / name).read_bytes()


def sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


# --- test doubles ------------------------------------------------------------------------

#: (status, headers, body); TIMEOUT makes the transport time out instead.
Reply = tuple[int, Mapping[str, str], bytes]
TIMEOUT = object()


class FakeWeb:
    """An httpx MockTransport over {url: reply, or a list of replies served in turn (the
    last one repeats)}. Records every request; unknown URLs answer 404."""

    def __init__(self, routes: Mapping[str, Reply | object | list[Reply | object]]) -> None:
        self.routes = {
            url: list(reply) if isinstance(reply, list) else [reply]
            for url, reply in routes.items()
        }
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        replies = self.routes.get(str(request.url))
        if replies is None:
            return httpx.Response(404, text="no such page")
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if reply is TIMEOUT:
            raise httpx.ReadTimeout("read timed out", request=request)
        assert isinstance(reply, tuple)
        status, headers, body = reply
        return httpx.Response(status, headers=headers, content=body)

    def sent_to(self, url: str) -> list[httpx.Request]:
        return [r for r in self.requests if str(r.url) == url]


def ok(body: bytes, **headers: str) -> Reply:
    return (200, {"Content-Type": "application/xml", **headers}, body)


def redirect(status: int, location: str) -> Reply:
    return (status, {"Location": location}, b"")


class ParseSpy:
    """The real parser, counting what it is handed (proves when nothing was parsed)."""

    def __init__(self, fail_for: str | None = None) -> None:
        self.calls: list[str] = []
        self.fail_for = fail_for

    def __call__(self, body: bytes, feed_url: str, base_url: str) -> ParsedFeed:
        self.calls.append(feed_url)
        if feed_url == self.fail_for:
            raise RuntimeError("boom")
        return parse_feed(body, feed_url, base_url)


def poll(
    web: FakeWeb | Callable[[httpx.Request], Any],
    refs: Sequence[FeedRef],
    *,
    spy: ParseSpy | None = None,
    max_retries: int = 0,
    executor: Executor | None = None,
    **options: Any,
) -> PollResult:
    """One poll of `refs` through `web`, parsing in a thread pool (the same async path as
    the process pool, without pickling the spy)."""

    async def run() -> PollResult:
        transport = httpx.MockTransport(web)
        async with UpstreamClient(
            transport=transport, max_retries=max_retries, backoff_base=0
        ) as client:
            with ThreadPoolExecutor(2) as threads:
                source = FeedSource(
                    client, executor=executor or threads, parse=spy or ParseSpy(), **options
                )
                target = TargetQuery("her2-exon20", feeds=tuple(refs))
                return await source.poll(target, {}, now=NOW, since=NOW)

    return asyncio.run(run())


def only(result: PollResult) -> FeedOutcome:
    (outcome,) = result.feeds
    return outcome


# --- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "count", "first_id", "first_title", "first_url", "first_published", "extra"),
    [
        (
            "pubmed_rss_search_new_species_2021-12-21.xml",
            15,
            "pubmed:34929406",
            "Description of Gyrodactylus banmae n. sp. (Monogenea, Gyrodactylidae) parasitic"
            " on zebrafish, Danio rerio",
            "https://pubmed.ncbi.nlm.nih.gov/34929406/?utm_source=",
            datetime(2021, 12, 20, 11, 0, tzinfo=UTC),  # Mon, 20 Dec 2021 06:00:00 -0500
            {"doi": "10.1016/j.parint.2021.102531"},
        ),
        (
            "ijsem_journal_toc_rss2_2021-12-21.xml",
            25,
            "https://www.microbiologyresearch.org/content/journal/ijsem/10.1099/ijsem.0.005019"
            "?TRACK=RSS",
            "Mycolicibacterium baixiangningiae sp. nov. and Mycolicibacterium mengxianglii sp."
            " nov., two new rapidly growing mycobacterial species",
            "https://www.microbiologyresearch.org/content/journal/ijsem/10.1099/ijsem.0.005019"
            "?TRACK=RSS",
            datetime(2021, 12, 20, tzinfo=UTC),
            {},
        ),
        (
            "jpeds_rss1_rdf_prism.xml",
            1,
            "https://www.jpeds.com/article/S0022-3476(18)31119-3/fulltext?rss=yes",
            "HIV Exposure and Formula Feeding Predict Under-2 Mortality in HIV-Uninfected"
            " Children, Botswana",
            "https://www.jpeds.com/article/S0022-3476(18)31119-3/fulltext?rss=yes",
            datetime(2018, 10, 11, tzinfo=UTC),  # dc:date
            {"doi": "10.1016/j.jpeds.2018.08.009"},
        ),
    ],
)
def test_recorded_feed_formats_parse_into_news_items(
    name: str,
    count: int,
    first_id: str,
    first_title: str,
    first_url: str,
    first_published: datetime,
    extra: Mapping[str, str],
) -> None:
    parsed = parse_feed(recorded(name), JOURNAL_URL)

    assert len(parsed.items) == count
    assert len({item.external_id for item in parsed.items}) == count
    first = parsed.items[0]
    assert first.external_id == first_id
    assert first.title == first_title
    assert first.url.startswith(first_url)
    assert first.published_at == first_published
    assert first.source is SourceName.rss and first.kind is ItemKind.news
    assert first.data["feed_url"] == JOURNAL_URL
    assert first.data["feed_title"] == parsed.title
    assert first.data["author"]
    assert {k: first.data[k] for k in extra} == extra
    for item in parsed.items:
        assert item.url.startswith("https://")
        assert item.published_at is not None and item.published_at.tzinfo is UTC
        assert not re.search(r"</?[a-zA-Z]", item.summary)  # no tags left
    assert first.summary
    assert parsed.warning is None


def test_pubmed_feed_summary_is_the_full_abstract_as_plain_text() -> None:
    first = parse_feed(recorded("pubmed_rss_search_new_species_2021-12-21.xml"), JOURNAL_URL)
    summary = first.items[0].summary

    # content:encoded (citation line and abstract) wins over the truncated description.
    assert summary.startswith("Parasitol Int. 2021 Dec 17:102531. doi: 10.1016/j.parint")
    assert "ABSTRACT A new species of Gyrodactylus" in summary
    assert first.items[0].data["author"].startswith("Xiao Jin, Wenxiang Li")


def test_inline_markup_joins_and_entities_are_unescaped() -> None:
    parsed = parse_feed(recorded("ijsem_journal_toc_rss2_2021-12-21.xml"), JOURNAL_URL)

    assert parsed.items[0].summary.startswith(
        "Four bacterial strains (LJ126T/S18 and Z-34T/S20) recovered from faecal samples of"
        " Tibetan antelopes on the Qinghai–Tibet Plateau"
    )


def test_atom_feed_keeps_every_entry_decoys_included() -> None:
    """Matching is the ingest's job: the adapter returns what the feed holds."""
    parsed = parse_feed(synthetic("her2_news_atom.xml"), ATOM_URL)

    assert parsed.title == "Thoracic Oncology & Targets"
    assert parsed.link == "https://news.example.org/oncology/"
    assert [item.external_id for item in parsed.items] == [
        "tag:news.example.org,2025:entry-101",
        "urn:uuid:6f1c2a52-8d1e-4b7c-9e0f-3a2b1c0d9e8f",
        "https://news.example.org/oncology/egfr-ex20",
        "https://news.example.org/oncology/sevabertinib",
    ]
    zongertinib = parsed.items[0]
    assert zongertinib.summary == (
        "In Beamion LUNG-1, patients with ERBB2 exon 20 insertions (including"
        " A775_G776insYVMA) responded."
    )
    assert zongertinib.published_at == datetime(2025, 3, 4, 7, 30, tzinfo=UTC)  # +01:00
    assert zongertinib.data["author"] == "Ana Ruiz, Ben Okafor"
    # Relative links resolve against the feed URL.
    assert parsed.items[2].url == "https://news.example.org/oncology/egfr-ex20"


def test_scripts_styles_and_tags_never_reach_titles_or_summaries() -> None:
    sevabertinib = parse_feed(synthetic("her2_news_atom.xml"), ATOM_URL).items[3]

    assert sevabertinib.title == "Sevabertinib & HER2-mutant lung cancer"
    assert sevabertinib.summary == "Sevabertinib (BAY 2927088) in HER2-mutant NSCLC."


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<p>One</p><p>Two</p>", "One Two"),
        ("H<sub>2</sub>O and 10<sup>6</sup>", "H2O and 106"),
        ("a < b and c > d", "a < b and c > d"),
        ("<!-- hidden --><b>shown</b>", "shown"),
        ("AT&amp;T &lt;b&gt;", "AT&T <b>"),
        ("  spaced \n\t out  ", "spaced out"),
        ("", ""),
    ],
)
def test_plain_text(markup: str, text: str) -> None:
    assert plain_text(markup) == text


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("before <script>never closed " + "x " * 50_000, "before"),
        ("before <!-- never closed " + "x " * 50_000, "before"),
        ("<a" * 100_000 + " tail", "<a" * 100_000 + " tail"),  # no ">": not a tag
        ("<script>" * 50_000 + "</script> after", "after"),
    ],
)
def test_plain_text_survives_hostile_markup(markup: str, text: str) -> None:
    assert plain_text(markup) == text


def test_plain_text_is_cut_at_a_word_boundary() -> None:
    text = plain_text("word " * 1000, limit=2000)

    assert len(text) <= 2000
    assert text.endswith("word…")


# --- identity ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "external_id"),
    [
        ({"id": "https://x.example/a", "link": "https://x.example/b"}, "https://x.example/a"),
        ({"id": "tag:x.example,2025:7"}, "tag:x.example,2025:7"),
        ({"id": "urn:uuid:0f0e"}, "urn:uuid:0f0e"),
        ({"id": "pubmed:34929406"}, "pubmed:34929406"),
        ({"id": "doi:10.1000/xyz"}, "doi:10.1000/xyz"),
        # A local id is only unique inside its feed: the feed URL makes it global.
        ({"id": "42", "link": "https://x.example/b"}, f"{LAB_URL}#42"),
        ({"id": "  ", "link": "https://x.example/b"}, "https://x.example/b"),
        ({"link": "/notes/2"}, "https://lab.example.com/notes/2"),
    ],
)
def test_entry_identity_is_guid_else_link(entry: dict[str, str], external_id: str) -> None:
    assert entry_external_id(entry, LAB_URL) == external_id


def test_entry_without_guid_or_link_is_identified_by_a_hash_of_its_content() -> None:
    entry = {"title": "T", "summary": "S", "published": "Sun, 02 Mar 2025 09:00:00 GMT"}
    identity = entry_external_id(entry, LAB_URL)

    assert identity.startswith("sha256:") and len(identity) == 7 + 64
    assert entry_external_id(dict(entry), LAB_URL) == identity  # stable across polls
    assert entry_external_id({**entry, "title": "T2"}, LAB_URL) != identity
    # A javascript: link is no identity (nor a URL to show).
    assert entry_external_id({**entry, "link": "javascript:alert(1)"}, LAB_URL) == identity


def test_local_guids_of_two_feeds_stay_apart() -> None:
    entry = {"id": "1"}

    assert entry_external_id(entry, LAB_URL) != entry_external_id(entry, ATOM_URL)


def test_overlong_ids_are_hashed_to_fit_the_column() -> None:
    identity = entry_external_id({"id": "https://x.example/" + "a" * 600}, LAB_URL)

    assert identity.startswith("sha256:") and len(identity) <= EXTERNAL_ID_MAX_CHARS


def test_identity_rules_on_a_feed_without_guids() -> None:
    items = parse_feed(synthetic("entries_without_guid_rss.xml"), LAB_URL).items

    assert [item.external_id for item in items][:2] == [
        f"{LAB_URL}#1",
        "https://lab.example.com/notes/2",
    ]
    assert items[2].external_id.startswith("sha256:")
    assert items[3].external_id.startswith("sha256:")
    # Without a usable link the item points at the site.
    assert items[2].url == items[3].url == "https://lab.example.com/"
    assert items[0].published_at == datetime(2025, 3, 4, 14, 0, tzinfo=UTC)
    assert items[3].published_at is None


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (synthetic("truncated_rss.xml"), "malformed feed: <unknown>:6:0: no element found"),
        (synthetic("not_a_feed.html"), "not a feed: the server sent an HTML page"),
        (b'{"items": []}', "not an RSS or Atom feed (<unknown>:2:0: not well-formed"),
        (b"  \n", "empty body"),
        (synthetic("billion_laughs.xml"), "refused: the body declares XML entities"),
        (
            synthetic("billion_laughs.xml").decode().encode("utf-16"),
            "refused: the body declares XML entities",
        ),
    ],
)
def test_unusable_bodies_raise_a_clear_parse_error(body: bytes, error: str) -> None:
    with pytest.raises(FeedParseError, match="^" + re.escape(error)):
        parse_feed(body, ATOM_URL)


def test_billion_laughs_never_reaches_feedparser(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("feedparser was handed an entity bomb")

    monkeypatch.setattr(feedparse.feedparser, "parse", must_not_parse)

    with pytest.raises(FeedParseError, match="declares XML entities"):
        parse_feed(synthetic("billion_laughs.xml"), ATOM_URL)


def test_an_empty_but_valid_feed_has_no_items() -> None:
    body = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet</title></channel></rss>'

    parsed = parse_feed(body, ATOM_URL)

    assert parsed.items == () and parsed.title == "Quiet"


# --- HTTP semantics ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("etag", "last_modified", "expected"),
    [
        (
            '"v1"',
            "Tue, 04 Mar 2025 09:00:00 GMT",
            {"if-none-match": '"v1"', "if-modified-since": "Tue, 04 Mar 2025 09:00:00 GMT"},
        ),
        ('W/"v1"', None, {"if-none-match": 'W/"v1"'}),
        (
            None,
            "Tue, 04 Mar 2025 09:00:00 GMT",
            {"if-modified-since": "Tue, 04 Mar 2025 09:00:00 GMT"},
        ),
        (None, None, {}),
    ],
)
def test_conditional_get_sends_the_stored_validators(
    etag: str | None, last_modified: str | None, expected: dict[str, str]
) -> None:
    web = FakeWeb({ATOM_URL: (304, {}, b"")})

    poll(web, [FeedRef(1, ATOM_URL, etag=etag, last_modified=last_modified)])

    (request,) = web.requests
    sent = {k: v for k, v in request.headers.items() if k in ("if-none-match", "if-modified-since")}
    assert sent == expected
    assert "application/atom+xml" in request.headers["accept"]


def test_304_is_not_modified_and_parses_nothing() -> None:
    web = FakeWeb({ATOM_URL: (304, {"ETag": '"v1"'}, b"")})
    spy = ParseSpy()
    ref = FeedRef(1, ATOM_URL, etag='"v1"', last_modified="Tue, 04 Mar 2025", content_hash="ab")

    result = poll(web, [ref], spy=spy)

    assert only(result) == FeedOutcome(
        1, FeedStatus.not_modified, etag='"v1"', last_modified="Tue, 04 Mar 2025", content_hash="ab"
    )
    assert spy.calls == []
    assert result.items == [] and result.requests == 1


def test_same_body_as_last_time_is_not_modified_and_parses_nothing() -> None:
    body = synthetic("her2_news_atom.xml")
    web = FakeWeb({ATOM_URL: ok(body, ETag='"changes-every-time"')})
    spy = ParseSpy()

    result = poll(web, [FeedRef(1, ATOM_URL, content_hash=sha256(body))], spy=spy)

    outcome = only(result)
    assert outcome.status is FeedStatus.not_modified
    assert outcome.etag == '"changes-every-time"'  # stored, so next time may be a 304
    assert outcome.content_hash == sha256(body)
    assert spy.calls == []


def test_new_body_is_parsed_and_its_validators_returned() -> None:
    body = synthetic("her2_news_atom.xml")
    web = FakeWeb({ATOM_URL: ok(body, ETag='"v2"', **{"Last-Modified": "Wed, 05 Mar 2025"})})
    spy = ParseSpy()
    ref = FeedRef(1, ATOM_URL, etag='"v1"', content_hash=sha256(b"older body"))

    result = poll(web, [ref], spy=spy)

    outcome = only(result)
    assert outcome.status is FeedStatus.ok
    assert (outcome.etag, outcome.last_modified) == ('"v2"', "Wed, 05 Mar 2025")
    assert outcome.content_hash == sha256(body)
    assert outcome.title == "Thoracic Oncology & Targets"
    assert outcome.new_url is None
    assert [i.external_id for i in result.items] == [i.external_id for i in outcome.items]
    assert len(result.items) == 4
    assert spy.calls == [ATOM_URL]


MOVED = "https://new.example.org/oncology/atom.xml"
ELSEWHERE = "https://mirror.example.org/atom.xml"


@pytest.mark.parametrize(
    ("statuses", "new_url"),
    [
        ((301,), MOVED),
        ((308,), MOVED),
        ((302,), None),
        ((303,), None),
        ((307,), None),
        ((301, 301), ELSEWHERE),
        ((301, 302), MOVED),  # stored URL follows only the permanent part of the chain
        ((302, 301), None),
    ],
)
def test_redirects_are_followed_and_permanent_ones_reported(
    statuses: tuple[int, ...], new_url: str | None
) -> None:
    chain = [ATOM_URL, MOVED, ELSEWHERE][: len(statuses) + 1]
    routes: dict[str, Any] = {
        chain[hop]: redirect(status, chain[hop + 1]) for hop, status in enumerate(statuses)
    }
    routes[chain[-1]] = ok(synthetic("her2_news_atom.xml"))
    web = FakeWeb(routes)

    result = poll(web, [FeedRef(1, ATOM_URL)])

    outcome = only(result)
    assert outcome.status is FeedStatus.ok
    assert outcome.new_url == new_url
    assert len(outcome.items) == 4
    assert {i.data["feed_url"] for i in outcome.items} == {new_url or ATOM_URL}
    assert [str(r.url) for r in web.requests] == chain
    assert result.requests == len(chain)


def test_relative_location_resolves_and_validators_follow_the_redirect() -> None:
    web = FakeWeb(
        {
            ATOM_URL: redirect(301, "/v2/atom.xml"),
            "https://news.example.org/v2/atom.xml": (304, {}, b""),
        }
    )

    result = poll(web, [FeedRef(1, ATOM_URL, etag='"v1"')])

    assert only(result).status is FeedStatus.not_modified
    assert only(result).new_url == "https://news.example.org/v2/atom.xml"
    assert web.requests[1].headers["if-none-match"] == '"v1"'


def test_410_reports_the_feed_gone() -> None:
    result = poll(FakeWeb({ATOM_URL: (410, {}, b"gone")}), [FeedRef(1, ATOM_URL)])

    assert only(result).status is FeedStatus.gone
    assert result.items == []


# --- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ((404, {}, b"<h1>Not Found</h1>"), f"feed {ATOM_URL}: HTTP 404 Not Found"),
        ((403, {}, b"Forbidden"), f"feed {ATOM_URL}: HTTP 403 Forbidden"),
        (ok(synthetic("truncated_rss.xml")), f"feed {ATOM_URL}: malformed feed:"),
        (ok(synthetic("not_a_feed.html")), f"feed {ATOM_URL}: not a feed: the server sent an HTML"),
        (ok(synthetic("billion_laughs.xml")), f"feed {ATOM_URL}: refused: the body declares XML"),
        (ok(b""), f"feed {ATOM_URL}: empty body"),
        (redirect(302, ""), f"feed {ATOM_URL}: HTTP 302 without a Location"),
        (redirect(301, ATOM_URL), f"feed {ATOM_URL}: redirect loop (back to {ATOM_URL})"),
        (
            redirect(301, "ftp://files.example.org/feed"),
            "feed ftp://files.example.org/feed: not an",
        ),
    ],
)
def test_a_failing_feed_is_reported_and_costs_the_others_nothing(reply: Reply, error: str) -> None:
    good = synthetic("entries_without_guid_rss.xml")
    web = FakeWeb({ATOM_URL: reply, LAB_URL: ok(good)})
    ref = FeedRef(1, ATOM_URL, etag='"kept"', last_modified="kept", content_hash="kept")

    result = poll(web, [ref, FeedRef(2, LAB_URL)])

    failed, fine = result.feeds
    assert failed.status is FeedStatus.failed
    assert failed.error is not None and failed.error.startswith(error)
    assert "\n" not in failed.error
    # Nothing the feed knew is lost: the stored validators come back as they were.
    assert (failed.etag, failed.last_modified, failed.content_hash) == ('"kept"', "kept", "kept")
    assert failed.items == ()
    assert fine.status is FeedStatus.ok
    assert [i.data["feed_url"] for i in result.items] == [LAB_URL] * 4


def test_body_over_the_size_cap_is_refused_unparsed() -> None:
    spy = ParseSpy()
    web = FakeWeb({ATOM_URL: ok(synthetic("her2_news_atom.xml")), LAB_URL: (304, {}, b"")})

    result = poll(web, [FeedRef(1, ATOM_URL), FeedRef(2, LAB_URL)], spy=spy, max_body_bytes=1000)

    assert (
        only_failed(result)[0].error
        == f"feed {ATOM_URL}: body over 1,000 bytes (Content-Length 2255)"
    )
    assert spy.calls == []


def only_failed(result: PollResult) -> list[FeedOutcome]:
    return [o for o in result.feeds if o.status is FeedStatus.failed]


def test_a_parser_crash_fails_only_its_feed() -> None:
    web = FakeWeb(
        {
            ATOM_URL: ok(synthetic("her2_news_atom.xml")),
            LAB_URL: ok(synthetic("entries_without_guid_rss.xml")),
        }
    )

    result = poll(web, [FeedRef(1, ATOM_URL), FeedRef(2, LAB_URL)], spy=ParseSpy(fail_for=ATOM_URL))

    crashed, fine = result.feeds
    assert crashed.error == f"feed {ATOM_URL}: RuntimeError: boom"
    assert fine.status is FeedStatus.ok


def test_one_failing_feed_among_three() -> None:
    web = FakeWeb(
        {
            ATOM_URL: ok(synthetic("her2_news_atom.xml")),
            LAB_URL: (500, {}, b"oops"),
            JOURNAL_URL: ok(recorded("jpeds_rss1_rdf_prism.xml")),
        }
    )

    result = poll(web, [FeedRef(1, ATOM_URL), FeedRef(2, LAB_URL), FeedRef(3, JOURNAL_URL)])

    assert [o.status for o in result.feeds] == [FeedStatus.ok, FeedStatus.failed, FeedStatus.ok]
    assert result.feeds[1].error == f"feed {LAB_URL}: HTTP 500 (gave up after 1 attempts)"
    assert len(result.items) == 4 + 1


def test_when_every_feed_fails_for_good_the_poll_raises_source_error() -> None:
    web = FakeWeb({LAB_URL: ok(synthetic("not_a_feed.html"))})

    with pytest.raises(SourceError, match=r"^all 2 feeds failed; first: feed .*HTTP 404"):
        poll(web, [FeedRef(1, ATOM_URL), FeedRef(2, LAB_URL)])


def test_when_every_feed_fails_and_one_may_recover_the_poll_raises_retry_later() -> None:
    web = FakeWeb({ATOM_URL: (503, {"Retry-After": "0"}, b"busy")})

    with pytest.raises(RetryLater, match="all 2 feeds failed") as raised:
        poll(web, [FeedRef(1, ATOM_URL), FeedRef(2, LAB_URL)], max_retries=1)

    assert raised.value.seconds == 60.0


def test_a_gone_feed_is_not_a_failure() -> None:
    web = FakeWeb({ATOM_URL: (410, {}, b""), LAB_URL: (404, {}, b"")})

    result = poll(web, [FeedRef(1, ATOM_URL), FeedRef(2, LAB_URL)])

    assert [o.status for o in result.feeds] == [FeedStatus.gone, FeedStatus.failed]


def test_server_error_then_success_is_retried_by_the_shared_client() -> None:
    web = FakeWeb({ATOM_URL: [(500, {}, b"oops"), ok(synthetic("her2_news_atom.xml"))]})

    result = poll(web, [FeedRef(1, ATOM_URL)], max_retries=2)

    assert only(result).status is FeedStatus.ok
    assert len(web.requests) == result.requests == 2


def test_timeout_after_retries_fails_the_feed() -> None:
    web = FakeWeb({ATOM_URL: TIMEOUT, LAB_URL: ok(synthetic("entries_without_guid_rss.xml"))})

    result = poll(web, [FeedRef(1, ATOM_URL), FeedRef(2, LAB_URL)], max_retries=1)

    timed_out, fine = result.feeds
    assert timed_out.error == f"feed {ATOM_URL}: timed out after 30 s (gave up after 2 attempts)"
    assert len(web.sent_to(ATOM_URL)) == 2
    assert fine.status is FeedStatus.ok


def test_a_lone_feed_timing_out_asks_to_retry_later() -> None:
    with pytest.raises(RetryLater, match="timed out"):
        poll(FakeWeb({ATOM_URL: TIMEOUT}), [FeedRef(1, ATOM_URL)])


class _BrokenPool(Executor):
    """A process pool whose worker died."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        raise BrokenProcessPool("a child process terminated abruptly")


def test_a_dead_parser_process_is_a_transient_failure() -> None:
    web = FakeWeb({ATOM_URL: ok(synthetic("her2_news_atom.xml"))})

    with pytest.raises(RetryLater, match="the parser process died"):
        poll(web, [FeedRef(1, ATOM_URL)], executor=_BrokenPool())


def test_with_one_usable_cpu_bodies_are_parsed_inline_without_a_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rss, "_usable_cpus", lambda: 1)
    shutdown_parser_pool()
    web = FakeWeb({ATOM_URL: ok(synthetic("her2_news_atom.xml"))})
    spy = ParseSpy()

    async def run() -> PollResult:
        async with UpstreamClient(transport=httpx.MockTransport(web)) as client:
            source = FeedSource(client, parse=spy)
            return await source.poll(
                TargetQuery("t", feeds=(FeedRef(1, ATOM_URL),)), {}, now=NOW, since=NOW
            )

    assert only(asyncio.run(run())).status is FeedStatus.ok
    assert spy.calls == [ATOM_URL]  # in this process: a worker would count in its own copy
    assert rss._pool is None


# --- the poll as a whole ---------------------------------------------------------------------


def test_feeds_are_fetched_concurrently_up_to_the_limit() -> None:
    in_flight = peak = 0
    body = synthetic("entries_without_guid_rss.xml")

    async def slow_site(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, content=body)

    refs = [FeedRef(i, f"https://site{i}.example.org/feed") for i in range(10)]
    result = poll(slow_site, refs, concurrency=3)

    assert peak == 3
    assert [o.feed_id for o in result.feeds] == list(range(10))  # the target's order
    assert result.requests == 10


def test_one_host_gets_a_few_requests_at_a_time_and_does_not_hold_up_the_others() -> None:
    in_flight: dict[str, int] = {}
    peaks: dict[str, int] = {}
    overall = overall_peak = 0
    body = synthetic("entries_without_guid_rss.xml")

    async def site(request: httpx.Request) -> httpx.Response:
        nonlocal overall, overall_peak
        host = request.url.host
        in_flight[host] = in_flight.get(host, 0) + 1
        overall += 1
        peaks[host] = max(peaks.get(host, 0), in_flight[host])
        overall_peak = max(overall_peak, overall)
        await asyncio.sleep(0.01)
        in_flight[host] -= 1
        overall -= 1
        return httpx.Response(200, content=body)

    publisher = [FeedRef(i, f"https://big.example.org/journal/{i}.rss") for i in range(8)]
    others = [FeedRef(10 + i, f"https://site{i}.example.net/feed") for i in range(3)]
    result = poll(site, publisher + others, concurrency=5, per_host_concurrency=2)

    assert peaks["big.example.org"] == 2
    assert overall_peak == 5  # the other hosts used the slots the publisher could not
    assert {o.status for o in result.feeds} == {FeedStatus.ok}


def test_the_same_entry_in_two_feeds_is_returned_once() -> None:
    body = synthetic("her2_news_atom.xml")
    web = FakeWeb({ATOM_URL: ok(body), ELSEWHERE: ok(body)})

    result = poll(web, [FeedRef(1, ATOM_URL), FeedRef(2, ELSEWHERE)])

    assert [len(o.items) for o in result.feeds] == [4, 4]
    assert len(result.items) == 4


def test_progress_is_reported_per_feed() -> None:
    web = FakeWeb({ATOM_URL: (304, {}, b""), LAB_URL: (304, {}, b"")})
    seen: list[tuple[str, int, int | None]] = []

    async def run() -> None:
        async with UpstreamClient(transport=httpx.MockTransport(web)) as client:
            source = FeedSource(client)
            target = TargetQuery("t", feeds=(FeedRef(1, ATOM_URL), FeedRef(2, LAB_URL)))
            await source.poll(target, {}, now=NOW, since=NOW, progress=lambda *a: seen.append(a))

    asyncio.run(run())

    assert seen == [("feeds", 1, 2), ("feeds", 2, 2)]


def test_configured_only_for_targets_with_feeds() -> None:
    source = FeedSource(UpstreamClient())

    assert source.is_configured_for(TargetQuery("t", feeds=(FeedRef(1, ATOM_URL),)))
    assert not source.is_configured_for(TargetQuery("t", pubmed_query="HER2"))


def test_from_settings_takes_the_feed_concurrency(settings: Settings) -> None:
    source = FeedSource.from_settings(
        settings.model_copy(update={"feed_concurrency": 7}), UpstreamClient()
    )

    assert source.name is SourceName.rss
    assert source._concurrency == 7


# --- a real server, the real process pool --------------------------------------------------


class _FeedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else every body waits ~40 ms for a delayed ACK
    server: _LoopbackServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.seen.append((self.path, self.headers.get("If-None-Match")))
        body = self.server.feeds.get(self.path)
        if body is None:
            self._reply(404, b"", {})
            return
        etag = f'"{sha256(body)[:16]}"'
        if self.headers.get("If-None-Match") == etag:
            self._reply(304, b"", {"ETag": etag})
        else:
            self._reply(200, body, {"ETag": etag, "Content-Type": "application/rss+xml"})

    def _reply(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        pass


class _LoopbackServer(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 stalls concurrent clients on TCP retransmits
    daemon_threads = True

    def __init__(self, feeds: Mapping[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _FeedHandler)
        self.feeds = feeds
        #: (path, If-None-Match) of every request, in arrival order.
        self.seen: list[tuple[str, str | None]] = []


@pytest.fixture
def loopback() -> Iterator[_LoopbackServer]:
    feeds = {
        "/pubmed.xml": recorded("pubmed_rss_search_new_species_2021-12-21.xml"),
        "/ijsem.xml": recorded("ijsem_journal_toc_rss2_2021-12-21.xml"),
        "/jpeds.xml": recorded("jpeds_rss1_rdf_prism.xml"),
        "/her2.xml": synthetic("her2_news_atom.xml"),
    }
    server = _LoopbackServer(feeds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def parser_pool() -> Iterator[None]:
    yield
    shutdown_parser_pool()


@pytest.mark.slow
def test_loopback_feeds_parse_in_the_process_pool_then_answer_304(
    loopback: _LoopbackServer, parser_pool: None
) -> None:
    host, port = loopback.server_address[:2]
    paths = ["/pubmed.xml", "/ijsem.xml", "/jpeds.xml", "/her2.xml", "/missing.xml"]
    refs = [FeedRef(i, f"http://{host!s}:{port}{path}") for i, path in enumerate(paths)]

    async def two_polls() -> tuple[PollResult, PollResult, int]:
        async with UpstreamClient(max_retries=0) as client:
            source = FeedSource(client, concurrency=8)  # the shared process pool
            target = TargetQuery("her2-exon20", feeds=tuple(refs))
            first = await source.poll(target, {}, now=NOW, since=NOW)
            known = tuple(
                FeedRef(r.feed_id, r.url, o.etag, o.last_modified, o.content_hash)
                for r, o in zip(refs, first.feeds, strict=True)
            )
            again = await source.poll(
                TargetQuery("her2-exon20", feeds=known), {}, now=NOW, since=NOW
            )
            return first, again, source.parse_calls

    first, again, parse_calls = asyncio.run(two_polls())

    assert [o.status for o in first.feeds] == [FeedStatus.ok] * 4 + [FeedStatus.failed]
    assert [len(o.items) for o in first.feeds] == [15, 25, 1, 4, 0]
    # What came back through the pool is what the parser made in this process.
    expected = parse_feed(loopback.feeds["/her2.xml"], refs[3].url)
    assert tuple(first.feeds[3].items) == expected.items
    assert [o.status for o in again.feeds] == [FeedStatus.not_modified] * 4 + [FeedStatus.failed]
    assert again.items == [] and again.requests == 5
    assert parse_calls == 4  # the first poll's bodies only
    revalidated = dict(loopback.seen[5:])
    assert revalidated["/her2.xml"] == first.feeds[3].etag


def test_feeds_have_no_catalogue_wide_poll() -> None:
    """Feeds are polled per target (the sweep hands the catalogue's feeds to `poll`);
    asking the feeds adapter for the whole catalogue is a programming error."""

    async def run() -> None:
        never = httpx.MockTransport(lambda _request: httpx.Response(500))
        async with UpstreamClient(transport=never) as client:
            with pytest.raises(NotImplementedError, match="rss: no catalogue-wide poll"):
                await FeedSource(client).poll_catalogue({}, now=NOW, since=NOW)

    asyncio.run(run())
