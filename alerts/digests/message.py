"""A digest's email: its links, what its text and HTML show, and its headers.

`digest_body` gathers everything the body templates (templates/digest/) show but the
reader's own links into one `DigestBody`; `render_body` renders it with a reader's
`DigestLinks` through THE Jinja environment (autoescaped HTML, StrictUndefined). The
templates read nothing else, so a `DigestBody` is everything a body depends on: the
body cache (alerts.digests.delivery.bodies) keys on it as it is. `digest_headers` are
the message's headers; alerts.mail.message writes the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from email.utils import format_datetime
from typing import NamedTuple
from urllib.parse import quote, urlsplit

from alerts.config import Settings
from alerts.digests.compose import (
    SECTION_ORDER,
    DigestView,
    ItemGroup,
    PhaseMove,
    Section,
    SourceHealth,
    TargetSection,
    subject_for,
)
from alerts.progress.timeline import KINDS
from alerts.subscriptions.tokens import feedback_url, manage_url, unsubscribe_url
from alerts.templating import environment


@dataclass(frozen=True)
class DigestLinks:
    """The reader's own links (signed tokens): all a body shows besides its `DigestBody`."""

    manage: str
    #: Ends every alert of the digest (List-Unsubscribe).
    unsubscribe_all: str
    #: Per section, in the body's order: a link that ends only that section's alert.
    unsubscribe: tuple[str, ...]
    #: The base of the reader's "not relevant" links (each item adds `&event=<id>`).
    feedback: str


def public_host(settings: Settings) -> str:
    return urlsplit(settings.public_base).hostname or "localhost"


def more_url(settings: Settings, slug: str, since: datetime) -> str:
    # `since` is inclusive: keep microseconds when there are any.
    stamp = since.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if since.microsecond else "%Y-%m-%dT%H:%M:%SZ")
    return f"{settings.public_base}/targets/{quote(slug, safe='')}/items?since={stamp}"


def links_for(view: DigestView, settings: Settings) -> DigestLinks:
    per_alert = tuple(unsubscribe_url(settings, [section.alert_id]) for section in view.sections)
    every = per_alert[0] if len(per_alert) == 1 else unsubscribe_url(settings, view.alert_ids)
    return DigestLinks(manage_url(settings, view.subscriber_id), every, per_alert,
                       feedback_url(settings, view.subscriber_id))


class SectionBody(NamedTuple):
    """One alert's part of a digest body, as the templates show it."""

    target_slug: str
    target_name: str
    groups: tuple[ItemGroup, ...]
    phase_moves: tuple[PhaseMove, ...]
    #: Every event this digest delivers to the alert, shown or not: (section, count) in
    #: digest order.
    counts: tuple[tuple[Section, int], ...]
    #: Events recorded as delivered but left out by `max_items`.
    hidden: int
    #: The page holding them (the "N more" link), None when none are hidden.
    more: str | None
    sources: tuple[SourceHealth, ...]

    @property
    def total(self) -> int:
        return sum(n for _section, n in self.counts)

    @property
    def peak(self) -> int:
        return max((n for _section, n in self.counts), default=0)

    def count_of(self, section: str) -> int:
        return next((n for shown, n in self.counts if shown == section), 0)


class DigestBody(NamedTuple):
    """Everything a digest's text and HTML show except the reader's links: with
    `DigestLinks`, the templates' only input, and so the key of the body cache.

    A tuple (as SectionBody), not a dataclass: one is built and hashed per email, and a
    tuple's construction, hash and equality run in C (a frozen dataclass's cost about
    as much as rendering the rest of the message), field by field all the same."""

    subject: str
    frequency: str
    #: The slot's day where the reader lives (the body names the day, not the hour).
    day: date
    public_url: str
    sections: tuple[SectionBody, ...]
    #: The "at a glance" rows of each section: (section, label, colour).
    glance: tuple[tuple[str, str, str], ...] = KINDS


def _counts(counts: Mapping[Section, int]) -> tuple[tuple[Section, int], ...]:
    return tuple((section, counts[section]) for section in SECTION_ORDER if section in counts)


def _section_body(section: TargetSection, settings: Settings) -> SectionBody:
    more = (more_url(settings, section.target_slug, section.since)
            if section.hidden and section.since is not None else None)
    return SectionBody(section.target_slug, section.target_name, section.groups,
                       section.phase_moves, _counts(section.counts), section.hidden, more,
                       section.sources)


def digest_body(view: DigestView, settings: Settings) -> DigestBody:
    return DigestBody(
        subject=subject_for(view),
        frequency=view.frequency,
        day=view.local_slot.date(),
        public_url=settings.public_base,
        sections=tuple(_section_body(section, settings) for section in view.sections),
    )


def render_body(body: DigestBody, links: DigestLinks) -> tuple[str, str]:
    """(text, HTML) of a digest body with these links."""
    env = environment()
    context = {"body": body, "links": links}
    return (env.get_template("digest/digest.txt").render(context),
            env.get_template("digest/digest.html").render(context))


def digest_headers(
    view: DigestView, settings: Settings, links: DigestLinks, *, subject: str, date: datetime
) -> list[tuple[str, str]]:
    return [
        ("From", settings.mail_from),
        ("To", view.email),
        ("Subject", subject),
        ("Date", format_datetime(date, usegmt=True)),
        ("Message-ID", view.message_id),
        # RFC 8058 one-click: one HTTPS link ending every alert this digest covers, on
        # one line (a folded List-Unsubscribe breaks DKIM in some relays).
        ("List-Unsubscribe", f"<{links.unsubscribe_all}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ]
