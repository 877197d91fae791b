"""A target's Atom 1.0 feed (RFC 4287): its latest matched items, newest first.

Entry ids are the items' own permanent addresses (the canonical PubMed and
ClinicalTrials.gov record URLs built from PMID and NCT id, a feed entry's own id), so a
feed reader sees the same entry as the same entry whatever this service's address or
database ids become. Text is written through
ElementTree, which escapes it; characters that XML 1.0 forbids are dropped first.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import quote

from alerts.items.schemas import ItemOut
from alerts.sources.ctgov import STUDY_URL
from alerts.sources.pubmed import ARTICLE_URL

ATOM = "http://www.w3.org/2005/Atom"
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

ET.register_namespace("", ATOM)


def _text(value: str) -> str:
    return _NOT_XML.sub("", value)


def _add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", {k: _text(v) for k, v in attrs.items()})
    if text is not None:
        element.text = _text(text)
    return element


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def entry_id(item: ItemOut) -> str:
    """The item's permanent IRI: its record's canonical URL, or a feed entry's own id."""
    if item.source == "pubmed":
        return ARTICLE_URL.format(pmid=quote(item.external_id, safe=""))
    if item.source == "ctgov":
        return STUDY_URL.format(nct_id=quote(item.external_id, safe=""))
    return item.external_id


def target_feed(
    *, slug: str, name: str, description: str, page_url: str, feed_url: str,
    items: Sequence[ItemOut], now: datetime,
) -> bytes:
    feed = ET.Element(f"{{{ATOM}}}feed")
    _add(feed, "id", page_url)
    _add(feed, "title", f"{name} - Target Alerts")
    if description:
        _add(feed, "subtitle", description)
    newest = max((item.first_seen_at for item in items), default=now)
    _add(feed, "updated", _stamp(newest))
    _add(feed, "link", rel="self", type="application/atom+xml", href=feed_url)
    _add(feed, "link", rel="alternate", type="text/html", href=page_url)
    author = _add(feed, "author")
    _add(author, "name", "Target Alerts")
    _add(feed, "generator", "Target Alerts")
    for item in items:
        entry = _add(feed, "entry")
        _add(entry, "id", entry_id(item))
        _add(entry, "title", item.title or item.external_id)
        _add(entry, "link", rel="alternate", href=item.url)
        _add(entry, "updated", _stamp(item.first_seen_at))
        if item.published_at:
            _add(entry, "published", _stamp(item.published_at))
        _add(entry, "category", term=item.kind.value, label=item.kind.value.capitalize())
        summary = getattr(item, "evidence", None) or item.summary
        if summary:
            _add(entry, "summary", summary[:2000])
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
