"""Feed bytes -> FetchedItems: the CPU-bound half of the RSS/Atom adapter.

It lives apart from `rss.py` because it runs in worker processes: a parse of a large
feed costs milliseconds to seconds of pure Python, which would stall the event loop that
is fetching the other feeds. Everything here is a plain function of its arguments, and
it returns plain picklable data (`ParsedFeed` of `FetchedItem`s), never feedparser
objects.

feedparser is always handed bytes (it never fetches a URL itself), with its HTML
sanitiser and relative-URI rewriting off: we reduce titles and summaries to plain text
here and the templates escape on output, so sanitising would only halve the parse rate.

Most feeds are well-formed RSS 2.0 or Atom 1.0 using a handful of elements, and for
those feedparser's general machinery is most of the cost of a poll. `_fast_extract`
reads them with the standard library's XML parser and reproduces, element by element,
what feedparser stores for the keys we read (the same whitespace stripping, URI
joining, cp1252 and double-encoding repairs, first-non-empty title, guid-as-link and
author rules, and feedparser's own date parser). Whenever a body holds anything it does
not reproduce exactly (another format or version, a DOCTYPE, an encoding other than
UTF-8, xml:base, markup or unknown elements where values are read, duplicates whose
outcome depends on feedparser's parser state), it declines and feedparser parses the
body: an item must get the same id, title, link, summary and date whichever path read
it, or a feed would yield duplicates when it moves from one path to the other.
"""

from __future__ import annotations

import calendar
import contextlib
import hashlib
import html
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin
from xml.etree import ElementTree

import feedparser
from feedparser.datetimes import _parse_date
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin
from feedparser.util import FeedParserDict

from alerts.sources.base import FetchedItem, ItemKind, SourceName
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
    extracted = _fast_extract(body) if fast else None
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


#: (feed-level values, entries, the error a body was parsed despite): what `_item` reads.
_Extracted = tuple[Mapping[str, Any], Sequence[Mapping[str, Any]], BaseException | None]


