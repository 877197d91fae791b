"""What a digest holds and how it reads, without a database or a template.

Planning picks events per alert and splits them into the shown ones and the ones only
behind the "N more" link; rendering turns a `DigestView` (plain, picklable data loaded
from the database) into text and HTML. Both sides share the section order and the
subject rules defined here, so the preview, the planner and the email agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerts.matching.spans import merge_spans
from alerts.sources.trial_fields import TRACKED_FIELD_LABELS, format_tracked_value


class Section(StrEnum):
    """The parts of a target's section, in the order a digest shows them."""

    new_trials = "new_trials"
    trial_updates = "trial_updates"
    publications = "publications"
    news = "news"


SECTION_ORDER: dict[Section, int] = {section: n for n, section in enumerate(Section)}
SECTION_TITLES: dict[Section, str] = {
    Section.new_trials: "New trials",
    Section.trial_updates: "Trial updates",
    Section.publications: "Publications",
    Section.news: "News",
}
#: (singular, plural) as the subject line counts them.
SECTION_NOUNS: dict[Section, tuple[str, str]] = {
    Section.new_trials: ("new trial", "new trials"),
    Section.trial_updates: ("trial update", "trial updates"),
    Section.publications: ("publication", "publications"),
    Section.news: ("news item", "news items"),
}
SOURCE_LABELS: dict[str, str] = {
    "pubmed": "PubMed",
    "ctgov": "ClinicalTrials.gov",
    "rss": "RSS feeds",
}
PRODUCT = "Target Alerts"
#: A subject naming more targets than this says "and N more" instead.
SUBJECT_MAX_TARGETS = 4


def section_of(item_kind: str, event_kind: str) -> Section:
    """Where an event goes: trials split into new ones and updates; a re-announced
    publication or news entry stays in its own kind's part."""
    if item_kind == "trial":
        return Section.trial_updates if event_kind == "updated" else Section.new_trials
    if item_kind == "publication":
        return Section.publications
    return Section.news


def order_key(section: Section, sort_at: datetime, event_id: int) -> tuple[int, float, int]:
    """Digest order: by section, newest first within one (ties: the later event)."""
    return (SECTION_ORDER[section], -sort_at.timestamp(), -event_id)


#: What no link holds: whitespace (line breaks of every kind) and control characters.
#: A stored link with one (an adapter let it through) is not given: in the text part it
#: would start a line of its own.
_NOT_IN_A_LINK = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def canonical_url(source: str, external_id: str, url: str) -> str:
    """The link a digest gives: PubMed and ClinicalTrials.gov by id, feeds their own."""
    if source == "pubmed":
        return f"https://pubmed.ncbi.nlm.nih.gov/{quote(external_id, safe='')}/"
    if source == "ctgov":
        return f"https://clinicaltrials.gov/study/{quote(external_id, safe='')}"
    # Escaping does not make a `javascript:` link safe: only web links are linked.
    if not url.lower().startswith(("https://", "http://")) or _NOT_IN_A_LINK.search(url):
        return ""
    return url


def item_source_label(source: str, feed_title: str | None) -> str:
    if source == "rss":
        return feed_title or "News feed"
    return SOURCE_LABELS.get(source, source)


@dataclass(frozen=True, slots=True)
class Change:
    """One changed field of a trial: `Overall status: RECRUITING -> ACTIVE_NOT_RECRUITING`."""

    label: str
    old: str
    new: str


def describe_changes(changes: Sequence[Mapping[str, Any]]) -> tuple[Change, ...]:
    described = []
    for change in changes:
        name = str(change.get("field", ""))
        label = TRACKED_FIELD_LABELS.get(name) or name.replace("_", " ").capitalize()
        described.append(
            Change(label, format_tracked_value(change.get("old")),
                   format_tracked_value(change.get("new")))
        )
    return tuple(described)


