"""Our own feed reader (`feedxml`), on the formats it claims: RSS 2.0 and Atom 1.0 in
UTF-8, with RFC 822 and W3C dates.

Each test states what an element becomes, read by `feedxml` alone (feedparser is made
to fail), and the bodies it must decline are named with what reads them instead. That
feedxml agrees with feedparser on every body it takes is test_feedparse_fast.py's; the
dates are compared with feedparser here as well, shape by shape.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import feedparser
import pytest

from alerts.sources import feedparse
from alerts.sources.feedparse import ParsedFeed, parse_feed
from alerts.sources.feedxml import Unsupported, extract, parse_date

FEED_URL = "https://news.example.org/feeds/oncology.xml"
NS = (
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
    'xmlns:atom="http://www.w3.org/2005/Atom"'
)


CHANNEL = "<title>News</title><link>https://n.example.org/</link>"
FEED = '<title>News</title><link href="https://n.example.org/"/>'


def rss(items: str, channel: str = CHANNEL) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" {NS}><channel>{channel}'
        f"{items}</channel></rss>"
    ).encode()


def atom(entries: str, feed: str = FEED) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"{feed}{entries}</feed>"
    ).encode()


@pytest.fixture
def no_feedparser(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("feedparser called: feedxml declined the body")

    monkeypatch.setattr(feedparse.feedparser, "parse", refuse)


def read(body: bytes, base_url: str | None = None) -> ParsedFeed:
    return parse_feed(body, FEED_URL, base_url)


# --- RSS 2.0 ----------------------------------------------------------------------------


@pytest.mark.usefixtures("no_feedparser")
def test_an_rss2_item_with_every_element_read() -> None:
    parsed = read(
        rss(
            "<item><title>HER2 exon 20 &amp; more</title>"
            "<link>https://n.example.org/a?x=1&amp;y=2</link>"
            '<guid isPermaLink="false">post-7</guid>'
            "<description>&lt;p&gt;teaser&lt;/p&gt;</description>"
            "<content:encoded><![CDATA[<p>The <b>full</b> text.</p>]]></content:encoded>"
            "<pubDate>Tue, 04 Mar 2025 09:00:00 +0100</pubDate>"
            "<author>desk@n.example.org (News Desk)</author>"
            "<dc:identifier>doi:10.1000/xyz</dc:identifier>"
            '<category domain="x">Lung</category>'
            '<enclosure url="https://n.example.org/a.mp3" type="audio/mpeg" length="1"/>'
            "</item>"
        )
    )
    [item] = parsed.items
    assert (parsed.title, parsed.link) == ("News", "https://n.example.org/")
    assert item.external_id == f"{FEED_URL}#post-7"  # a local guid, prefixed with the feed
    assert item.title == "HER2 exon 20 & more"
    assert item.url == "https://n.example.org/a?x=1&y=2"  # not the enclosure
    assert item.summary == "The full text."  # content:encoded over the description
    assert item.data["teaser"] == "teaser"
    assert item.published_at == datetime(2025, 3, 4, 8, 0, tzinfo=UTC)
    assert item.data["author"] == "News Desk"
    assert item.data["doi"] == "10.1000/xyz"


@pytest.mark.usefixtures("no_feedparser")
def test_an_rss2_guid_is_the_link_unless_it_says_otherwise() -> None:
    permalink, local = read(
        rss(
            "<item><title>A</title><guid>https://n.example.org/p/1</guid></item>"
            '<item><title>B</title><guid isPermaLink="false">https://n.example.org/p/2</guid>'
            "</item>"
        )
    ).items
    assert (permalink.external_id, permalink.url) == (
        "https://n.example.org/p/1",
        "https://n.example.org/p/1",
    )
    # Not a permalink: still a global id, but the item points at the feed's site.
    assert (local.external_id, local.url) == ("https://n.example.org/p/2", "https://n.example.org/")


@pytest.mark.usefixtures("no_feedparser")
def test_relative_links_are_joined_to_where_the_feed_came_from() -> None:
    [item] = read(
        rss("<item><title>T</title><link>/notes/2</link></item>", channel="<title>N</title>"),
        base_url="https://mirror.example.org/feeds/a.xml",
    ).items
    assert item.url == "https://mirror.example.org/notes/2"
    assert item.external_id == "https://mirror.example.org/notes/2"


@pytest.mark.usefixtures("no_feedparser")
def test_entities_character_references_and_cdata_become_text() -> None:
    [item] = read(
        rss(
            "<item><title>A &#8211; B &#x2014; C &lt;i&gt;D&lt;/i&gt;</title>"
            "<description><![CDATA[x &amp; y <br/>z]]></description></item>"
        )
    ).items
    assert item.title == "A \u2013 B \u2014 C D"
    assert item.summary == "x & y z"


@pytest.mark.usefixtures("no_feedparser")
@pytest.mark.parametrize(
    ("title", "text"),
    [
        ("A &#150; B &#147;q&#148;", "A \u2013 B \u201cq\u201d"),  # C1 controls meant as cp1252
        ("caf\u00c3\u00a9", "caf\u00e9"),  # UTF-8 read as Latin-1 somewhere upstream
        ("caf\u00e9 \u00a9", "caf\u00e9 \u00a9"),  # real Latin-1 text stays
    ],
)
def test_text_repairs(title: str, text: str) -> None:
    [item] = read(rss(f"<item><title>{title}</title></item>")).items
    assert item.title == text


@pytest.mark.usefixtures("no_feedparser")
def test_authors_several_creators_and_an_email_only_author() -> None:
    creators, email_only = read(
        rss(
            "<item><title>A</title><dc:creator>Ana Ruiz</dc:creator>"
            "<dc:creator>Ben Okafor</dc:creator></item>"
            "<item><title>B</title><author>desk@n.example.org</author></item>"
        )
    ).items
    assert creators.data["author"] == "Ana Ruiz, Ben Okafor"
    assert email_only.data["author"] == "desk@n.example.org"


@pytest.mark.usefixtures("no_feedparser")
def test_the_first_non_empty_title_wins_and_a_missing_one_comes_from_the_summary() -> None:
    titled, untitled = read(
        rss(
            "<item><title></title><dc:title>Second</dc:title><title>Third</title></item>"
            "<item><description>Only a description here</description></item>"
        )
    ).items
    assert titled.title == "Second"
    assert untitled.title == "Only a description here"
    assert untitled.external_id.startswith("sha256:")  # no guid, no link


# --- Atom 1.0 ---------------------------------------------------------------------------


@pytest.mark.usefixtures("no_feedparser")
def test_an_atom_entry_with_every_element_read() -> None:
    parsed = read(
        atom(
            '<entry><title type="html">&lt;b&gt;HER2&lt;/b&gt; &amp;amp; EGFR</title>'
            "<id>tag:n.example.org,2025:1</id>"
            '<link rel="self" href="https://n.example.org/self"/>'
            '<link rel="enclosure" href="https://n.example.org/a.pdf"/>'
            '<link rel="alternate" type="text/html" href="https://n.example.org/html"/>'
            '<summary type="text">teaser</summary>'
            '<content type="html">&lt;p&gt;full &lt;i&gt;text&lt;/i&gt;&lt;/p&gt;</content>'
            "<published>2025-03-04T08:30:00+01:00</published>"
            "<updated>2025-03-05T00:00:00Z</updated>"
            "<author><name>Ana Ruiz</name><email>ana@n.example.org</email></author>"
            "<author><name>Ben Okafor</name></author>"
            '<category term="lung"/></entry>'
        )
    )
    [item] = parsed.items
    assert (parsed.title, parsed.link) == ("News", "https://n.example.org/")
    assert item.external_id == "tag:n.example.org,2025:1"
    assert item.title == "HER2 & EGFR"
    assert item.url == "https://n.example.org/html"
    assert item.summary == "full text"
    assert item.data["teaser"] == "teaser"
    assert item.published_at == datetime(2025, 3, 4, 7, 30, tzinfo=UTC)  # published first
    assert item.data["author"] == "Ana Ruiz, Ben Okafor"


@pytest.mark.usefixtures("no_feedparser")
def test_an_atom_id_that_is_a_url_is_the_link_when_there_is_none() -> None:
    [item] = read(atom("<entry><title>T</title><id>https://n.example.org/e/1</id></entry>")).items
    assert item.url == "https://n.example.org/e/1"


@pytest.mark.usefixtures("no_feedparser")
def test_an_atom_entry_dated_by_updated_alone() -> None:
    [item] = read(atom("<entry><title>T</title><updated>2025-03-05</updated></entry>")).items
    assert item.published_at == datetime(2025, 3, 5, tzinfo=UTC)


# --- encodings and formats ----------------------------------------------------------------


@pytest.mark.usefixtures("no_feedparser")
@pytest.mark.parametrize(
    "body",
    [
        rss("<item><title>Caf\u00e9</title></item>"),
        b"\xef\xbb\xbf" + rss("<item><title>Caf\u00e9</title></item>"),  # BOM
        rss("<item><title>Caf\u00e9</title></item>").split(b"?>", 1)[1],  # no declaration
    ],
    ids=["declared", "bom", "undeclared"],
)
def test_utf8_is_read_with_or_without_declaration_or_bom(body: bytes) -> None:
    assert read(body).items[0].title == "Caf\u00e9"


@pytest.mark.parametrize(
    ("body", "title"),
    [
        (
            b'<?xml version="1.0" encoding="ISO-8859-1"?><rss version="2.0"><channel>'
            b"<item><title>\xc9t\xe9</title></item></channel></rss>",
            "\u00c9t\u00e9",
        ),
        (
            rss("<item><title>\u00c9t\u00e9</title></item>")
            .replace(b"UTF-8", b"UTF-16")
            .decode()
            .encode("utf-16"),
            "\u00c9t\u00e9",
        ),
        (
            b'<?xml version="1.0"?><rss version="0.91"><channel><title>N</title>'
            b"<item><title>RSS 0.91</title><link>https://n.example.org/1</link></item>"
            b"</channel></rss>",
            "RSS 0.91",
        ),
        (
            b'<?xml version="1.0"?><rss version="0.92"><channel><title>N</title>'
            b"<item><title>RSS 0.92</title><link>https://n.example.org/1</link></item>"
            b"</channel></rss>",
            "RSS 0.92",
        ),
        (
            b'<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
            b' xmlns="http://purl.org/rss/1.0/"><channel rdf:about="https://n.example.org/">'
            b"<title>N</title></channel><item rdf:about=\"https://n.example.org/1\">"
            b"<title>RSS 1.0</title><link>https://n.example.org/1</link></item></rdf:RDF>",
            "RSS 1.0",
        ),
        (
            b'<feed version="0.3" xmlns="http://purl.org/atom/ns#"><title>N</title>'
            b"<entry><title>Atom 0.3</title><id>tag:n.example.org,2025:1</id></entry></feed>",
            "Atom 0.3",
        ),
    ],
    ids=["iso-8859-1", "utf-16", "rss-0.91", "rss-0.92", "rss-1.0", "atom-0.3"],
)
def test_other_encodings_and_formats_are_declined_and_read_by_feedparser(
    body: bytes, title: str
) -> None:
    assert extract(body) is None
    [item] = read(body).items
    assert item.title == title


def test_a_body_with_a_doctype_is_declined_before_it_is_parsed() -> None:
    body = b'<!DOCTYPE rss SYSTEM "x.dtd">' + rss("<item><title>T</title></item>")
    assert extract(body) is None


def test_an_undeclared_entity_is_declined_not_expanded() -> None:
    assert extract(rss("<item><title>A&nbsp;B</title></item>")) is None
    [item] = read(rss("<item><title>A&nbsp;B</title></item>")).items  # feedparser knows it
    assert item.title == "A B"


# --- dates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "instant"),
    [
        ("Tue, 04 Mar 2025 09:00:00 GMT", datetime(2025, 3, 4, 9, 0)),
        ("Tuesday, 04 Mar 2025 09:00:00 UT", datetime(2025, 3, 4, 9, 0)),
        ("Tue 4 March 2025 9:00 Z", datetime(2025, 3, 4, 9, 0)),
        ("04 Mar 2025 09:00:00 +0100", datetime(2025, 3, 4, 8, 0)),
        ("04 Mar 2025 09:00:00 -05:30", datetime(2025, 3, 4, 14, 30)),
        ("04 Mar 2025 09:00:00 EST", datetime(2025, 3, 4, 14, 0)),
        ("04 Mar 2025 09:00:00 pdt", datetime(2025, 3, 4, 16, 0)),
        ("04 Mar 2025 09:00:00 MEST", datetime(2025, 3, 4, 7, 0)),
        ("01 Jan 2025 00:30:00 +0100", datetime(2024, 12, 31, 23, 30)),  # across a year
        ("04 Mar 25 09:00:00 GMT", datetime(2025, 3, 4, 9, 0)),
        ("04 Mar 95 09:00:00 GMT", datetime(1995, 3, 4, 9, 0)),
        ("2025-03-04T08:30:00+01:00", datetime(2025, 3, 4, 7, 30)),
        ("2025-03-04T08:30:00-05:00", datetime(2025, 3, 4, 13, 30)),
        ("2025-03-04T08:30:00Z", datetime(2025, 3, 4, 8, 30)),
        ("2025-03-04t08:30:59.999z", datetime(2025, 3, 4, 8, 30, 59)),
        ("2025-03-04T08:30Z", datetime(2025, 3, 4, 8, 30)),
        ("2025-03-04T08:30:00", datetime(2025, 3, 4, 8, 30)),  # no zone: UTC
        ("2025-03-04", datetime(2025, 3, 4)),
    ],
)
def test_dates_are_read_to_the_utc_instant_feedparser_gives(value: str, instant: datetime) -> None:
    assert parse_date(value) == instant.utctimetuple()
    assert parse_date(value) == feedparser_date(value)


@pytest.mark.parametrize(
    "value",
    [
        "sometime soon",
        "2025-03-04 09:00:00",  # MSSQL style
        "Tue, 04 Mar 2025 09:00:00",  # no zone
        "Tue, 04 Mar 2025 09:00:00 CET",  # a zone feedparser would take for UTC
        "Tue, 04 Foo 2025 09:00:00 GMT",
        "2025-13-01T00:00:00Z",
        "2025-02-30",
        "Tue, 04 Mar 2025 24:00:00 GMT",
        "20250304T090000Z",  # ISO 8601 basic
    ],
)
def test_dates_in_other_shapes_are_declined(value: str) -> None:
    with pytest.raises(Unsupported):
        parse_date(value)
    assert extract(rss(f"<item><title>T</title><pubDate>{value}</pubDate></item>")) is None


def test_an_empty_date_is_no_date() -> None:
    assert parse_date("") is None
    [item] = read(rss("<item><title>T</title><pubDate></pubDate></item>")).items
    assert item.published_at is None


def feedparser_date(value: str) -> time.struct_time | None:
    """The date feedparser's public `parse` gives an item's pubDate."""
    parsed = feedparser.parse(rss(f"<item><title>T</title><pubDate>{value}</pubDate></item>"))
    result: time.struct_time | None = parsed.entries[0].get("published_parsed")
    return result


def random_dates(seed: int, count: int) -> list[str]:
    """Dates in and around the two shapes: odd zones, days, spacing, fractions."""
    chooser = random.Random(seed)
    pick = chooser.choice
    values = []
    for _ in range(count):
        day, hour, minute = chooser.randint(0, 32), chooser.randint(0, 25), chooser.randint(0, 61)
        zone = pick(["GMT", "UT", "Z", "EST", "edt", "CET", "A", "Y", "+0000", "-0930",
                     "+05:45", "+1", "", "MET", "gmt+01:00"])  # fmt: skip
        if chooser.random() < 0.5:
            year = pick(["2025", "1999", "89", "90", "05"])
            weekday = pick(["", "Mon, ", "Tue ", "Thursday, ", "Xyz, "])
            month = pick(["Jan", "oct", "March", "Sept", "Foo"])
            seconds = pick(["", ":00", ":59", ":60"])
            values.append(f"{weekday}{day} {month} {year} {hour}:{minute:02d}{seconds} {zone}")
        else:
            zone = pick(["Z", "z", "+01:00", "-05:30", "+0100", "", "+14:00"])
            time_part = pick(["", f"T{hour:02d}:{minute:02d}", f"T{hour:02d}:{minute:02d}:07",
                              f"t{hour:02d}:{minute:02d}:07.25"])  # fmt: skip
            values.append(f"{pick(['2025', '1970', '0001'])}-{day % 14:02d}-{day:02d}{time_part}"
                          f"{zone if time_part else ''}")  # fmt: skip
    return values


@pytest.mark.parametrize("value", random_dates(seed=20250306, count=120))
def test_any_date_read_is_read_as_feedparser_reads_it(value: str) -> None:
    try:
        ours = parse_date(value)
    except Unsupported:
        return  # declined: feedparser reads the body
    assert ours == feedparser_date(value)
