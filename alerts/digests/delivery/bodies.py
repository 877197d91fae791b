"""The body cache: a digest body is rendered once per distinct content, not per email.

Subscribers of a target mostly get the same digest body; only their links (signed
tokens: manage, unsubscribe, "not relevant") are theirs. So a body is rendered once per
distinct `DigestBody` with slots (alerts.mail.message.slot) in place of those links and
prepared as a `PartTemplate` per part; each email fills in its own links (HTML-escaped in
the HTML part, as the template would have escaped them).

The key is the `DigestBody` itself: the templates read nothing but it and the links
(alerts.digests.message), so everything a body depends on is in its key, field by field,
and a field added to the body is in the key without anyone writing it there (a test holds
both). Bounded, per process.
"""

from __future__ import annotations

from markupsafe import escape

from alerts.digests.message import DigestBody, DigestLinks, render_body
from alerts.mail.message import Part, PartTemplate, slot

CACHE_SIZE = 256

_cache: dict[DigestBody, tuple[PartTemplate, PartTemplate]] = {}


def _slot_links(sections: int) -> DigestLinks:
    return DigestLinks(
        manage=slot("manage"),
        unsubscribe_all="",  # the List-Unsubscribe header's, never in a body
        unsubscribe=tuple(slot(f"u{n}") for n in range(sections)),
        feedback=slot("feedback"),
    )


def _prepared(body: DigestBody) -> tuple[PartTemplate, PartTemplate]:
    prepared = _cache.get(body)
    if prepared is None:
        text, html = render_body(body, _slot_links(len(body.sections)))
        prepared = (PartTemplate(text), PartTemplate(html))
        if len(_cache) >= CACHE_SIZE:
            _cache.clear()
        _cache[body] = prepared
    return prepared


def body_parts(body: DigestBody, links: DigestLinks) -> tuple[Part, Part]:
    """The text and HTML parts of `body` with these links, encoded: what encoding
    `render_body(body, links)` gives."""
    text, html = _prepared(body)
    values = {"manage": links.manage, "feedback": links.feedback} | {
        f"u{n}": url for n, url in enumerate(links.unsubscribe)
    }
    return text.fill(values), html.fill({name: str(escape(url)) for name, url in values.items()})