def _feedparser_extract(body: bytes) -> _Extracted:
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
        content = "\x1f".join(
            str(entry.get(key) or "") for key in ("title", "summary", "published", "updated")
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
    """published, else updated, as aware UTC (feedparser normalises the struct to UTC)."""
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
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


# --- the fast path: well-formed RSS 2.0 and Atom 1.0 ------------------------------------


class _Decline(Exception):
    """The body holds something the fast path does not reproduce exactly."""


_ATOM = "{http://www.w3.org/2005/Atom}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_CONTENT_ENCODED = "{http://purl.org/rss/1.0/modules/content/}encoded"
_XML_DECLARATION = re.compile(rb"^(?:\xef\xbb\xbf)?<\?xml\b[^>]*?\bencoding\s*=\s*[\"']([^\"']*)")
_ANY_DOCTYPE = re.compile(rb"<!doctype", re.IGNORECASE)
_UTF8_NAMES = frozenset({"utf-8", "utf8"})
#: Children of an RSS item / Atom entry whose value feedparser keeps but we do not read;
#: they are accepted only without child elements.
_RSS_IGNORED = frozenset(
    {"category", "comments", "enclosure", _DC + "source", _DC + "subject", _DC + "rights"}
)
_ATOM_IGNORED = frozenset({_ATOM + "category", _ATOM + "rights"})
_RSS_CHANNEL_IGNORED = frozenset(
    {
        "description",
        "language",
        "copyright",
        "managingEditor",
        "webMaster",
        "pubDate",
        "lastBuildDate",
        "category",
        "generator",
        "docs",
        "cloud",
        "ttl",
        "rating",
        "skipHours",
        "skipDays",
    }
)
_RSS_CHANNEL_BOXES = frozenset({"image", "textInput"})
_RSS_BOX_CHILDREN = frozenset({"title", "url", "link", "width", "height", "description", "name"})
_ATOM_FEED_IGNORED = frozenset(
    _ATOM + name
    for name in ("updated", "subtitle", "generator", "icon", "logo", "rights", "category")
)
_ATOM_PERSON_CHILDREN = {_ATOM + "name": "name", _ATOM + "email": "email", _ATOM + "uri": "href"}
_TEXT_TYPES = frozenset({"text/plain", "text/html"})
_map_content_type = _FeedParserMixin.map_content_type


class _Context:
    """Lends feedparser's author bookkeeping (`_save_author`, `_sync_author_detail`) the
    entry or feed being built, so author and authors come out exactly as feedparser's."""

    _save_author = _FeedParserMixin._save_author
    _sync_author_detail = _FeedParserMixin._sync_author_detail

    def __init__(self, context: FeedParserDict) -> None:
        self.context = context

    def _get_context(self) -> FeedParserDict:
        return self.context


def _fast_extract(body: bytes) -> _Extracted | None:
    """What feedparser would extract from a well-formed RSS 2.0 or Atom 1.0 body, or None
    when the body must go to feedparser."""
    declared = _XML_DECLARATION.match(body)
    if declared is not None and declared.group(1).decode("ascii", "replace").lower() not in (
        _UTF8_NAMES
    ):
        return None
    # UTF-16/32 (BOM or not) and DOCTYPEs of any kind go to feedparser.
    if body[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in body[:4] or _ANY_DOCTYPE.search(body):
        return None
    try:
        root = ElementTree.fromstring(body)
        if root.tag == "rss":
            return _rss(root)
        if root.tag == _ATOM + "feed":
            return _atom(root)
    except (ElementTree.ParseError, _Decline):
        return None
    return None


def _rss(root: ElementTree.Element) -> _Extracted:
    _check_attributes(root)
    if root.get("version") != "2.0" or len(root) != 1 or root[0].tag != "channel":
        raise _Decline
    channel = root[0]
    _check_attributes(channel)
    feed = FeedParserDict()
    entries: list[FeedParserDict] = []
    titles = 0
    for child in channel:
        tag = child.tag
        _check_attributes(child)
        if tag == "item":
            entries.append(_rss_entry(child))
        elif entries and tag in ("title", "link", _ATOM + "link"):
            raise _Decline  # feedparser's title state after items: not worth reproducing
        elif tag == "title":
            titles += 1
            feed["title"] = _text(child)
        elif tag in ("link", _ATOM + "link"):
            _link(feed, child, in_entry=False)
        elif tag in _RSS_CHANNEL_BOXES:
            for grandchild in child:
                if grandchild.tag not in _RSS_BOX_CHILDREN or len(grandchild):
                    raise _Decline
        elif tag not in _RSS_CHANNEL_IGNORED or len(child):
            raise _Decline
    if titles > 1:
        raise _Decline
    return feed, entries, None


def _rss_entry(item: ElementTree.Element) -> FeedParserDict:
    entry = FeedParserDict()
    title_seen = False
    has_content = False
    for child in item:
        tag = child.tag
        _check_attributes(child)
        if tag in ("title", _DC + "title"):
            title_seen = _title(entry, child, title_seen)
        elif tag in ("link", _ATOM + "link"):
            _link(entry, child, in_entry=True)
        elif tag == "guid":
            permalink = [v for k, v in child.attrib.items() if k.lower() == "ispermalink"]
            if len(permalink) > 1:
                raise _Decline
            _guid(entry, child, is_link=(permalink or ["true"])[0] == "true")
        elif tag == "description":
            if "summary" in entry and not has_content:
                raise _Decline  # feedparser would take it for content
            entry["summary"] = _text(child)
        elif tag == _CONTENT_ENCODED:
            has_content = True
            value = _text(child)
            entry.setdefault("content", []).append(FeedParserDict(type="text/html", value=value))
            entry.setdefault("summary", value)
        elif tag == "pubDate":
            _date(entry, child, "published")
        elif tag == _DC + "date":
            _date(entry, child, "updated")
        elif tag in ("author", _DC + "creator"):
            _text_author(entry, child)
        elif tag == _DC + "identifier":
            entry["dc_identifier"] = _text(child)
        elif tag not in _RSS_IGNORED or len(child):
            raise _Decline
    return entry


def _atom(root: ElementTree.Element) -> _Extracted:
    _check_attributes(root)
    feed = FeedParserDict()
    entries: list[FeedParserDict] = []
    titles = 0
    for child in root:
        tag = child.tag
        _check_attributes(child)
        if tag == _ATOM + "entry":
            entries.append(_atom_entry(child))
        elif entries and tag in (_ATOM + "title", _ATOM + "link", _ATOM + "id"):
            raise _Decline
        elif tag == _ATOM + "title":
            titles += 1
            _check_text_type(child)
            feed["title"] = _text(child)
        elif tag == _ATOM + "link":
            _link(feed, child, in_entry=False)
        elif tag == _ATOM + "id":
            _guid(feed, child, is_link=True)
        elif tag in (_ATOM + "author", _ATOM + "contributor"):
            for grandchild in child:
                if grandchild.tag not in _ATOM_PERSON_CHILDREN or len(grandchild):
                    raise _Decline
        elif tag not in _ATOM_FEED_IGNORED or len(child):
            raise _Decline
    if titles > 1:
        raise _Decline
    return feed, entries, None


def _atom_entry(element: ElementTree.Element) -> FeedParserDict:
    entry = FeedParserDict()
    title_seen = False
    has_content = False
    for child in element:
        tag = child.tag
        _check_attributes(child)
        if tag == _ATOM + "title":
            _check_text_type(child)
            title_seen = _title(entry, child, title_seen)
        elif tag == _ATOM + "link":
            _link(entry, child, in_entry=True)
        elif tag == _ATOM + "id":
            _guid(entry, child, is_link=True)
        elif tag == _ATOM + "summary":
            if "summary" in entry and not has_content:
                raise _Decline  # feedparser would take it for content
            _check_text_type(child)
            entry["summary"] = _text(child)
        elif tag == _ATOM + "content":
            if set(child.attrib) - {"type"}:
                raise _Decline  # src=, mode=
            content_type = _check_text_type(child)
            has_content = True
            value = _text(child)
            entry.setdefault("content", []).append(FeedParserDict(type=content_type, value=value))
            entry.setdefault("summary", value)
        elif tag == _ATOM + "published":
            _date(entry, child, "published")
        elif tag == _ATOM + "updated":
            _date(entry, child, "updated")
        elif tag == _ATOM + "author":
            _atom_author(entry, child)
        elif tag not in _ATOM_IGNORED or len(child):
            raise _Decline
    return entry


def _check_attributes(element: ElementTree.Element) -> None:
    """xml:base (or a bare `base`, which feedparser honours too) changes how feedparser
    resolves ids and links: not reproduced."""
    for name in element.attrib:
        if name.rpartition("}")[2].lower() == "base":
            raise _Decline


def _check_text_type(element: ElementTree.Element) -> str:
    """The Atom text type, when feedparser keeps the text as it is (not XHTML, not
    base64); raises _Decline otherwise."""
    content_type = _map_content_type(element.get("type", "text/plain"))
    if content_type not in _TEXT_TYPES:
        raise _Decline
    return content_type


def _raw_text(element: ElementTree.Element) -> str:
    """The element's text as feedparser's `pop` has it before its repairs: markup inside
    (which feedparser would serialise) is not reproduced."""
    if len(element):
        raise _Decline
    return (element.text or "").strip()


def _repair(value: str) -> str:
    """feedparser's last steps for text: UTF-8 read as Latin-1 is re-decoded, and C1
    controls become the cp1252 characters they were meant as."""
    if value.isascii():
        return value
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        value = value.encode("iso-8859-1").decode("utf-8")
    return value.translate(_cp1252)


def _text(element: ElementTree.Element) -> str:
    return _repair(_raw_text(element))


def _title(context: FeedParserDict, element: ElementTree.Element, seen: bool) -> bool:
    """The first non-empty title wins (feedparser ignores later ones at the same depth);
    returns whether one was seen."""
    value = _text(element)
    if not seen:
        context["title"] = value
    return seen or bool(value)


def _link(context: FeedParserDict, element: ElementTree.Element, *, in_entry: bool) -> None:
    attributes = {name.lower(): value for name, value in element.attrib.items()}
    if len(attributes) != len(element.attrib) or "url" in attributes or "uri" in attributes:
        raise _Decline
    if "href" not in attributes:  # RSS: the link is the text
        value = _raw_text(element)
        if value:
            value = _urljoin("", value)
        value = _repair(value)
        if in_entry:
            value = value.replace("&amp;", "&")
        context["link"] = re.sub("&([A-Za-z0-9_]+);", r"&\g<1>", value)
        return
    if len(element) or (element.text or "").strip() or not attributes["href"]:
        raise _Decline
    rel = attributes.get("rel", "alternate").lower()
    default_type = "application/atom+xml" if rel == "self" else "text/html"
    content_type = _map_content_type(attributes.get("type", default_type))
    if rel == "alternate" and content_type in _FeedParserMixin.html_types:
        context["link"] = _urljoin("", attributes["href"])


def _guid(context: FeedParserDict, element: ElementTree.Element, *, is_link: bool) -> None:
    value = _raw_text(element)
    if value and is_link:
        value = _urljoin("", value)
    value = _repair(value)
    context["id"] = value
    context.setdefault("guidislink", is_link and "link" not in context)
    if is_link:
        context.setdefault("link", value)


def _date(entry: FeedParserDict, element: ElementTree.Element, key: str) -> None:
    value = _text(element)
    entry[key] = value
    entry[f"{key}_parsed"] = _parse_date(value)


def _text_author(entry: FeedParserDict, element: ElementTree.Element) -> None:
    """RSS <author> / <dc:creator>: "mail@example.org (Name)" split as feedparser does."""
    entry.setdefault("authors", []).append(FeedParserDict())
    entry["author"] = _text(element)
    _Context(entry)._sync_author_detail()


def _atom_author(entry: FeedParserDict, element: ElementTree.Element) -> None:
    entry.setdefault("authors", []).append(FeedParserDict())
    context = _Context(entry)
    own_text = [element.text or ""]
    for child in element:
        key = _ATOM_PERSON_CHILDREN.get(child.tag)
        if key is None or child.attrib or len(child):
            raise _Decline
        value = (child.text or "").strip()
        if key == "href" and value:
            value = _repair(_urljoin("", value))
        context._save_author(key, value)
        own_text.append(child.tail or "")
    entry["author"] = _repair("".join(own_text).strip())
    context._sync_author_detail()
