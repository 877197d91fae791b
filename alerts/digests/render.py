"""From the database rows of a digest to the bytes of its email.

`load_views` turns a chunk of digests into plain views (compose.DigestView);
`render_digest` renders a view through THE Jinja environment (autoescaped HTML,
StrictUndefined) from templates/digest/ and assembles one multipart/alternative message.

`render_batch` does both for a chunk of digest ids; a large run calls it in worker
processes (alerts.digests.workers), so the sending process neither loads nor pickles
views. Subscribers of one target mostly get the same body, so a process renders each
distinct body once (`_body_cache`); what is personal (the links with tokens) is filled
in per email.

The message is assembled here rather than through email.message.EmailMessage: for the
same structure as alerts.mail.base.build_message (text/plain first, HTML last, UTF-8,
headers never folded below 998 characters) the stdlib's generic header objects and
pure-Python encoder cost ~4.5 ms per 20 KB message, this ~0.05 ms: ASCII parts go 7bit
as they are, others quoted-printable through binascii (C). Non-ASCII header values
still go through the stdlib's header machinery (the POLICY of alerts.mail.base); tests
check both parse the same.
"""

from __future__ import annotations

import binascii
import logging
import random
import re
import secrets
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

from markupsafe import escape
from sqlalchemy.orm import Session

from alerts.config import Settings
from alerts.digests import repository as repo
from alerts.digests.compose import (
    SOURCE_LABELS,
    DigestView,
    ItemGroup,
    ItemView,
    PhaseMove,
    Section,
    SourceHealth,
    TargetSection,
    byline,
    canonical_url,
    describe_changes,
    evidence_view,
    group_items,
    item_source_label,
    one_line,
    order_key,
    phase_moves,
    subject_for,
)
from alerts.mail.base import POLICY, envelope_sender
from alerts.progress.timeline import KINDS
from alerts.subscriptions.tokens import feedback_url, manage_url, unsubscribe_url
from alerts.templating import environment
from db.statuses import AlertStatus

log = logging.getLogger(__name__)

#: Source health lists PubMed, ClinicalTrials.gov, then feeds.
SOURCE_ORDER = {source: n for n, source in enumerate(SOURCE_LABELS)}


@dataclass(frozen=True)
class RenderedDigest:
    digest_id: int
    subscriber_id: int
    sender: str
    recipient: str
    subject: str
    data: bytes


@dataclass(frozen=True)
class RenderFailure:
    """A digest that could not be rendered (recorded as failed; the others go on)."""

    digest_id: int
    error: str


@dataclass
class RenderedBatch:
    messages: list[RenderedDigest | RenderFailure] = field(default_factory=list)
    #: Digests with nothing left to send: every alert was unsubscribed after planning.
    nothing_left: list[int] = field(default_factory=list)


# --- what a digest shows ----------------------------------------------------------------


def item_view(event: repo.EventRow) -> ItemView:
    return ItemView(
        event_id=event.event_id,
        section=event.section,
        title=one_line(event.title) or event.external_id,
        source_label=item_source_label(event.source, event.feed_title),
        # The date shown is the one the section is ordered by.
        date=event.sort_at,
        url=canonical_url(event.source, event.external_id, event.url),
        matched_terms=tuple(event.matched_terms),
        changes=describe_changes(event.changes) if event.event_kind == "updated" else (),
        byline=byline(
            event.source, authors=event.authors, journal=event.journal,
            pub_date=event.pub_date, published_at=event.published_at, phases=event.phases,
            overall_status=event.overall_status, lead_sponsor=event.lead_sponsor,
        ),
        evidence=evidence_view(event.source, event.evidence_field, event.evidence,
                               event.highlights),
    )


def _source_health(row: repo.SourceRow, threshold: int) -> SourceHealth:
    return SourceHealth(
        source=row.source,
        label=SOURCE_LABELS.get(row.source, row.source),
        last_success_at=row.last_success_at,
        consecutive_failures=row.consecutive_failures,
        failing=row.consecutive_failures >= threshold,
        last_error=one_line(row.last_error)[:200] if row.last_error else None,
        warnings=tuple(row.warnings),
    )


