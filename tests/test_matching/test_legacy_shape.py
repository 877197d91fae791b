"""Stored targets written in the older `{"genes", "mutations", "drugs"}` shape still compile,
read by the same sentence rule: mutations are variant terms, drugs count alone."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from alerts.matching import MatchInput, compile_rule

#: The shape the first release stored for HER2 exon 20, as its seed migration wrote it.
_SEED = Path(__file__).resolve().parents[2] / "db/migrations/versions/0002_seed_her2_exon20.py"
_spec = importlib.util.spec_from_file_location("seed", _SEED)
assert _spec and _spec.loader
_seed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_seed)
LEGACY = _seed.MATCH_TERMS
HER2 = compile_rule(LEGACY)


def terms(title: str, summary: str = "") -> tuple[str, ...] | None:
    result = HER2.match(MatchInput("rss", title=title, summary=summary))
    return result.terms if result.matched else None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The shape lists "mutant": a gene's plain mutation word counts, as it meant.
        ("Zongertinib in HER2-mutant NSCLC", ("Zongertinib", "HER2-mutant")),
        ("ERBB2 exon 20 insertions in lung adenocarcinoma", ("ERBB2", "exon 20", "insertions")),
        ("Sevabertinib (BAY 2927088) phase 1 results", ("Sevabertinib", "BAY 2927088")),
        ("BI 1810631 first-in-human", ("BI 1810631",)),
        ("HER2 A775_G776insYVMA drives resistance", ("HER2", "A775_G776insYVMA")),
        ("Pyrotinib for HER2 exon20 mutations", ("HER2", "exon20", "mutations")),
        ("her-2 tyrosine kinase domain mutated tumours", ("her-2 tyrosine kinase domain mutated",)),
        ("Poziotinib in ERBB2 ex20ins", ("ERBB2", "ex20ins")),
    ],
)
def test_relevant_entries_match_with_their_terms(text: str, expected: tuple[str, ...]) -> None:
    assert terms(text) == expected


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
        # The old rule matched these (gene and mutation word anywhere in the text).
        "HER2-positive breast cancer with a PIK3CA mutation",
        "EGFR exon 20 insertion with HER2 amplification",
    ],
)
def test_decoys_do_not_match(text: str) -> None:
    assert terms(text) is None


def test_title_and_summary_are_one_item() -> None:
    # The summary's sentence names no gene: its variant is the title's gene's.
    assert terms("ERBB2 in lung cancer", "Patients with exon 20 insertions") == (
        "exon 20", "insertions",
    )
