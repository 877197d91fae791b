"""How a digest item shows its evidence and what it is: the matched sentence cut around
its marks on word boundaries, and the line under the title per source."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from alerts.digests.compose import (
    EVIDENCE_MAX_CHARS,
    DigestView,
    ItemGroup,
    ItemView,
    Section,
    TargetSection,
    byline,
    evidence_view,
    phase_label,
    status_label,
)
from alerts.digests.delivery.render import render_digest
from tests.conftest import make_settings

SENTENCE = "Zongertinib was active in HER2 exon 20 insertion NSCLC."
LONG = ("Word " * 100) + "patients with ERBB2 ex20ins responded " + ("more " * 100)


def test_short_evidence_is_shown_whole_with_its_words_marked() -> None:
    shown = evidence_view("pubmed", "title", SENTENCE, [[0, 11], [26, 48]])
    assert shown is not None and shown.label == "Title"
    assert shown.parts == (("Zongertinib", True), (" was active in ", False),
                           ("HER2 exon 20 insertion", True), (" NSCLC.", False))
    assert (shown.cut_before, shown.cut_after) == (False, False)
    assert shown.marked_text == "**Zongertinib** was active in **HER2 exon 20 insertion** NSCLC."


def test_long_evidence_is_cut_around_the_marks_on_word_boundaries() -> None:
    start = LONG.index("ERBB2")
    shown = evidence_view("pubmed", "summary", LONG, [[start, start + len("ERBB2 ex20ins")]])
    assert shown is not None and shown.label == "Abstract"
    assert shown.cut_before and shown.cut_after
    assert ("ERBB2 ex20ins", True) in shown.parts
    text = shown.text
    assert len(text) <= EVIDENCE_MAX_CHARS + 10
    assert text.startswith("Word ") and text.endswith("more")  # whole words only
    assert shown.marked_text.startswith("... Word ") and shown.marked_text.endswith("more ...")


@pytest.mark.parametrize(
    ("highlights", "marked"),
    [
        ([[0, 11], [5, 20]], ["Zongertinib was acti"]),  # overlapping spans merge
        ([[40, 999], [-1, 3], [7, 7], [3]], []),  # spans outside the text are ignored
    ],
)
def test_odd_spans_never_break_the_evidence(highlights: list[list[int]], marked: list[str]) -> None:
    shown = evidence_view("rss", "summary", SENTENCE, highlights)
    assert shown is not None and shown.text == SENTENCE
    assert [text for text, is_marked in shown.parts if is_marked] == marked


def test_whitespace_is_collapsed_and_no_evidence_is_none() -> None:
    shown = evidence_view("ctgov", "eligibility", "Inclusion:\n\n  HER2   exon 20\n", [[14, 18]])
    assert shown is not None and shown.label == "Eligibility"
    assert shown.text == "Inclusion: HER2 exon 20"
    assert evidence_view("ctgov", "summary", "  ", []) is None
    assert evidence_view("ctgov", "summary", "x", []).label == "Brief summary"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("source", "fields", "expected"),
    [
        ("pubmed", {"authors": ["Heymach JV", "Opdam F"], "journal": "N Engl J Med",
                    "pub_date": "2025 Jun 19"}, ("Heymach JV et al.", "N Engl J Med", "2025")),
        ("pubmed", {"authors": ["Okafor E"], "journal": None,
                    "published_at": datetime(2026, 1, 5, tzinfo=UTC)}, ("Okafor E", "2026")),
        ("pubmed", {}, ()),  # a year alone would repeat the date line
        ("ctgov", {"phases": ["PHASE1", "PHASE2"], "overall_status": "ACTIVE_NOT_RECRUITING",
                   "lead_sponsor": "Bayer"}, ("Phase 1/2", "Active, not recruiting", "Bayer")),
        ("ctgov", {"phases": ["NA"], "overall_status": "RECRUITING"}, ("Recruiting",)),
        ("rss", {"authors": ["A"]}, ()),
    ],
)
def test_the_line_under_the_title(source: str, fields: dict, expected: tuple[str, ...]) -> None:
    assert byline(source, **fields) == expected


def test_phase_and_status_labels() -> None:
    assert phase_label(["EARLY_PHASE1"]) == "Early phase 1"
    assert phase_label(["PHASE3"]) == "Phase 3"
    assert status_label("NOT_YET_RECRUITING") == "Not yet recruiting"
    assert status_label(None) == ""


def test_the_body_cache_tells_items_with_other_evidence_apart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two digests showing the same event, whose evidence changed between them (a
    rematch during a run), render their own evidence, not the cached body's."""
    settings = make_settings(tmp_path, "sqlite://")
    item = ItemView(event_id=7, section=Section.publications, title="T", source_label="PubMed",
                    date=None, url="", matched_terms=("HER2",),
                    evidence=evidence_view("pubmed", "title", "HER2 exon 20", [[0, 4]]))
    later = replace(item, evidence=evidence_view("pubmed", "title", "HER2 exon 20", [[5, 12]]))

    def view(shown: ItemView) -> DigestView:
        section = TargetSection(alert_id=1, target_slug="t", target_name="T",
                                groups=(ItemGroup(Section.publications, "Publications",
                                                  (shown,)),),
                                counts={Section.publications: 1}, hidden=0, since=None)
        return DigestView(digest_id=1, key="k", message_id="<m@x>", subscriber_id=1,
                          email="r@example.org", frequency="daily",
                          slot_at=datetime(2026, 5, 4, 8, tzinfo=UTC), sections=(section,))

    moment = datetime(2026, 5, 4, 8, tzinfo=UTC)
    first = render_digest(view(item), settings, date=moment).data
    second = render_digest(view(later), settings, date=moment).data
    assert b"**HER2** exon 20" in first
    assert b"HER2 **exon 20**" in second
