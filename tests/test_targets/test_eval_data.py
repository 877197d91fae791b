"""The labelled evaluation sets in tests/data/eval/: well-formed, consistent with the catalogue.

Each `<slug>.jsonl` holds items a person labelled as news (or not) for that target,
chosen around its hard neighbours (EGFR exon 20 vs exon 19/L858R, KRAS G12C vs G12D,
HER2 as a protein vs HER2-negative status, ALK fusion vs ALK mutation/amplification,
MET exon 14 vs MET amplification, RET/ROS/MET/PD1 as other words, CD19+ B cells as a
flow marker ...). The match rule is measured against them, so a
malformed line, a slug the catalogue lacks, or a label that contradicts the catalogue's
own promise ("a target-specific drug counts alone") would mislead that measure.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.test_targets.test_catalogue_file import load_catalogue

EVAL_DIR = Path(__file__).parents[1] / "data" / "eval"
SOURCES = {"pubmed", "ctgov", "rss"}
REQUIRED = {"id": str, "source": str, "title": str, "summary": str, "label": bool}
OPTIONAL_TEXT = ("official_title", "eligibility", "family", "reason")
OPTIONAL_LISTS = ("keywords", "mesh", "conditions", "interventions")
TEXT_FIELDS = ("title", "summary", "official_title", "eligibility", *OPTIONAL_LISTS)
# The neighbour sets this catalogue ships; other files (her2-exon20) are checked for form only.
SHIPPED = (
    "egfr-exon20",
    "egfr-sensitising",
    "kras-g12c",
    "kras-g12d",
    "her2",
    "alk-fusion",
    "met-exon14",
    "trop2",
    "bcma",
    "cldn18-2",
    "ros1-fusion",
    "ret",
    "ntrk-fusion",
    "braf-v600e",
    "egfr-c797s",
    "pik3ca-mutant",
    "idh1",
    "flt3",
    "esr1-mutant",
    "dll3",
    "cd19",
    "pd-1-pd-l1",
    "cmet",
    "menin",
    "b7-h3",
    "gprc5d",
    "prmt5-mtap",
    "fgfr2-fusion",
    "brca",
    "wrn",
)


def _read(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def item_problems(items: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for number, item in enumerate(items, start=1):
        where = f"line {number}"
        for key, kind in REQUIRED.items():
            if not isinstance(item.get(key), kind):
                problems.append(f"{where}: {key} must be {kind.__name__}")
        if item.get("source") not in SOURCES:
            problems.append(f"{where}: source must be one of {sorted(SOURCES)}")
        if item.get("id") in seen:
            problems.append(f"{where}: id {item['id']} is used twice")
        seen.add(item.get("id"))
        for key in OPTIONAL_TEXT:
            if key in item and not isinstance(item[key], str):
                problems.append(f"{where}: {key} must be a string")
        for key in OPTIONAL_LISTS:
            if key in item and not (
                isinstance(item[key], list) and all(isinstance(v, str) for v in item[key])
            ):
                problems.append(f"{where}: {key} must be a list of strings")
        eligibility = item.get("eligibility")
        if isinstance(eligibility, str) and not eligibility.startswith("Inclusion Criteria:"):
            problems.append(f"{where}: eligibility must start with 'Inclusion Criteria:'")
    return problems


def _text(item: dict[str, Any]) -> str:
    parts: list[str] = []
    for key in TEXT_FIELDS:
        value = item.get(key)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts.extend(value)
    return "\n".join(parts)


def _mentions(text: str, form: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(form)}(?![\w-])", text, re.IGNORECASE) is not None


def _eval_files() -> list[Path]:
    return sorted(EVAL_DIR.glob("*.jsonl"))


@pytest.mark.parametrize("path", _eval_files(), ids=lambda p: p.stem)
def test_every_eval_file_is_well_formed_and_names_a_catalogue_target(path: Path) -> None:
    slugs = {t["slug"] for t in load_catalogue()}
    assert path.stem in slugs
    assert item_problems(_read(path)) == []


@pytest.mark.parametrize("slug", SHIPPED)
def test_each_shipped_set_is_sized_and_balanced(slug: str) -> None:
    items = _read(EVAL_DIR / f"{slug}.jsonl")
    relevant = sum(item["label"] for item in items)
    assert 16 <= len(items) <= 30
    assert 0.35 <= relevant / len(items) <= 0.65
    assert {item["source"] for item in items} == SOURCES
    assert all(item.get("family") and item.get("reason") for item in items)


@pytest.mark.parametrize("slug", SHIPPED)
def test_an_item_naming_a_target_specific_drug_is_labelled_relevant(slug: str) -> None:
    target = next(t for t in load_catalogue() if t["slug"] == slug)
    forms = [f for d in target["drugs"] for f in (d["name"], *d["codes"], *d["brands"])]
    contradictions = [
        f"{item['id']} names {form} but is labelled not relevant"
        for item in _read(EVAL_DIR / f"{slug}.jsonl")
        if not item["label"]
        for form in forms
        if _mentions(_text(item), form)
    ]
    assert contradictions == []


def test_the_item_check_names_each_broken_line() -> None:
    broken: list[dict[str, Any]] = [
        {"id": "a", "source": "pubmed", "title": "t", "summary": "s", "label": True},
        {"id": "a", "source": "twitter", "title": "t", "summary": "s", "label": "yes"},
        {"id": "b", "source": "ctgov", "title": "t", "summary": "s", "label": False,
         "eligibility": "Exclusion Criteria:\n- none", "conditions": "NSCLC"},
    ]  # fmt: skip
    assert item_problems(broken) == [
        "line 2: label must be bool",
        "line 2: source must be one of ['ctgov', 'pubmed', 'rss']",
        "line 2: id a is used twice",
        "line 3: conditions must be a list of strings",
        "line 3: eligibility must start with 'Inclusion Criteria:'",
    ]


def test_a_drug_form_is_found_as_a_whole_word_only() -> None:
    assert _mentions("Treated with Sotorasib (AMG 510) daily", "amg 510")
    assert not _mentions("the EVE trial", "EV")
    assert not _mentions("DS-8201a-based", "DS-8201")