#: How a digest names the field the evidence comes from, per source.
FIELD_LABELS: dict[str, str] = {
    "title": "Title",
    "summary": "Summary",
    "keywords": "Keywords",
    "mesh": "MeSH terms",
    "official_title": "Official title",
    "conditions": "Conditions",
    "interventions": "Interventions",
    "eligibility": "Eligibility",
}
SUMMARY_LABELS: dict[str, str] = {"pubmed": "Abstract", "ctgov": "Brief summary"}
#: The longest evidence a digest shows; longer evidence is cut around the highlights.
EVIDENCE_MAX_CHARS = 280


@dataclass(frozen=True, slots=True)
class Evidence:
    """The sentence or field value that matched, as a digest shows it: the field's label
    and the text in parts, each marked or not (the template escapes and marks them)."""

    label: str
    parts: tuple[tuple[str, bool], ...]
    #: Whether text was left out before and after what is shown.
    cut_before: bool = False
    cut_after: bool = False

    @property
    def text(self) -> str:
        return "".join(text for text, _marked in self.parts)

    @property
    def marked_text(self) -> str:
        """The plain-text part's rendering: marked words in **double asterisks**, cuts as
        "..."."""
        shown = "".join(f"**{text}**" if marked else text for text, marked in self.parts)
        return ("... " if self.cut_before else "") + shown + (" ..." if self.cut_after else "")


def evidence_view(
    source: str,
    field_name: str,
    text: str,
    highlights: Sequence[Sequence[int]],
    max_chars: int = EVIDENCE_MAX_CHARS,
) -> Evidence | None:
    """The evidence cut to at most about `max_chars` around its highlights, on word
    boundaries with an ellipsis where text was left out, whitespace collapsed; None when
    there is none. Spans that are not inside the text are ignored."""
    if not text.strip():
        return None
    spans = _clean_spans(text, highlights)
    start, end = _window(text, spans, max_chars)
    parts: list[tuple[str, bool]] = []
    at = start
    for span_start, span_end in spans:
        if span_end <= start or span_start >= end:
            continue
        span_start, span_end = max(span_start, start), min(span_end, end)
        if span_start > at:
            parts.append((text[at:span_start], False))
        parts.append((text[span_start:span_end], True))
        at = span_end
    if at < end:
        parts.append((text[at:end], False))
    collapsed = [(re.sub(r"\s+", " ", part), marked) for part, marked in parts]
    if collapsed:
        collapsed[0] = (collapsed[0][0].lstrip(), collapsed[0][1])
        collapsed[-1] = (collapsed[-1][0].rstrip(), collapsed[-1][1])
    label = (SUMMARY_LABELS.get(source, "Summary") if field_name == "summary"
             else FIELD_LABELS.get(field_name, field_name.replace("_", " ").capitalize()))
    return Evidence(label or "Matched", tuple((t, m) for t, m in collapsed if t),
                    cut_before=start > 0, cut_after=end < len(text))


