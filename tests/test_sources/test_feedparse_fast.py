"""The fast path of feed parsing gives exactly what the feedparser path gives, or declines.

An entry read by the two paths must get the same identity, title, link, summary, date
and author, or a feed would yield duplicates when it moves from one path to the other.
Every body below is parsed both ways (`_parse_feed(..., fast=False)` is feedparser
alone) and the results compared; the bodies the fast path must take, and those it must
leave to feedparser, are named.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from alerts.sources import feedparse
from alerts.sources.feedparse import FeedParseError, ParsedFeed, _parse_feed
from alerts.sources.feedxml import extract
from bench.feedserver import make_feeds

DATA = Path(__file__).resolve().parent.parent / "data"
FEED_URL = "https://news.example.org/feeds/oncology.xml"

#: Files that are well-formed RSS 2.0 or Atom 1.0 using only elements the fast path reads.
FAST_FILES = {
    "upstream/rss/ijsem_journal_toc_rss2_2021-12-21.xml",
    "upstream/rss/pubmed_rss_search_new_species_2021-12-21.xml",
    "feeds/entries_without_guid_rss.xml",
    "feeds/her2_news_atom.xml",
}
FILES = sorted(
    str(path.relative_to(DATA))
    for folder in ("upstream/rss", "feeds")
    for path in (DATA / folder).iterdir()
)


def both_ways(body: bytes, feed_url: str = FEED_URL) -> tuple[object, object]:
    """(feedparser's result, the fast path's result); a FeedParseError is a result too."""
    results: list[object] = []
    for fast in (False, True):
        try:
            results.append(_parse_feed(body, feed_url, None, fast=fast))
        except FeedParseError as exc:
            results.append(("FeedParseError", str(exc)))
    return results[0], results[1]


def assert_same(body: bytes, *, fast: bool, feed_url: str = FEED_URL) -> None:
    slow_result, fast_result = both_ways(body, feed_url)
    assert fast_result == slow_result
    assert (extract(body) is not None) is fast


def test_the_corpus_has_feeds_of_both_kinds() -> None:
    assert set(FILES) >= FAST_FILES
    assert len(FILES) > len(FAST_FILES)


@pytest.mark.parametrize("name", FILES)
def test_every_recorded_and_synthetic_feed_parses_the_same(name: str) -> None:
    assert_same((DATA / name).read_bytes(), fast=name in FAST_FILES)


@pytest.mark.parametrize("path", sorted(make_feeds(3, 5)))
def test_benchmark_feeds_take_the_fast_path_with_the_same_items(path: str) -> None:
    body = make_feeds(3, 5)[path]
    assert_same(body, fast=True, feed_url=f"http://127.0.0.1{path}")
    parsed = _parse_feed(body, f"http://127.0.0.1{path}", None, fast=True)
    assert len(parsed.items) == 5
    assert all(item.published_at is not None for item in parsed.items)


def test_parse_feed_does_not_call_feedparser_for_a_well_formed_rss2_feed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("feedparser called")

    monkeypatch.setattr(feedparse.feedparser, "parse", refuse)
    parsed = feedparse.parse_feed(make_feeds(1, 3)["/feeds/0.xml"], FEED_URL)
    assert isinstance(parsed, ParsedFeed)
    assert len(parsed.items) == 3


def rss(
    items: str,
    *,
    channel: str = "<title>News</title><link>https://news.example.org/</link>",
    head: str = '<?xml version="1.0" encoding="UTF-8"?>',
    attrs: str = "",
) -> bytes:
    return (
        f'{head}<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        f'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        f'xmlns:atom="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/"'
        f"{attrs}><channel>{channel}{items}</channel></rss>"
    ).encode()


def atom(
    entries: str, *, feed: str = '<title>News</title><link href="https://news.example.org/"/>'
) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"{feed}{entries}</feed>"
    ).encode()


TAKEN = {
    "cdata title": rss(
        "<item><title><![CDATA[HER2 <b>exon 20</b> & more]]></title>"
        "<link>https://n.example.org/1</link></item>"
    ),
    "html-escaped summary": rss(
        "<item><title>T</title><guid>https://n.example.org/1</guid><description>"
        "&lt;p&gt;In &lt;i&gt;ERBB2&lt;/i&gt; exon&amp;nbsp;20 &amp;amp; more&lt;/p&gt;"
        "</description></item>"
    ),
    "no guid, no link": rss(
        "<item><title>T</title><description>only text</description>"
        "<pubDate>Tue, 04 Mar 2025 09:00:00 GMT</pubDate></item>"
    ),
    "no guid, no link, no title": rss("<item><description>only text</description></item>"),
    "guid is the link": rss("<item><title>T</title><guid>https://n.example.org/p/1</guid></item>"),
    "guid not a permalink": rss(
        '<item><title>T</title><guid isPermaLink="false">post-7</guid></item>'
    ),
    "guid before link": rss(
        "<item><guid>https://n.example.org/g</guid><link>https://n.example.org/l</link></item>"
    ),
    "empty link after guid": rss(
        "<item><title>T</title><guid>https://n.example.org/g</guid><link></link></item>"
    ),
    "relative link": rss("<item><title>T</title><link>/notes/2</link></item>"),
    "link with query": rss(
        "<item><title>T</title><link>https://n.example.org/a?x=1&amp;amp;y=2&amp;z;</link></item>"
    ),
    "whitespace everywhere": rss(
        "<item>\n  <title>\n   Spaced   title \n</title>\n  <link>\n https://n.example.org/1 \n"
        "</link>\n  <guid>\n  tag:n.example.org,2025:1  </guid>\n  <description>\n\n  a\n  b"
        "\n</description>\n</item>\n",
        channel="\n<title>\n News \n</title>\n<link>\n https://news.example.org/ \n</link>\n",
    ),
    "first non-empty title wins": rss(
        "<item><title></title><dc:title>Second</dc:title>"
        "<title>Third</title><link>https://n.example.org/1</link>"
        "</item>"
    ),
    "content:encoded and description": rss(
        "<item><title>T</title><content:encoded>&lt;p&gt;full text&lt;/p&gt;</content:encoded>"
        "<description>teaser</description><link>https://n.example.org/1</link></item>"
    ),
    "empty content:encoded": rss(
        "<item><title>T</title><content:encoded></content:encoded>"
        "<description>teaser</description></item>"
    ),
    "email and name author": rss(
        "<item><title>T</title><author>desk@example.org (News Desk)</author></item>"
    ),
    "email-only author": rss("<item><title>T</title><author>desk@example.org</author></item>"),
    "several dc:creators": rss(
        "<item><title>T</title><dc:creator>Ana Ruiz</dc:creator>"
        "<dc:creator>Ben Okafor</dc:creator></item>"
    ),
    "dc:date and pubDate": rss(
        "<item><title>T</title><dc:date>2025-03-04T08:30:00+01:00</dc:date>"
        "<pubDate>Mon, 03 Mar 2025 09:00:00 -0500</pubDate></item>"
    ),
    "dc:identifier doi": rss(
        "<item><title>T</title><dc:identifier>doi:10.1000/xyz</dc:identifier></item>"
    ),
    "atom:link alternate in an item": rss(
        '<item><title>T</title><atom:link rel="Alternate" href="https://n.example.org/a"/>'
        '<atom:link rel="self" href="https://n.example.org/self"/></item>'
    ),
    "atom self link in the channel": rss(
        "<item><title>T</title></item>",
        channel='<title>N</title><atom:link rel="self" href="https://news.example.org/rss"/>',
    ),
    "cp1252 character references": rss("<item><title>A &#150; B &#147;q&#148;</title></item>"),
    "utf-8 read as latin-1": rss("<item><title>HER2 caf\u00c3\u00a9</title></item>"),
    "javascript: link": rss("<item><title>T</title><link>javascript:alert(1)</link></item>"),
    "no declaration": rss("<item><title>T</title></item>", head=""),
    "utf-8 BOM": b"\xef\xbb\xbf" + rss("<item><title>Caf\u00e9</title></item>"),
    "category, comments, enclosure": rss(
        '<item><title>T</title><category domain="x">Lung</category><comments>'
        'https://n.example.org/c</comments><enclosure url="https://n.example.org/a.mp3" '
        'type="audio/mpeg" length="1"/></item>'
    ),
    "image in the channel": rss(
        "<item><title>T</title></item>",
        channel="<image><title>Logo</title><url>https://n.example.org/l.png</url>"
        "<link>https://n.example.org/</link></image><title>News</title>",
    ),
    "no items": rss(""),
    "atom multiple links": atom(
        "<entry><title>T</title><id>tag:n.example.org,2025:1</id>"
        '<link rel="self" href="https://n.example.org/self"/>'
        '<link rel="alternate" type="text/html" href="https://n.example.org/html"/>'
        '<link rel="enclosure" href="https://n.example.org/a.pdf"/>'
        '<link rel="alternate" type="application/pdf" href="https://n.example.org/pdf"/>'
        "<updated>2025-03-04T09:00:00Z</updated></entry>"
    ),
    "atom id is the link": atom(
        "<entry><title>T</title><id>https://n.example.org/e/1</id></entry>"
    ),
    "atom link without rel": atom(
        '<entry><title>T</title><link href="https://n.example.org/1"/></entry>'
    ),
    "atom html title and content": atom(
        '<entry><title type="html">&lt;b&gt;HER2&lt;/b&gt; &amp;amp; EGFR</title>'
        '<id>tag:n.example.org,2025:2</id><content type="html">&lt;p&gt;body&lt;/p&gt;</content>'
        "<summary>teaser</summary><published>2025-03-04T08:30:00+01:00</published></entry>"
    ),
    "atom text content": atom(
        '<entry><title>T</title><content type="text">plain</content></entry>'
    ),
    "atom authors": atom(
        "<entry><title>T</title><author><name>Ana Ruiz</name><email>ana@example.org</email>"
        "</author><author><email>ben@example.org</email></author>"
        "<author><uri>https://n.example.org/c</uri></author></entry>"
    ),
    "atom feed id before link": atom(
        "<entry><title>T</title></entry>",
        feed="<title>N</title><id>https://news.example.org/id</id>",
    ),
}

DECLINED = {
    "non-UTF-8 declaration": (
        b'<?xml version="1.0" encoding="ISO-8859-1"?><rss version="2.0"><channel>'
        b"<title>Caf\xe9</title><item><title>\xc9t\xe9</title></item></channel></rss>"
    ),
    "unknown root": b'<?xml version="1.0"?><news><item><title>T</title></item></news>',
    "RSS 0.91": b'<rss version="0.91"><channel><title>N</title><item><title>T</title>'
    b"</item></channel></rss>",
    "RSS 1.0": (DATA / "upstream/rss/jpeds_rss1_rdf_prism.xml").read_bytes(),
    "malformed": b'<rss version="2.0"><channel><item><title>T</title></channel></rss>',
    "DOCTYPE without entities": b'<!DOCTYPE rss SYSTEM "x.dtd"><rss version="2.0"><channel>'
    b"<item><title>T</title></item></channel></rss>",
    "xml:base": rss(
        '<item xml:base="https://other.example.org/"><title>T</title><link>rel/1</link></item>'
    ),
    # feedparser tries nine date formats on it; the fast path reads RFC 822 and W3C only.
    "unparseable date": rss("<item><title>T</title><pubDate>sometime soon</pubDate></item>"),
    "date in another format": rss(
        "<item><title>T</title><pubDate>2025-03-04 09:00:00</pubDate></item>"
    ),
    "unknown element in an item": rss("<item><title>T</title><media:title>M</media:title></item>"),
    "markup inside a description": rss(
        "<item><title>T</title><description>a <b>b</b></description></item>"
    ),
    "two descriptions": rss(
        "<item><description>a</description><description>b</description></item>"
    ),
    "channel title after the items": rss("<item><title>T</title></item><title>Late</title>"),
    "atom xhtml content": atom(
        '<entry><title>T</title><content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
        "<p>x</p></div></content></entry>"
    ),
    "atom content by reference": atom(
        '<entry><title>T</title><content src="https://n.example.org/c"/></entry>'
    ),
    "atom 0.3": b'<feed version="0.3" xmlns="http://purl.org/atom/ns#"><title>N</title>'
    b"<entry><title>T</title></entry></feed>",
    "utf-16": rss("<item><title>T</title></item>", head='<?xml version="1.0" encoding="UTF-16"?>')
    .decode()
    .encode("utf-16"),
}


@pytest.mark.parametrize("name", sorted(TAKEN))
def test_the_fast_path_reads_well_formed_feeds_as_feedparser_does(name: str) -> None:
    assert_same(TAKEN[name], fast=True)


@pytest.mark.parametrize("name", sorted(DECLINED))
def test_anything_else_is_left_to_feedparser(name: str) -> None:
    assert_same(DECLINED[name], fast=False)


def test_a_feed_keeps_its_item_ids_when_it_moves_between_paths() -> None:
    body = TAKEN["no guid, no link"]
    slow = _parse_feed(body, FEED_URL, None, fast=False).items[0]
    fast = _parse_feed(body, FEED_URL, None, fast=True).items[0]
    assert fast.external_id == slow.external_id
    assert fast.external_id.startswith("sha256:")


@pytest.mark.parametrize("fast", [False, True])
def test_a_content_hash_id_is_the_one_stored_before(fast: bool) -> None:
    """Ids of entries without guid or link hash the title, summary and dates; with no
    `updated` date, `published` counts twice (as feedparser's results used to answer
    `updated` with it). The value was computed by the code that stored such items."""
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>N</title><item><title>T'
        b"</title><description>S</description><pubDate>Sun, 02 Mar 2025 09:00:00 GMT</pubDate>"
        b"</item></channel></rss>"
    )
    [item] = _parse_feed(body, "https://lab.example.com/feed.xml", None, fast=fast).items
    assert item.external_id == (
        "sha256:fd47f59e47ad7c32a34bfc442da0ebe56d19b4c2a4647802c747100b35a9e6d9"
    )


#: Children an RSS item may have, in every order and combination drawn below.
RSS_PARTS = (
    "<title>HER2 exon 20</title>",
    "<title></title>",
    "<dc:title>Other title</dc:title>",
    "<link>https://n.example.org/l</link>",
    "<link>/relative</link>",
    "<guid>https://n.example.org/g</guid>",
    '<guid isPermaLink="false">42</guid>',
    "<description>&lt;p&gt;teaser&lt;/p&gt;</description>",
    "<content:encoded><![CDATA[<p>full</p>]]></content:encoded>",
    "<pubDate>Tue, 04 Mar 2025 09:00:00 +0100</pubDate>",
    "<dc:date>2025-03-02T10:00:00Z</dc:date>",
    "<author>a@example.org (A)</author>",
    "<dc:creator>B</dc:creator>",
    '<atom:link href="https://n.example.org/alt"/>',
    "<category>c</category>",
)
ATOM_PARTS = (
    "<title>HER2 exon 20</title>",
    '<title type="html">&lt;i&gt;t&lt;/i&gt;</title>',
    "<id>tag:n.example.org,2025:9</id>",
    "<id>https://n.example.org/id</id>",
    '<link href="https://n.example.org/a"/>',
    '<link rel="related" href="https://n.example.org/r"/>',
    "<summary>teaser</summary>",
    '<content type="html">&lt;p&gt;full&lt;/p&gt;</content>',
    "<published>2025-03-04T08:30:00+01:00</published>",
    "<updated>2025-03-05T00:00:00Z</updated>",
    "<author><name>A</name></author>",
    "<author><email>b@example.org</email></author>",
)


def combinations(parts: tuple[str, ...], seed: int, count: int) -> list[str]:
    chooser = random.Random(seed)
    return [
        "".join(chooser.sample(parts, chooser.randint(0, min(6, len(parts))))) for _ in range(count)
    ]


@pytest.mark.parametrize("children", combinations(RSS_PARTS, seed=20250304, count=60))
def test_rss_items_built_from_any_children_parse_the_same(children: str) -> None:
    slow_result, fast_result = both_ways(rss(f"<item>{children}</item>"))
    assert fast_result == slow_result


@pytest.mark.parametrize("children", combinations(ATOM_PARTS, seed=20250305, count=60))
def test_atom_entries_built_from_any_children_parse_the_same(children: str) -> None:
    slow_result, fast_result = both_ways(atom(f"<entry>{children}</entry>"))
    assert fast_result == slow_result