def build_views(data: repo.DigestData, settings: Settings) -> tuple[list[DigestView], list[int]]:
    """(views in id order, ids of digests with nothing left to send: every alert
    unsubscribed since planning)."""
    alerts_of: dict[int, list[repo.DigestAlertRow]] = defaultdict(list)
    for row in data.alerts:
        if row.alert_status != AlertStatus.unsubscribed:
            alerts_of[row.digest_id].append(row)
    counts: dict[tuple[int, int], dict[Section, int]] = defaultdict(lambda: defaultdict(int))
    hidden: dict[tuple[int, int], int] = defaultdict(int)
    oldest: dict[tuple[int, int], datetime] = {}
    for count in data.counts:
        pair = (count.digest_id, count.alert_id)
        counts[pair][count.section] += count.count
        if not count.shown:
            hidden[pair] += count.count
        if pair not in oldest or count.oldest < oldest[pair]:
            oldest[pair] = count.oldest
    health: dict[int, list[SourceHealth]] = defaultdict(list)
    for source_row in sorted(data.sources, key=lambda r: SOURCE_ORDER.get(r.source, 99)):
        health[source_row.target_id].append(
            _source_health(source_row, settings.failure_alert_threshold)
        )
    sources = {target_id: tuple(rows) for target_id, rows in health.items()}
    # The groups of items, built and ordered once per distinct set of shown events and
    # shared by every digest of the chunk that shows that set (most subscribers of a
    # target see the same events).
    groups_of: dict[str, tuple[tuple[ItemGroup, ...], tuple[PhaseMove, ...]]] = {"": ((), ())}

    def groups_for(event_ids: str) -> tuple[tuple[ItemGroup, ...], tuple[PhaseMove, ...]]:
        built = groups_of.get(event_ids)
        if built is None:
            events = sorted(
                (data.events[e] for e in map(int, event_ids.split(",")) if e in data.events),
                key=lambda e: order_key(e.section, e.sort_at, e.event_id),
            )
            built = groups_of[event_ids] = (
                group_items(item_view(event) for event in events),
                phase_moves((e.external_id, e.interventions, e.changes)
                            for e in events if e.event_kind == "updated"),
            )
        return built

    views: list[DigestView] = []
    nothing_left: list[int] = []
    for head in data.heads:
        rows = sorted(alerts_of.get(head.digest_id, ()), key=lambda r: (r.target_name, r.alert_id))
        if not rows:
            nothing_left.append(head.digest_id)
            continue
        sections = []
        for row in rows:
            pair = (head.digest_id, row.alert_id)
            groups, moves = groups_for(data.shown.get(pair, ""))
            sections.append(TargetSection(
                alert_id=row.alert_id,
                target_slug=row.target_slug,
                target_name=row.target_name,
                groups=groups,
                phase_moves=moves,
                counts=dict(counts.get(pair, {})),
                hidden=hidden.get(pair, 0),
                since=oldest.get(pair),
                sources=sources.get(row.target_id, ()),
            ))
        views.append(DigestView(
            digest_id=head.digest_id,
            key=head.key,
            message_id=head.message_id,
            subscriber_id=head.subscriber_id,
            email=head.email,
            frequency=head.frequency,
            slot_at=head.slot_at,
            timezone=rows[0].timezone,
            sections=tuple(sections),
        ))
    return views, nothing_left


def load_views(session: Session, settings: Settings, digest_ids: Sequence[int]) -> list[DigestView]:
    """The views of these digests (what their emails show), in id order."""
    views, _nothing_left = build_views(repo.load_digest_data(session, digest_ids), settings)
    return views


# --- the email ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestLinks:
    manage: str
    #: Ends every alert of the digest (List-Unsubscribe).
    unsubscribe_all: str
    #: alert id -> a link that ends only that alert.
    unsubscribe: dict[int, str]
    #: The base of the reader's "not relevant" links (each item adds `&event=<id>`).
    feedback: str


def public_host(settings: Settings) -> str:
    return urlsplit(settings.public_base).hostname or "localhost"


def more_url(settings: Settings, slug: str, since: datetime) -> str:
    # `since` is inclusive: keep microseconds when there are any.
    stamp = since.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if since.microsecond else "%Y-%m-%dT%H:%M:%SZ")
    return f"{settings.public_base}/targets/{quote(slug, safe='')}/items?since={stamp}"


def links_for(view: DigestView, settings: Settings) -> DigestLinks:
    per_alert = {
        section.alert_id: unsubscribe_url(settings, [section.alert_id])
        for section in view.sections
    }
    every = (
        per_alert[view.sections[0].alert_id]
        if len(view.sections) == 1
        else unsubscribe_url(settings, view.alert_ids)
    )
    return DigestLinks(manage_url(settings, view.subscriber_id), every, per_alert,
                       feedback_url(settings, view.subscriber_id))


