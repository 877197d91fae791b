"""The pipeline's phase logic and drug-name folding, on plain values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerts.progress.pipeline import DrugNames, Trial, build_pipeline, phase_label, phase_rank

CATALOGUE = [
    {"slug": "her2-exon20", "drugs": [
        {"name": "zongertinib", "codes": ["BI 1810631"], "brands": ["Hernexeos"]},
        {"name": "sevabertinib", "codes": ["BAY 2927088"], "brands": []},
    ], "related_drugs": ["trastuzumab deruxtecan"]},
    {"genes": ["KRAS"], "mutations": [], "drugs": ["sotorasib"]},  # the older shape
]
NAMES = DrugNames.from_definitions(CATALOGUE)


@pytest.mark.parametrize("phases, label", [
    ([], "Not applicable"),
    (None, "Not applicable"),
    (["NA"], "Not applicable"),
    (["EARLY_PHASE1"], "Early phase 1"),
    (["PHASE1"], "Phase 1"),
    (["PHASE1", "PHASE2"], "Phase 1/2"),
    (["PHASE2", "PHASE1"], "Phase 1/2"),
    (["PHASE2"], "Phase 2"),
    (["PHASE2", "PHASE3"], "Phase 2/3"),
    (["PHASE3"], "Phase 3"),
    (["PHASE4"], "Phase 4"),
    (["PHASE1", "PHASE3"], "Phase 3"),  # not adjacent: the furthest
    (["SOMETHING_NEW"], "Not applicable"),
])
def test_phase_lists_as_the_registry_writes_them(phases: list[str] | None, label: str) -> None:
    assert phase_label(phase_rank(phases)) == label


def test_phase_order() -> None:
    ordered = [["EARLY_PHASE1"], ["PHASE1"], ["PHASE1", "PHASE2"], ["PHASE2"],
               ["PHASE2", "PHASE3"], ["PHASE3"], ["PHASE4"]]
    ranks = [phase_rank(p) for p in ordered]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)


@pytest.mark.parametrize("intervention, drugs", [
    ("Zongertinib", ["zongertinib"]),
    ("BI 1810631", ["zongertinib"]),
    ("BI-1810631", ["zongertinib"]),
    ("Drug: zongertinib (BI 1810631)", ["zongertinib"]),
    ("BI 1810631 tablets", ["zongertinib"]),
    ("HERNEXEOS", ["zongertinib"]),
    ("Trastuzumab Deruxtecan", ["trastuzumab deruxtecan"]),
    ("Sotorasib + Panitumumab", ["sotorasib", "Panitumumab"]),
    ("Docetaxel", ["Docetaxel"]),
    ("Placebo", []),
    ("Matching placebo tablets", []),
    ("Best supportive care", []),
    ("", []),
])
def test_interventions_fold_to_drugs(intervention: str, drugs: list[str]) -> None:
    assert NAMES.drugs_in(intervention) == drugs


def _trial(nct: str, phases: list[str], status: str, *interventions: str,
           at: datetime | None = None, change: str = "") -> Trial:
    return Trial(nct_id=nct, title=nct, phases=phases, overall_status=status,
                 interventions=interventions, last_event_at=at, last_change=change)


def test_a_drug_row_counts_its_trials_by_status_and_its_furthest_phase() -> None:
    trials = [
        _trial("NCT1", ["PHASE1"], "COMPLETED", "BI 1810631"),
        _trial("NCT2", ["PHASE1", "PHASE2"], "RECRUITING", "Zongertinib"),
        _trial("NCT3", ["PHASE3"], "NOT_YET_RECRUITING", "zongertinib", "Pembrolizumab"),
        _trial("NCT4", ["PHASE4"], "WITHDRAWN", "Hernexeos"),
        _trial("NCT5", ["PHASE2"], "ACTIVE_NOT_RECRUITING", "zongertinib"),
        _trial("NCT6", ["PHASE2"], "TERMINATED", "zongertinib"),
    ]

    [zongertinib, pembrolizumab] = build_pipeline(trials, NAMES, target_drugs=["zongertinib"])

    assert zongertinib.name == "zongertinib" and zongertinib.target_drug
    assert zongertinib.highest_phase_label == "Phase 3"  # the withdrawn phase 4 never ran
    assert (zongertinib.trial_count, zongertinib.recruiting, zongertinib.active,
            zongertinib.completed, zongertinib.withdrawn, zongertinib.other) == (6, 2, 1, 1, 1, 1)
    assert pembrolizumab.name == "Pembrolizumab" and not pembrolizumab.target_drug
    assert pembrolizumab.trials == ["NCT3"]


def test_a_drug_only_in_withdrawn_trials_has_no_phase() -> None:
    [drug] = build_pipeline([_trial("NCT9", ["PHASE2"], "WITHDRAWN", "sevabertinib")], NAMES)
    assert drug.highest_phase_label == "Not applicable" and drug.withdrawn == 1


def test_a_trial_naming_a_drug_twice_counts_once() -> None:
    [drug] = build_pipeline(
        [_trial("NCT1", ["PHASE1"], "RECRUITING", "zongertinib", "BI 1810631 (zongertinib)")],
        NAMES)
    assert drug.trials == ["NCT1"] and drug.recruiting == 1


def test_the_newest_change_is_the_latest_event_among_the_drugs_trials() -> None:
    early = datetime(2026, 3, 1, tzinfo=UTC)
    late = datetime(2026, 6, 1, tzinfo=UTC)
    [drug] = build_pipeline([
        _trial("NCT1", ["PHASE1"], "RECRUITING", "zongertinib", at=late,
               change="Overall status: NOT_YET_RECRUITING -> RECRUITING"),
        _trial("NCT2", ["PHASE2"], "RECRUITING", "zongertinib", at=early, change="new trial"),
    ], NAMES)
    assert drug.newest_change_at == late
    assert drug.newest_change == "NCT1: Overall status: NOT_YET_RECRUITING -> RECRUITING"


@pytest.mark.parametrize("sort, order", [
    ("phase", ["zongertinib", "Amivantamab", "Docetaxel"]),
    ("name", ["Amivantamab", "Docetaxel", "zongertinib"]),
    ("recent", ["Docetaxel", "Amivantamab", "zongertinib"]),
])
def test_sorting(sort: str, order: list[str]) -> None:
    trials = [
        _trial("NCT1", ["PHASE1"], "RECRUITING", "zongertinib",
               at=datetime(2026, 1, 1, tzinfo=UTC)),
        _trial("NCT2", ["PHASE3"], "RECRUITING", "Amivantamab",
               at=datetime(2026, 2, 1, tzinfo=UTC)),
        _trial("NCT3", ["PHASE2"], "RECRUITING", "Docetaxel",
               at=datetime(2026, 3, 1, tzinfo=UTC)),
    ]
    rows = build_pipeline(trials, NAMES, target_drugs=["zongertinib"], sort=sort)
    assert [d.name for d in rows] == order