def _clean_spans(text: str, highlights: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for span in highlights:
        if len(span) != 2:
            continue
        start, end = int(span[0]), int(span[1])
        if 0 <= start < end <= len(text):
            spans.append((start, end))
    return merge_spans(spans)


def _window(text: str, spans: Sequence[tuple[int, int]], max_chars: int) -> tuple[int, int]:
    """[start, end) of the part of `text` shown: all of it when short enough, else about
    `max_chars` around the highlights (from the first one on), widened to whole words."""
    if len(text) <= max_chars:
        return 0, len(text)
    first = spans[0] if spans else (0, 0)
    covered = [span for span in spans if span[1] - first[0] <= max_chars]
    last_end = covered[-1][1] if covered else first[1]
    room = max(max_chars - (last_end - first[0]), 0)
    start = max(first[0] - room // 2, 0)
    end = min(start + max_chars, len(text))
    start = max(min(start, end - max_chars), 0)
    # Widen to word boundaries: never cut a word (or a highlight) in two.
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    return start, end


def byline(
    source: str,
    *,
    authors: Sequence[str] = (),
    journal: str | None = None,
    pub_date: str | None = None,
    published_at: datetime | None = None,
    phases: Sequence[str] = (),
    overall_status: str | None = None,
    lead_sponsor: str | None = None,
) -> tuple[str, ...]:
    """The parts of the line under a title: ("Tan DS et al.", "J Clin Oncol", "2026") for
    a publication, ("Phase 1/2", "Recruiting", "Boehringer Ingelheim") for a trial,
    nothing otherwise. The templates join them."""
    if source == "pubmed":
        first = one_line(authors[0]) if authors else ""
        who = f"{first} et al." if first and len(authors) > 1 else first
        year_match = re.search(r"\b(\d{4})\b", pub_date or "")
        year = year_match.group(1) if year_match else (
            str(published_at.year) if published_at else "")
        journal = one_line(journal or "")
        # A year alone repeats the date above it: shown only beside an author or journal.
        parts: tuple[str, ...] = (who, journal, year) if who or journal else ()
    elif source == "ctgov":
        parts = (phase_label(phases), status_label(overall_status),
                 one_line(lead_sponsor or ""))
    else:
        parts = ()
    return tuple(part for part in parts if part)


def phase_label(phases: Sequence[str]) -> str:
    """["PHASE1", "PHASE2"] -> "Phase 1/2"; ["EARLY_PHASE1"] -> "Early phase 1"; "" for NA."""
    numbers = [p.removeprefix("PHASE") for p in phases if p.startswith("PHASE")]
    if numbers:
        return "Phase " + "/".join(numbers)
    if "EARLY_PHASE1" in phases:
        return "Early phase 1"
    return ""


def status_label(status: str | None) -> str:
    """"ACTIVE_NOT_RECRUITING" -> "Active, not recruiting"."""
    if not status:
        return ""
    words = status.lower().split("_")
    if words[:1] == ["active"] and len(words) > 1:
        return "Active, " + " ".join(words[1:])
    return " ".join(words).capitalize()


@dataclass(frozen=True, slots=True)
class ItemView:
    event_id: int
    section: Section
    title: str
    source_label: str
    date: datetime | None
    url: str
    matched_terms: tuple[str, ...]
    changes: tuple[Change, ...] = ()
    #: Authors, journal and year of a publication; phase, status and sponsor of a trial.
    byline: tuple[str, ...] = ()
    #: The sentence or field that matched, its words marked (None: only the terms known).
    evidence: Evidence | None = None


@dataclass(frozen=True, slots=True)
class ItemGroup:
    section: Section
    title: str
    items: tuple[ItemView, ...]


@dataclass(frozen=True, slots=True)
class SourceHealth:
    source: str
    label: str
    last_success_at: datetime | None
    consecutive_failures: int
    failing: bool
    last_error: str | None
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TargetSection:
    """One alert's part of a digest."""

    alert_id: int
    target_slug: str
    target_name: str
    groups: tuple[ItemGroup, ...]
    #: Every event this digest delivers to the alert, per section, shown or not.
    counts: Mapping[Section, int]
    #: Events recorded as delivered but left out by `max_items`.
    hidden: int
    #: The oldest event of this digest for the alert (the "more" page starts there).
    since: datetime | None
    sources: tuple[SourceHealth, ...] = ()
    #: Trials of the target that moved to a later phase in this digest.
    phase_moves: tuple[PhaseMove, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class PhaseMove:
    """A trial of the target that moved to a later phase: the drugs it tests (as its
    record names them), its phase before and after, and its NCT id."""

    drugs: tuple[str, ...]
    old: str
    new: str
    trial: str


def phase_moves(
    updates: Iterable[tuple[str, Sequence[str], Sequence[Mapping[str, Any]]]],
) -> tuple[PhaseMove, ...]:
    """The phase moves among trial updates given as (NCT id, interventions, changes):
    a `phases` change to a later phase (a phase 1/2 trial becoming phase 2/3 is one;
    a phase list that only shrinks is not)."""
    from alerts.progress.pipeline import DrugNames, phase_label, phase_rank

    names = DrugNames()
    moves = []
    for trial, interventions, changes in updates:
        for change in changes:
            if change.get("field") != "phases":
                continue
            old, new = (phase_rank(_phase_list(change.get(side))) for side in ("old", "new"))
            if new > old:
                named = {d.casefold(): d for i in reversed(interventions)
                         for d in names.drugs_in(i)}  # one spelling each, the first
                drugs = tuple(reversed(named.values()))
                moves.append(PhaseMove(drugs, phase_label(old), phase_label(new), trial))
    return tuple(moves)


def _phase_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value or () if isinstance(v, str)] if isinstance(value, list) else []


@dataclass(frozen=True, slots=True)
class DigestView:
    """Everything one digest email shows, loaded from the database in plain data."""

    digest_id: int
    key: str
    message_id: str
    subscriber_id: int
    email: str
    frequency: str
    slot_at: datetime
    #: The time zone the slot is shown in (the first alert's; all share the instant).
    timezone: str = "UTC"
    sections: tuple[TargetSection, ...] = field(default_factory=tuple)

    @property
    def local_slot(self) -> datetime:
        try:
            return self.slot_at.astimezone(ZoneInfo(self.timezone))
        except (ZoneInfoNotFoundError, ValueError):
            return self.slot_at

    @property
    def total(self) -> int:
        return sum(section.total for section in self.sections)

    @property
    def alert_ids(self) -> list[int]:
        return [section.alert_id for section in self.sections]


def group_items(items: Iterable[ItemView]) -> tuple[ItemGroup, ...]:
    """Items in digest order, grouped per section (empty sections left out)."""
    by_section: dict[Section, list[ItemView]] = {}
    for item in items:
        by_section.setdefault(item.section, []).append(item)
    return tuple(
        ItemGroup(section, SECTION_TITLES[section], tuple(by_section[section]))
        for section in Section
        if section in by_section
    )


def one_line(value: str) -> str:
    """Header text from stored data: whitespace (newlines included) collapsed."""
    return " ".join(value.split())


def period_word(frequency: str) -> str:
    return "this week" if frequency == "weekly" else "today"


def _count(n: int, nouns: tuple[str, str]) -> str:
    return f"{n} {nouns[0] if n == 1 else nouns[1]}"


def _names(names: Sequence[str]) -> str:
    if len(names) <= SUBJECT_MAX_TARGETS:
        return ", ".join(names)
    shown = ", ".join(names[:SUBJECT_MAX_TARGETS - 1])
    return f"{shown} and {len(names) - SUBJECT_MAX_TARGETS + 1} more"


def subject_line(
    sections: Sequence[tuple[str, Mapping[Section, int]]], frequency: str
) -> str:
    """What is inside, e.g. `HER2 exon 20: 2 new trials, 1 trial update, 14 publications`;
    with items for several targets `Target Alerts: 17 new items for HER2 exon 20, KRAS
    G12C`; when nothing is new `HER2 exon 20: nothing new this week`.

    `sections` are (target name, counts per section) in the order the email shows."""
    names = [one_line(name) for name, _counts in sections]
    with_items = [
        (one_line(name), counts) for name, counts in sections if sum(counts.values()) > 0
    ]
    if not with_items:
        if len(names) == 1:
            return f"{names[0]}: nothing new {period_word(frequency)}"
        return f"{PRODUCT}: nothing new {period_word(frequency)} for {_names(names)}"
    if len(with_items) == 1:
        name, counts = with_items[0]
        parts = [
            _count(counts[section], SECTION_NOUNS[section])
            for section in Section
            if counts.get(section, 0) > 0
        ]
        return f"{name}: {', '.join(parts)}"
    total = sum(sum(counts.values()) for _name, counts in with_items)
    noun = _count(total, ("new item", "new items"))
    return f"{PRODUCT}: {noun} for {_names([name for name, _counts in with_items])}"


def subject_for(view: DigestView) -> str:
    return subject_line([(s.target_name, s.counts) for s in view.sections], view.frequency)
