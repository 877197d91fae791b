"""The HER2 exon 20 match rule on relevant entries and on decoys."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from alerts.matching import matcher_for

_SEED = Path(__file__).resolve().parent.parent / "db/migrations/versions/0002_seed_her2_exon20.py"
_spec = importlib.util.spec_from_file_location("seed", _SEED)
assert _spec and _spec.loader
_seed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_seed)
HER2 = matcher_for(_seed.MATCH_TERMS)


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("Zongertinib in HER2-mutant NSCLC", ["HER2", "mutant", "zongertinib"]),
        ("ERBB2 exon 20 insertions in lung adenocarcinoma", ["ERBB2", "exon 20", "insertion"]),
        ("Sevabertinib (BAY 2927088) phase 1 results", ["sevabertinib", "BAY 2927088"]),
        ("BI 1810631 first-in-human", ["BI 1810631"]),
        ("HER2 A775_G776insYVMA drives resistance", ["HER2", "A775_G776insYVMA"]),
        (
            "Pyrotinib for HER2 exon20 mutations",
            ["HER2", "exon 20", "mutation"],
        ),  # one term, two spellings
        (
            "her-2 tyrosine kinase domain mutated tumours",
            ["HER-2", "tyrosine kinase domain", "mutated"],
        ),
        ("Poziotinib in ERBB2 ex20ins", ["ERBB2", "ex20ins"]),
    ],
)
def test_relevant_entries_match_with_their_terms(text: str, terms: list[str]) -> None:
    assert HER2.match(text) == terms


@pytest.mark.parametrize(
    "text",
    [
        "HER2-positive breast cancer treated with trastuzumab deruxtecan",
        "EGFR exon 20 insertion: mobocertinib outcomes",
        "MET exon 20 skipping in NSCLC",
        "exon 20 skipping",
        "Pyrotinib plus capecitabine in HER2-amplified breast cancer",
        "T-DXd in HER2-low disease",
        "HER20 exon 20",  # not the gene: no word boundary
        "Mutation burden in melanoma",
    ],
)
def test_decoys_do_not_match(text: str) -> None:
    assert HER2.match(text) is None


def test_title_and_summary_are_read_together() -> None:
    assert HER2.match("ERBB2 in lung cancer", "Patients with exon 20 insertions") == [
        "ERBB2",
        "exon 20",
        "insertion",
    ]


def test_terms_found_reports_terms_even_without_a_match() -> None:
    assert HER2.terms_found("HER2-positive breast cancer") == ["HER2"]
    assert HER2.match("HER2-positive breast cancer") is None
