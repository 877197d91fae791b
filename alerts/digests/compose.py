"""What a digest holds and how it reads, without a database or a template.

Planning picks events per alert and splits them into the shown ones and the ones only
behind the "N more" link; rendering turns a `DigestView` (plain, picklable data loaded
from the database) into text and HTML. Both sides share the section order and the
subject rules defined here, so the preview, the planner and the email agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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


@dataclass(frozen=True, slots=True)
class Candidate:
    """An event not yet delivered to an alert, as the planner weighs it."""

    alert_id: int
    event_id: int
    section: Section
    #: "Newest first" within a section: publication date, else when the event happened.
    sort_at: datetime


def order_key(section: Section, sort_at: datetime, event_id: int) -> tuple[int, float, int]:
    """Digest order: by section, newest first within one (ties: the later event)."""
    return (SECTION_ORDER[section], -sort_at.timestamp(), -event_id)


def ordering_key(candidate: Candidate) -> tuple[int, float, int]:
    return order_key(candidate.section, candidate.sort_at, candidate.event_id)


def split_shown(
    candidates: Iterable[Candidate], max_items: int
) -> tuple[list[Candidate], list[Candidate]]:
    """(shown, hidden): the first `max_items` in digest order, and the rest, which are
    recorded as delivered but only reachable through the "more" link."""
    ordered = sorted(candidates, key=ordering_key)
    limit = max(max_items, 0)
    return ordered[:limit], ordered[limit:]


def canonical_url(source: str, external_id: str, url: str) -> str:
    """The link a digest gives: PubMed and ClinicalTrials.gov by id, feeds their own."""
    if source == "pubmed":
        return f"https://pubmed.ncbi.nlm.nih.gov/{external_id}/"
    if source == "ctgov":
        return f"https://clinicaltrials.gov/study/{external_id}"
    # Escaping does not make a `javascript:` link safe: only web links are linked.
    return url if url.lower().startswith(("https://", "http://")) else ""


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

    @property
    def total(self) -> int:
        return sum(self.counts.values())


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
