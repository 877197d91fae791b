"""Feed bytes -> FetchedItems: the CPU-bound half of the RSS/Atom adapter.

It lives apart from `rss.py` because it runs in worker processes: a parse of a large
feed costs milliseconds to seconds of pure Python, which would stall the event loop that
is fetching the other feeds. Everything here is a plain function of its arguments, and
it returns plain picklable data (`ParsedFeed` of `FetchedItem`s), never feedparser
objects.

Two readers, one result. Well-formed UTF-8 RSS 2.0 and Atom 1.0 bodies, most feeds, are
read by our own `feedxml` (the standard library's XML parser, a fraction of feedparser's
cost); every other body (RSS 0.9x and 1.0, Atom 0.3, other encodings, anything `feedxml`
declines) by feedparser's public `parse`. Both give entries keyed as feedparser documents
them, and `_item` turns either into the same FetchedItem: an item must get the same id,
title, link, summary and date whichever reader read it.

feedparser is always handed bytes (it never fetches a URL itself), with its HTML
sanitiser and relative-URI rewriting off: we reduce titles and summaries to plain text
here and the templates escape on output, so sanitising would only halve the parse rate.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser

from alerts.sources.base import FetchedItem, ItemKind, SourceName
from alerts.sources.feedxml import Extracted, extract
from alerts.sources.urls import item_link, without_credentials

#: Bodies above this size are refused before parsing (feeds are rarely above 1 MB).
MAX_FEED_BYTES = 10 * 1024 * 1024
SUMMARY_MAX_CHARS = 2000
TITLE_MAX_CHARS = 500
#: The `items.external_id` column is 512 characters wide.
EXTERNAL_ID_MAX_CHARS = 512

#: Internal entity declarations (inside a DOCTYPE), in the encodings a feed may arrive
#: in. Feeds have no use for them and they carry entity-expansion bombs ("billion
#: laughs"): feedparser drops only the declarations it recognises line by line and then
#: falls back to its loose parser, so we refuse the whole body instead.
_CODECS = ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
_DOCTYPE = tuple("<!DOCTYPE".encode(codec) for codec in _CODECS)
_ENTITY = tuple("<!ENTITY".encode(codec) for codec in _CODECS)
#: Entry ids that name a record globally, whichever feed carries them, are kept as they
#: are; any other id ("1234", "post-7") is only unique inside its feed.
_GLOBAL_ID = re.compile(
    r"^(?:[a-z][a-z0-9+.\-]*://|urn:|tag:|doi:|pmid:|pubmed:|info:(?:doi|pmid)/)", re.IGNORECASE
)
# The patterns below stay linear on hostile markup: an unclosed <script> or comment runs
# to the end of the text (as in a browser) instead of being retried from every later
# "<", and no tag pattern scans past the next "<".
_SCRIPT_OR_STYLE = re.compile(
    r"<(script|style)\b[^<>]*>.*?(?:</\1\s*>|\Z)", re.IGNORECASE | re.DOTALL
)
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
#: Tags that separate words; inline ones (<i>, <sup>, <span>) join them: "LJ126<sup>T</sup>".
_BLOCK_TAG = re.compile(
    r"</?(?:p|div|br|hr|li|ul|ol|dl|dt|dd|h[1-6]|table|tr|td|th|blockquote|pre|section|article"
    r"|header|footer|figure|figcaption)\b[^<>]*>",
    re.IGNORECASE,
)
#: Only what looks like a tag: "a < b" in plain text survives.
_TAG = re.compile(r"</?[a-zA-Z][^<>]*>|<![^<>]*>|<\?[^<>]*>")
#: plain_text reads at most this many characters per character it may return.
_INPUT_PER_OUTPUT = 32


class FeedParseError(Exception):
    """The body is not a usable feed; the message is one line for the operator."""


@dataclass(frozen=True)
class ParsedFeed:
    title: str | None
    link: str | None
    items: tuple[FetchedItem, ...]
    #: Set when feedparser recovered entries from a body that is not well-formed.
    warning: str | None = None


def parse_feed(body: bytes, feed_url: str, base_url: str | None = None) -> ParsedFeed:
    """Parse a feed body into items. Raises FeedParseError.

    `feed_url` is the URL the feed is stored under (it prefixes entry ids that are only
    unique inside the feed); `base_url`, where the body was actually fetched from after
    redirects, resolves relative links (default: `feed_url`).
    """
    return _parse_feed(body, feed_url, base_url, fast=True)


def _parse_feed(body: bytes, feed_url: str, base_url: str | None, *, fast: bool) -> ParsedFeed:
    """`parse_feed`; with `fast=False` feedparser reads every body (tests compare both)."""
    # Ids, links and data are stored and shown: a feed URL's password must not reach them.
    feed_url = without_credentials(feed_url)
    base = without_credentials(base_url or feed_url)
    if len(body) > MAX_FEED_BYTES:
        raise FeedParseError(f"body too large ({len(body):,} bytes, limit {MAX_FEED_BYTES:,})")
    if not body.strip():
        raise FeedParseError("empty body")
    if any(m in body for m in _DOCTYPE) and any(m in body for m in _ENTITY):
        raise FeedParseError("refused: the body declares XML entities (entity-expansion risk)")
    extracted = extract(body) if fast else None
    if extracted is None:
        extracted = _feedparser_extract(body)
    feed, entries, bozo = extracted
    feed_title = plain_text(feed.get("title", ""), TITLE_MAX_CHARS) or None
    feed_link = item_link(feed.get("link"), base)
    items = tuple(
        _item(
            entry,
            feed_url=feed_url,
            base_url=base,
            feed_title=feed_title,
            fallback_url=feed_link or base,
        )
        for entry in entries
    )
    warning = f"parsed despite errors: {_one_line(bozo)}" if bozo is not None else None
    return ParsedFeed(title=feed_title, link=feed_link, items=items, warning=warning)


def _feedparser_extract(body: bytes) -> Extracted:
    # No response_headers: relative links are joined to `base` later, only where used.
    parsed = feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False)
    entries = parsed.entries
    if not entries and not parsed.version:
        head = body[:1024].lower()
        if b"<html" in head or b"<!doctype html" in head:
            raise FeedParseError("not a feed: the server sent an HTML page")
        reason = f" ({_one_line(parsed.bozo_exception)})" if parsed.bozo else ""
        raise FeedParseError(f"not an RSS or Atom feed{reason}")
    if not entries and parsed.bozo:
        raise FeedParseError(f"malformed feed: {_one_line(parsed.bozo_exception)}")
    return parsed.feed, entries, parsed.bozo_exception if parsed.bozo else None


def entry_external_id(entry: Mapping[str, Any], feed_url: str, base_url: str | None = None) -> str:
    """The stable identity of an entry: its guid/id, else its link, else a hash of its
    content. Ids that are not globally unique are prefixed with the feed URL, so "42"
    from two sites are two items. Ids are shown publicly: no URL in one keeps its
    credentials."""
    native = str(entry.get("id") or "").strip()
    base = base_url or feed_url
    if native:
        identity = (
            without_credentials(native)
            if _GLOBAL_ID.match(native)
            else f"{without_credentials(feed_url)}#{native}"
        )
    elif item_link(entry.get("link"), base) is not None:
        # A usable link, joined as ids always were (a space stays a space, where the
        # stored link has %20), so entries stored before links were checked keep theirs.
        identity = without_credentials(urljoin(base, str(entry["link"]).strip()))
    else:
        # Without an `updated` date an entry's `published` stands in for it, as it did
        # when feedparser's results answered `updated` with `published`: the hashes of
        # stored items stay what they were.
        updated = entry["updated"] if "updated" in entry else entry.get("published")
        content = "\x1f".join(
            str(value or "")
            for value in (entry.get("title"), entry.get("summary"), entry.get("published"), updated)
        )
        return "sha256:" + hashlib.sha256(content.encode("utf-8")).hexdigest()
    if len(identity) > EXTERNAL_ID_MAX_CHARS:
        return "sha256:" + hashlib.sha256(identity.encode("utf-8")).hexdigest()
    return identity


def plain_text(value: str | None, limit: int | None = None) -> str:
    """Markup-free text: scripts, styles and tags dropped, entities unescaped, whitespace
    collapsed, cut at a word boundary to at most `limit` characters."""
    if not value:
        return ""
    if limit is not None:
        value = value[: limit * _INPUT_PER_OUTPUT]  # a 5 MB post for a 2,000-character summary
    if "<" in value:
        value = _SCRIPT_OR_STYLE.sub(" ", value)
        value = _COMMENT.sub(" ", value)
        value = _BLOCK_TAG.sub(" ", value)
        value = _TAG.sub("", value)
    text = " ".join(html.unescape(value).split())
    if limit is not None and len(text) > limit:
        cut = text[: limit - 1]
        space = cut.rfind(" ")
        text = (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:.") + "…"
    return text


def _item(
    entry: Mapping[str, Any],
    *,
    feed_url: str,
    base_url: str,
    feed_title: str | None,
    fallback_url: str,
) -> FetchedItem:
    contents = entry.get("content") or ()
    # content:encoded / atom:content is the full text; the summary often a teaser.
    body = next((c.get("value") for c in contents if c.get("value")), None)
    summary = plain_text(body or entry.get("summary"), SUMMARY_MAX_CHARS)
    title = plain_text(entry.get("title"), TITLE_MAX_CHARS)
    data: dict[str, Any] = {
        "feed_title": feed_title,
        "feed_url": feed_url,
        "author": _authors(entry),
    }
    if doi := _doi(entry):
        data["doi"] = doi
    teaser = plain_text(entry.get("summary"), SUMMARY_MAX_CHARS) if body else ""
    if teaser and teaser.rstrip("…") not in summary:
        # The entry's own summary beside its content: the match rule reads both.
        data["teaser"] = teaser
    return FetchedItem(
        source=SourceName.rss,
        external_id=entry_external_id(entry, feed_url, base_url),
        kind=ItemKind.news,
        title=title or _untitled(summary),
        url=item_link(entry.get("link"), base_url) or fallback_url,
        summary=summary,
        published_at=_timestamp(entry),
        data=data,
    )


def _untitled(summary: str) -> str:
    return plain_text(summary, 120) if summary else "(untitled entry)"


def _timestamp(entry: Mapping[str, Any]) -> datetime | None:
    """published, else updated, else created, as aware UTC (both readers give the struct
    in UTC)."""
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        # `in` first: feedparser's results would answer a missing `updated_parsed` with
        # `published_parsed`, a fallback it deprecates.
        if key not in entry:
            continue
        value = entry[key]
        if isinstance(value, time.struct_time):
            try:
                return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
            except (OverflowError, ValueError, OSError):
                continue
    return None


def _authors(entry: Mapping[str, Any]) -> str | None:
    names = [plain_text(a.get("name")) for a in entry.get("authors") or () if a.get("name")]
    names = [n for n in names if n]
    if names:
        return ", ".join(names)
    return plain_text(entry.get("author")) or None


def _doi(entry: Mapping[str, Any]) -> str | None:
    for key in ("dc_identifier", "prism_doi"):
        value = str(entry.get(key) or "").strip()
        if value.lower().startswith("doi:"):
            value = value[4:].strip()
        if value.startswith("10.") and "/" in value:
            return value
    return None


def _one_line(exc: object) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"
