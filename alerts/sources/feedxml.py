"""Our own reader for well-formed UTF-8 RSS 2.0 and Atom 1.0 feeds: the fast feed path.

Most feeds are such bodies using a handful of elements, and for those feedparser's
general machinery is most of the cost of a poll. `extract` reads them with the standard
library's XML parser and stores, for the keys `feedparse` reads, what feedparser's
public `parse` stores: the same whitespace stripping, the same repairs (UTF-8 read as
Latin-1, C1 controls meant as cp1252), the first non-empty title, the guid as link, the
same author and e-mail split, and the same instant for the dates it reads (RFC 822 and
W3C date-times, the two formats RSS 2.0 and Atom 1.0 prescribe).

It returns None (declines) for anything it does not reproduce exactly: another format or
version (RSS 0.9x, RSS 1.0/RDF, Atom 0.3, ...), a DOCTYPE, an encoding other than UTF-8,
xml:base, markup or unknown elements where values are read, a date in any other format,
duplicates whose outcome depends on feedparser's parser state. `feedparse` then hands the
body to `feedparser.parse`: an item must get the same id, title, link, summary and date
whichever path read it, or a feed would yield duplicates when it moves from one to the
other. tests/test_sources/test_feedparse_fast.py holds both paths to that, and
test_feedxml.py states what this reader gives for each element it claims.

Nothing here expands entities: a body with a DOCTYPE is declined before it is parsed, and
without one the XML parser knows only the five predefined entities.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from xml.etree import ElementTree

#: (feed-level values, entries, the error a body was parsed despite), keyed as
#: feedparser's results are: what `feedparse` reads, whichever path produced it.
Extracted = tuple[Mapping[str, Any], Sequence[Mapping[str, Any]], BaseException | None]
Entry = dict[str, Any]


class Unsupported(Exception):
    """The body holds something this reader does not reproduce exactly."""


_ATOM = "{http://www.w3.org/2005/Atom}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_CONTENT_ENCODED = "{http://purl.org/rss/1.0/modules/content/}encoded"
_XML_DECLARATION = re.compile(rb"^(?:\xef\xbb\xbf)?<\?xml\b[^>]*?\bencoding\s*=\s*[\"']([^\"']*)")
_ANY_DOCTYPE = re.compile(rb"<!doctype", re.IGNORECASE)
_UTF8_NAMES = frozenset({"utf-8", "utf8"})
#: Children of an RSS item / Atom entry whose value we do not read; they are accepted
#: only without child elements.
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
#: Text kept as it is (not XHTML, not base64).
_TEXT_TYPES = frozenset({"text/plain", "text/html"})
#: Link types that make an alternate link the entry's link.
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
#: The short names Atom allows in `type`.
_SHORT_TYPES = {
    "text": "text/plain",
    "plain": "text/plain",
    "html": "text/html",
    "xhtml": "application/xhtml+xml",
}
#: C1 controls (0x80-0x9F) that stand for the cp1252 character of the same byte.
_CP1252 = {
    code: char
    for code in range(0x80, 0xA0)
    for char in [bytes([code]).decode("cp1252", "ignore")]
    if char
}
#: Extra slashes after the scheme ("http:///x") are dropped from links and ids.
_SCHEME_SLASHES = re.compile(r"^([A-Za-z][A-Za-z0-9+,\-.]*://)/*")
_ENTITY_NAME = re.compile("&([A-Za-z0-9_]+);")
#: The e-mail address in an author string "desk@example.org (News Desk)".
_EMAIL = re.compile(
    r"(([a-zA-Z0-9_\-.+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))"
    r"([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"
)


def extract(body: bytes) -> Extracted | None:
    """The feed and entries of a well-formed UTF-8 RSS 2.0 or Atom 1.0 body, or None when
    the body must go to feedparser."""
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
    except (ElementTree.ParseError, Unsupported):
        return None
    return None


# --- RSS 2.0 ----------------------------------------------------------------------------


def _rss(root: ElementTree.Element) -> Extracted:
    _check_attributes(root)
    if root.get("version") != "2.0" or len(root) != 1 or root[0].tag != "channel":
        raise Unsupported
    channel = root[0]
    _check_attributes(channel)
    feed: Entry = {}
    entries: list[Entry] = []
    titles = 0
    for child in channel:
        tag = child.tag
        _check_attributes(child)
        if tag == "item":
            entries.append(_rss_entry(child))
        elif entries and tag in ("title", "link", _ATOM + "link"):
            raise Unsupported  # feedparser's title state after items: not worth reproducing
        elif tag == "title":
            titles += 1
            feed["title"] = _text(child)
        elif tag in ("link", _ATOM + "link"):
            _link(feed, child, in_entry=False)
        elif tag in _RSS_CHANNEL_BOXES:
            for grandchild in child:
                if grandchild.tag not in _RSS_BOX_CHILDREN or len(grandchild):
                    raise Unsupported
        elif tag not in _RSS_CHANNEL_IGNORED or len(child):
            raise Unsupported
    if titles > 1:
        raise Unsupported
    return feed, entries, None


def _rss_entry(item: ElementTree.Element) -> Entry:
    entry: Entry = {}
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
                raise Unsupported
            _guid(entry, child, is_link=(permalink or ["true"])[0] == "true")
        elif tag == "description":
            if "summary" in entry and not has_content:
                raise Unsupported  # feedparser would take it for content
            entry["summary"] = _text(child)
        elif tag == _CONTENT_ENCODED:
            has_content = True
            value = _text(child)
            entry.setdefault("content", []).append({"type": "text/html", "value": value})
            entry.setdefault("summary", value)
        elif tag == "pubDate":
            _date(entry, child, "published")
        elif tag == _DC + "date":
            _date(entry, child, "updated")
        elif tag in ("author", _DC + "creator"):
            _text_author(entry, _text(child))
        elif tag == _DC + "identifier":
            entry["dc_identifier"] = _text(child)
        elif tag not in _RSS_IGNORED or len(child):
            raise Unsupported
    return entry


# --- Atom 1.0 ---------------------------------------------------------------------------


def _atom(root: ElementTree.Element) -> Extracted:
    _check_attributes(root)
    feed: Entry = {}
    entries: list[Entry] = []
    titles = 0
    for child in root:
        tag = child.tag
        _check_attributes(child)
        if tag == _ATOM + "entry":
            entries.append(_atom_entry(child))
        elif entries and tag in (_ATOM + "title", _ATOM + "link", _ATOM + "id"):
            raise Unsupported
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
                    raise Unsupported
        elif tag not in _ATOM_FEED_IGNORED or len(child):
            raise Unsupported
    if titles > 1:
        raise Unsupported
    return feed, entries, None


def _atom_entry(element: ElementTree.Element) -> Entry:
    entry: Entry = {}
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
                raise Unsupported  # feedparser would take it for content
            _check_text_type(child)
            entry["summary"] = _text(child)
        elif tag == _ATOM + "content":
            if set(child.attrib) - {"type"}:
                raise Unsupported  # src=, mode=
            content_type = _check_text_type(child)
            has_content = True
            value = _text(child)
            entry.setdefault("content", []).append({"type": content_type, "value": value})
            entry.setdefault("summary", value)
        elif tag == _ATOM + "published":
            _date(entry, child, "published")
        elif tag == _ATOM + "updated":
            _date(entry, child, "updated")
        elif tag == _ATOM + "author":
            _atom_author(entry, child)
        elif tag not in _ATOM_IGNORED or len(child):
            raise Unsupported
    return entry


# --- values -----------------------------------------------------------------------------


def _check_attributes(element: ElementTree.Element) -> None:
    """xml:base (or a bare `base`, which feedparser honours too) changes how feedparser
    resolves ids and links: not reproduced."""
    for name in element.attrib:
        if name.rpartition("}")[2].lower() == "base":
            raise Unsupported


def _content_type(value: str) -> str:
    value = value.lower()
    return _SHORT_TYPES.get(value, value)


def _check_text_type(element: ElementTree.Element) -> str:
    """The Atom text type, when the text is kept as it is (not XHTML, not base64)."""
    content_type = _content_type(element.get("type", "text/plain"))
    if content_type not in _TEXT_TYPES:
        raise Unsupported
    return content_type


def _raw_text(element: ElementTree.Element) -> str:
    """The element's text, stripped; markup inside (which feedparser would serialise) is
    not reproduced."""
    if len(element):
        raise Unsupported
    return (element.text or "").strip()


def _repair(value: str) -> str:
    """Text as feedparser finally stores it: UTF-8 read as Latin-1 is re-decoded, and C1
    controls become the cp1252 characters they were meant as."""
    if value.isascii():
        return value
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        value = value.encode("iso-8859-1").decode("utf-8")
    return value.translate(_CP1252)


def _text(element: ElementTree.Element) -> str:
    return _repair(_raw_text(element))


def _uri(value: str) -> str:
    return _SCHEME_SLASHES.sub(r"\1", value)


def _title(context: Entry, element: ElementTree.Element, seen: bool) -> bool:
    """The first non-empty title wins (later ones at the same depth are ignored); returns
    whether one was seen."""
    value = _text(element)
    if not seen:
        context["title"] = value
    return seen or bool(value)


def _link(context: Entry, element: ElementTree.Element, *, in_entry: bool) -> None:
    attributes = {name.lower(): value for name, value in element.attrib.items()}
    if len(attributes) != len(element.attrib) or "url" in attributes or "uri" in attributes:
        raise Unsupported
    if "href" not in attributes:  # RSS: the link is the text
        value = _repair(_uri(_raw_text(element)))
        if in_entry:
            value = value.replace("&amp;", "&")
        context["link"] = _ENTITY_NAME.sub(r"&\g<1>", value)
        return
    if len(element) or (element.text or "").strip() or not attributes["href"]:
        raise Unsupported
    rel = attributes.get("rel", "alternate").lower()
    default_type = "application/atom+xml" if rel == "self" else "text/html"
    content_type = _content_type(attributes.get("type", default_type))
    if rel == "alternate" and content_type in _HTML_TYPES:
        context["link"] = _uri(attributes["href"])


def _guid(context: Entry, element: ElementTree.Element, *, is_link: bool) -> None:
    value = _raw_text(element)
    if is_link:
        value = _uri(value)
    value = _repair(value)
    context["id"] = value
    if is_link:
        context.setdefault("link", value)


def _date(entry: Entry, element: ElementTree.Element, key: str) -> None:
    value = _text(element)
    entry[key] = value
    entry[f"{key}_parsed"] = parse_date(value)


# --- authors ----------------------------------------------------------------------------
# feedparser keeps, per entry, the list `authors` (one dict per author element) and the
# string `author`; the rules below are the ones its results follow, quirks included: an
# Atom author whose first child is not <name> starts from the previous author's string.


def _split_author(value: str) -> dict[str, str]:
    """"desk@example.org (News Desk)" -> {"name": "News Desk", "email": "desk@example.org"}."""
    detail: dict[str, str] = {}
    name, email = value, None
    match = _EMAIL.search(value)
    if match:
        email = match.group(0)
        name = name.replace(email, "").replace("()", "").replace("<>", "")
        name = name.replace("&lt;&gt;", "").strip()
        if name and name[0] == "(":
            name = name[1:]
        if name and name[-1] == ")":
            name = name[:-1]
        name = name.strip()
    if name:
        detail["name"] = name
    if email:
        detail["email"] = email
    return detail


def _author_string(detail: Mapping[str, str]) -> str | None:
    name, email = detail.get("name"), detail.get("email")
    if name and email:
        return f"{name} ({email})"
    return name or email or None


def _text_author(entry: Entry, value: str) -> None:
    """RSS <author> / <dc:creator>, and an Atom <author> without children."""
    detail = _split_author(value) if value else {}
    entry.setdefault("authors", []).append(detail)
    entry["author"] = value


def _atom_author(entry: Entry, element: ElementTree.Element) -> None:
    previous = entry.get("author")
    detail: dict[str, str] = {}
    own_text = [element.text or ""]
    for child in element:
        key = _ATOM_PERSON_CHILDREN.get(child.tag)
        if key is None or child.attrib or len(child):
            raise Unsupported
        value = (child.text or "").strip()
        if key == "href" and value:
            value = _repair(_uri(value))
        if not detail and previous:
            detail.update(_split_author(previous))
        detail[key] = value
    text = _repair("".join(own_text).strip())
    if not detail:
        _text_author(entry, text)
        return
    entry.setdefault("authors", []).append(detail)
    entry["author"] = _author_string(detail) or text


# --- dates ------------------------------------------------------------------------------
# Each date is read as feedparser's date handlers read it (W3C first, then RFC 822), for
# the shapes below only; any other non-empty date declines the body, since feedparser
# tries seven more formats on it.

_W3C = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt](\d{2}):(\d{2})(?::(\d{2}(?:\.\d+)?))?([Zz]|[+-]\d{2}:\d{2})?)?"
)
_RFC822_ZONES = {
    "ut": 0, "gmt": 0, "z": 0,
    "adt": -3, "ast": -4, "at": -4,
    "edt": -4, "est": -5, "et": -5,
    "cdt": -5, "cst": -6, "ct": -6,
    "mdt": -6, "mst": -7, "mt": -7,
    "pdt": -7, "pst": -8, "pt": -8,
    "a": -1, "n": 1, "m": -12, "y": 12,
    "met": 1, "mest": 2,
}  # fmt: skip
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_RFC822 = re.compile(
    r"(?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s+)?"
    r"(\d{1,2})\s+([a-z]{3})[a-z]*\s+(\d{4}|\d{2})\s+"
    r"(\d{1,2}):(\d{2})(?::(\d{2}))?\s+"
    r"([+-]\d{4}|[+-]\d{2}:\d{2}|[a-z]{1,4})",
    re.IGNORECASE,
)


def parse_date(value: str) -> time.struct_time | None:
    """An RFC 822 or W3C date-time as a UTC struct_time (None for an empty value).
    Raises Unsupported for any other text."""
    if not value:
        return None
    if match := _W3C.fullmatch(value):
        year, month, day, hour, minute, second, zone = match.groups()
        offset = 0 if zone in (None, "Z", "z") else _offset(zone[0], zone[1:3], zone[4:6])
        return _utc(
            int(year), int(month), int(day),
            int(hour or 0), int(minute or 0), int(float(second or 0)), offset,
        )  # fmt: skip
    if match := _RFC822.fullmatch(value):
        day, month_name, year, hour, minute, second, zone = match.groups()
        month = _MONTHS.get(month_name.lower())
        if month is None:
            raise Unsupported
        full_year = int(year)
        if len(year) == 2:  # 90-99 are the 1990s, 00-89 this century
            full_year += 1900 if full_year >= 90 else 2000
        if zone[0] in "+-":
            offset = _offset(zone[0], zone[1:3], zone[-2:])
        elif zone.lower() in _RFC822_ZONES:
            offset = _RFC822_ZONES[zone.lower()] * 60
        else:
            raise Unsupported
        return _utc(
            full_year, month, int(day), int(hour), int(minute), int(second or 0), offset
        )
    raise Unsupported


def _offset(sign: str, hours: str, minutes: str) -> int:
    total = int(hours) * 60 + int(minutes)
    return -total if sign == "-" else total


def _utc(
    year: int, month: int, day: int, hour: int, minute: int, second: int, offset: int
) -> time.struct_time:
    """The instant as a UTC struct_time; `offset` is the local time's, in minutes."""
    try:
        return (
            datetime(year, month, day, hour, minute, second) - timedelta(minutes=offset)
        ).utctimetuple()
    except (ValueError, OverflowError):
        raise Unsupported from None