# Subscribers of a target mostly get the same digest body; only the manage, unsubscribe
# and feedback links (signed tokens) are theirs. A body is therefore rendered once per
# distinct content, with unguessable placeholders for those links, and each email
# fills in its own (HTML-escaped in the HTML part). Bounded, per process.
_BODY_CACHE_SIZE = 256
_MARK = f"@@{secrets.token_hex(8)}@@"
_PLACEHOLDER = re.compile(f"{re.escape(_MARK)}(\\w+){re.escape(_MARK)}")


class _PartTemplate:
    """One part (text or HTML) of a cached body, ready to take each email's links.

    The template's output is normalised and checked once: split at the placeholders
    into CRLF-terminated pieces, with what a 7bit part needs to know (ASCII, no NUL,
    the longest line without a link, the fixed length of each line that holds links).
    An email whose links keep all of that true is one join; any other goes through
    `_encode_part` with the links substituted, exactly as a fresh render would."""

    __slots__ = ("_raw", "_pieces", "_names", "_plain", "_fixed_longest", "_link_lines")

    def __init__(self, raw: str) -> None:
        self._raw = raw
        normal = _normalise(raw)
        # Even pieces are literal text (CRLF line ends), odd ones placeholder names.
        split = _PLACEHOLDER.split(normal)
        self._pieces = [piece.replace("\n", "\r\n") if n % 2 == 0 else piece
                        for n, piece in enumerate(split)]
        self._names = split[1::2]
        fixed_text = "".join(split[0::2])
        self._plain = fixed_text.isascii() and "\0" not in fixed_text
        self._fixed_longest = 0
        #: Per line holding links: (its length without them, the names of its links).
        self._link_lines: list[tuple[int, list[str]]] = []
        for line in normal.split("\n"):
            names = _PLACEHOLDER.findall(line)
            fixed = len(_PLACEHOLDER.sub("", line))
            if names:
                self._link_lines.append((fixed, names))
            else:
                self._fixed_longest = max(self._fixed_longest, fixed)

    def encode(self, links: dict[str, str]) -> tuple[str, bytes]:
        """(Content-Transfer-Encoding, bytes) of this part with these links."""
        urls = [links[name] for name in self._names]
        if (
            self._plain
            # Only non-empty links without line breaks leave the normalised lines as
            # they are (an empty one could make "\r" + "\n" one break).
            and all(url and url.isascii() and url.isprintable() for url in urls)
            and self._fixed_longest <= MAX_LINE
            and all(fixed + sum(len(links[name]) for name in names) <= MAX_LINE
                    for fixed, names in self._link_lines)
        ):
            pieces = self._pieces[:]
            pieces[1::2] = urls
            return "7bit", "".join(pieces).encode("ascii")
        return _encode_part(_PLACEHOLDER.sub(lambda m: links[m.group(1)], self._raw))


_body_cache: dict[tuple[Any, ...], tuple[_PartTemplate, _PartTemplate]] = {}


def _body_key(view: DigestView, settings: Settings) -> tuple[Any, ...]:
    """Everything a body shows except the personal links: the item views themselves
    (title, byline, evidence and its marks, changes ...), not only their event ids, so a
    rematch that changes an item's evidence during a run renders the new one."""
    return (
        view.frequency,
        view.local_slot.date(),
        settings.public_base,
        tuple(
            (s.target_slug, s.target_name, s.groups, s.phase_moves,
             tuple(sorted(s.counts.items())), s.hidden, s.since, s.sources)
            for s in view.sections
        ),
    )


def _placeholder(name: str) -> str:
    return f"{_MARK}{name}{_MARK}"


def _render_body_template(
    view: DigestView, settings: Settings, subject: str, links: DigestLinks
) -> tuple[str, str]:
    more = {
        s.alert_id: more_url(settings, s.target_slug, s.since)
        for s in view.sections
        if s.hidden and s.since is not None
    }
    context = {"view": view, "subject": subject, "links": links, "more": more,
               "public_url": settings.public_base, "glance": KINDS}
    env = environment()
    return (env.get_template("digest/digest.txt").render(context),
            env.get_template("digest/digest.html").render(context))


def _body(view: DigestView, settings: Settings, subject: str) -> tuple[_PartTemplate, ...]:
    key = _body_key(view, settings)
    body = _body_cache.get(key)
    if body is None:
        placeholders = DigestLinks(
            manage=_placeholder("manage"),
            unsubscribe_all="",
            unsubscribe={s.alert_id: _placeholder(f"u{n}") for n, s in enumerate(view.sections)},
            feedback=_placeholder("feedback"),
        )
        text, html = _render_body_template(view, settings, subject, placeholders)
        body = (_PartTemplate(text), _PartTemplate(html))
        if len(_body_cache) >= _BODY_CACHE_SIZE:
            _body_cache.clear()
        _body_cache[key] = body
    return body


