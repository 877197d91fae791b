"""What a digest says without any database: section order, subjects, links and trial
changes (the item cap is applied by planning's statement: test_planning)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.digests.compose import (
    Section,
    canonical_url,
    describe_changes,
    order_key,
    section_of,
    subject_line,
)

NOW = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("item_kind", "event_kind", "section"),
    [
        ("trial", "new", Section.new_trials),
        ("trial", "updated", Section.trial_updates),
        ("publication", "new", Section.publications),
        ("publication", "updated", Section.publications),
        ("news", "new", Section.news),
    ],
)
def test_each_event_has_its_section(item_kind: str, event_kind: str, section: Section) -> None:
    assert section_of(item_kind, event_kind) is section


def test_sections_in_order_then_newest_first() -> None:
    events = [
        (1, Section.news, 1),
        (2, Section.publications, 5),
        (3, Section.publications, 1),
        (4, Section.trial_updates, 9),
        (5, Section.new_trials, 20),
        (6, Section.new_trials, 2),
    ]
    ordered = sorted(
        events, key=lambda e: order_key(e[1], NOW - timedelta(hours=e[2]), e[0])
    )
    assert [event_id for event_id, _, _ in ordered] == [6, 5, 4, 3, 2, 1]


def counts(**values: int) -> dict[Section, int]:
    return {Section(name): n for name, n in values.items()}


@pytest.mark.parametrize(
    ("sections", "frequency", "subject"),
    [
        ([("HER2 exon 20", counts(new_trials=2, trial_updates=1, publications=14))], "daily",
         "HER2 exon 20: 2 new trials, 1 trial update, 14 publications"),
        ([("HER2 exon 20", counts(news=1, publications=1))], "daily",
         "HER2 exon 20: 1 publication, 1 news item"),
        ([("HER2 exon 20", counts(publications=12)), ("KRAS G12C", counts(news=5))], "daily",
         "Target Alerts: 17 new items for HER2 exon 20, KRAS G12C"),
        # A target with nothing new is not named as if it had news.
        ([("HER2 exon 20", counts(publications=3)), ("KRAS G12C", counts())], "weekly",
         "HER2 exon 20: 3 publications"),
        ([("HER2 exon 20", counts())], "weekly", "HER2 exon 20: nothing new this week"),
        ([("HER2 exon 20", counts())], "daily", "HER2 exon 20: nothing new today"),
        ([("HER2 exon 20", counts()), ("KRAS G12C", counts())], "weekly",
         "Target Alerts: nothing new this week for HER2 exon 20, KRAS G12C"),
        ([(f"T{n}", counts(news=1)) for n in range(6)], "daily",
         "Target Alerts: 6 new items for T0, T1, T2 and 3 more"),
        # Stored names never break the header onto a second line.
        ([("HER2\nexon 20", counts(news=1))], "daily", "HER2 exon 20: 1 news item"),
    ],
)
def test_the_subject_says_what_is_inside(
    sections: list[tuple[str, dict[Section, int]]], frequency: str, subject: str
) -> None:
    assert subject_line(sections, frequency) == subject


@pytest.mark.parametrize(
    ("source", "external_id", "url", "expected"),
    [
        ("pubmed", "40123456", "https://example.org/x", "https://pubmed.ncbi.nlm.nih.gov/40123456/"),
        ("ctgov", "NCT06151574", "https://example.org/y",
         "https://clinicaltrials.gov/study/NCT06151574"),
        ("rss", "guid-1", "https://news.example.org/a", "https://news.example.org/a"),
        ("rss", "guid-2", "javascript:alert(1)", ""),
        # A line break or control character: no link (it would start a line of its own).
        ("rss", "guid-3", "https://news.example.org/a\r\nBcc: x@example.net", ""),
        ("rss", "guid-4", "https://news.example.org/a\u2028b", ""),
        ("rss", "guid-5", "https://news.example.org/a b", ""),
        ("rss", "guid-6", "https://news.example.org/a\x00", ""),
        ("pubmed", "401\r\nX: y", "", "https://pubmed.ncbi.nlm.nih.gov/401%0D%0AX%3A%20y/"),
        ("ctgov", "NCT1\nX", "", "https://clinicaltrials.gov/study/NCT1%0AX"),
    ],
)
def test_canonical_links(source: str, external_id: str, url: str, expected: str) -> None:
    assert canonical_url(source, external_id, url) == expected


def test_trial_changes_read_as_label_old_arrow_new() -> None:
    changes = describe_changes([
        {"field": "overall_status", "old": "RECRUITING", "new": "ACTIVE_NOT_RECRUITING"},
        {"field": "phases", "old": ["PHASE1"], "new": ["PHASE1", "PHASE2"]},
        {"field": "has_results", "old": False, "new": True},
        {"field": "some_new_field", "old": None, "new": "x"},
    ])
    assert [f"{c.label}: {c.old} -> {c.new}" for c in changes] == [
        "Overall status: RECRUITING -> ACTIVE_NOT_RECRUITING",
        "Phases: PHASE1 -> PHASE1, PHASE2",
        "Results posted: no -> yes",
        "Some new field: none -> x",
    ]


@pytest.mark.parametrize("old, new, moved", [
    (["PHASE1"], ["PHASE1", "PHASE2"], ("Phase 1", "Phase 1/2")),
    (["PHASE2"], ["PHASE3"], ("Phase 2", "Phase 3")),
    (["EARLY_PHASE1"], ["PHASE1"], ("Early phase 1", "Phase 1")),
    (["NA"], ["PHASE2"], ("Not applicable", "Phase 2")),
    (["PHASE2", "PHASE3"], ["PHASE2"], None),  # the list only shrank
    (["PHASE2"], ["PHASE2"], None),
    ("PHASE1", "PHASE2", ("Phase 1", "Phase 2")),  # a lone string read as a list
    (None, ["PHASE1"], ("Not applicable", "Phase 1")),
])
def test_a_trial_moving_to_a_later_phase_is_a_phase_move(
    old: object, new: object, moved: tuple[str, str] | None
) -> None:
    from alerts.digests.compose import phase_moves

    changes = [{"field": "overall_status", "old": "RECRUITING", "new": "COMPLETED"},
               {"field": "phases", "old": old, "new": new}]
    moves = phase_moves([("NCT01", ["Zongertinib", "Placebo", "zongertinib"], changes)])
    if moved is None:
        assert moves == ()
    else:
        [move] = moves
        assert (move.old, move.new, move.trial) == (*moved, "NCT01")
        assert move.drugs == ("Zongertinib",)  # as the record first names it, once