@lru_cache(maxsize=8)
def _envelope_sender(mail_from: str) -> str:
    return envelope_sender(mail_from)


def render_digest(view: DigestView, settings: Settings, *, date: datetime) -> RenderedDigest:
    subject = subject_for(view)
    links = links_for(view, settings)
    text, html = _body(view, settings, subject)
    personal = {"manage": links.manage, "feedback": links.feedback} | {
        f"u{n}": links.unsubscribe[s.alert_id] for n, s in enumerate(view.sections)
    }
    headers = [
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
    parts = [
        ("plain", *text.encode(personal)),
        ("html", *html.encode({name: str(escape(url)) for name, url in personal.items()})),
    ]
    return RenderedDigest(
        digest_id=view.digest_id,
        subscriber_id=view.subscriber_id,
        sender=_envelope_sender(settings.mail_from),
        recipient=view.email,
        subject=subject,
        data=_assemble(headers, parts),
    )


def render_batch(
    session: Session, settings: Settings, digest_ids: Sequence[int], *, date: datetime
) -> RenderedBatch:
    """Load and render these digests; a digest that cannot be rendered fails alone."""
    views, nothing_left = build_views(repo.load_digest_data(session, digest_ids), settings)
    batch = RenderedBatch(nothing_left=nothing_left)
    for view in views:
        try:
            batch.messages.append(render_digest(view, settings, date=date))
        except Exception as exc:  # noqa: BLE001 - recorded on the digest, the rest go on
            log.exception("digest %s could not be rendered", view.digest_id)
            batch.messages.append(
                RenderFailure(view.digest_id, f"render error: {type(exc).__name__}: {exc}")
            )
    return batch


# --- the message ----------------------------------------------------------------------


def _header(name: str, value: str) -> bytes:
    value = one_line(value) if name == "Subject" else value
    if value.isascii() and value.isprintable() and len(name) + len(value) < 996:
        return f"{name}: {value}\r\n".encode("ascii")
    # Encoded words (RFC 2047) for anything else, exactly as EmailMessage would write it
    # (an internationalised address in UTF-8, RFC 6532: see alerts.mail.base.POLICY).
    return POLICY.fold_binary(name, POLICY.header_factory(name, value))


#: Longest line a 7bit part may have (RFC 5322: 998 characters before CRLF).
MAX_LINE = 998


def _normalise(text: str) -> str:
    normal = text.replace("\r\n", "\n").replace("\r", "\n")
    # The CRLF before a boundary belongs to the boundary: end the body with a line
    # break of its own so the part keeps its last newline (as the stdlib does).
    if not normal.endswith("\n"):
        normal += "\n"
    return normal


def _encode_part(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, CRLF-terminated bytes) of a part. ASCII text with
    lines short enough goes as it is (7bit: the common case, nothing to encode or to
    decode); anything else is quoted-printable (binascii soft-wraps at 76)."""
    normal = _normalise(text)
    if normal.isascii() and "\0" not in normal and max(map(len, normal.split("\n"))) <= MAX_LINE:
        return "7bit", normal.encode("ascii").replace(b"\n", b"\r\n")
    encoded = binascii.b2a_qp(normal.encode("utf-8"), quotetabs=False, istext=True)
    return "quoted-printable", encoded.replace(b"\n", b"\r\n")


def _boundary() -> str:
    # The stdlib's own form ("=" is always encoded in a quoted-printable part; a 7bit
    # part is checked for it below).
    return f"==============={random.randrange(sys.maxsize):019d}=="


def mime_bytes(
    headers: Sequence[tuple[str, str]], text: str, html: str, *, boundary: str | None = None
) -> bytes:
    """A multipart/alternative RFC 5322 message (CRLF line ends): text/plain first,
    text/html last, both UTF-8."""
    return _assemble(
        headers, [("plain", *_encode_part(text)), ("html", *_encode_part(html))],
        boundary=boundary,
    )


def _assemble(
    headers: Sequence[tuple[str, str]], parts: Sequence[tuple[str, str, bytes]], *,
    boundary: str | None = None,
) -> bytes:
    boundary = boundary or _boundary()
    while any(boundary.encode("ascii") in data for _s, _c, data in parts):
        boundary = _boundary()
    out = [_header(name, value) for name, value in headers]
    out.append(
        f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="{boundary}"'
        "\r\n\r\n".encode("ascii")
    )
    for subtype, encoding, data in parts:
        out.append(
            f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n".encode("ascii")
        )
        out.append(data)
        out.append(b"\r\n")
    out.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(out)
