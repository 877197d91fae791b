"""`make eval`: figures per source and overall for each target, every miss listed with its
label's reason, extra label files taken in; and the shipped rule meets its goal on the
labelled set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alerts.matching.catalogue import CATALOGUE_FILE, load_definitions
from alerts.matching.evaluation import evaluate, main, read_cases

EVAL_DIR = Path(__file__).resolve().parents[1] / "data" / "eval"


def write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_figures_and_misses_are_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "her2-exon20.jsonl", [
        {"id": "a", "source": "pubmed", "title": "HER2 ex20ins NSCLC", "label": True,
         "reason": "named"},
        {"id": "b", "source": "pubmed", "title": "HER2-positive breast cancer", "label": True,
         "reason": "a reader wanted it", "family": "feedback"},
        {"id": "c", "source": "rss", "title": "Zongertinib news", "label": False,
         "reason": "a reader did not"},
        {"id": "d", "source": "rss", "title": "EGFR exon 20", "label": False, "reason": "-"},
    ])
    assert main([str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:5] == [
        "her2-exon20",
        "  source   items   TP   FP   FN   TN precision recall    F1",
        "  pubmed       2    1    0    1    0     1.000  0.500 0.667",
        "  rss          2    0    1    0    1     0.000  1.000 0.000",
        "  overall      4    1    1    1    1     0.500  0.500 0.500",
    ]
    assert "false negative: her2-exon20 b (pubmed) [feedback]" in out
    assert "  label:    a reader wanted it" in out
    assert "false positive: her2-exon20 c (rss)" in out
    assert "  matched:  Zongertinib in title: Zongertinib news" in out


def test_an_extra_file_names_its_target_per_line_and_bad_lines_are_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "feedback.jsonl", [
        {"target": "her2-exon20", "id": 1, "source": "rss", "title": "HER2 YVMA",
         "label": True, "reason": "r"},
        "{oops",
        {"target": "her2-exon20", "id": 2, "source": "rss", "title": "x", "reason": "r"},
        {"id": 3, "source": "rss", "title": "x", "label": False, "reason": "r"},
    ])
    assert main([str(path), str(tmp_path / "missing.jsonl")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "  overall      1    1    0    0    0     1.000  1.000 1.000" in out
    errors = [line for line in out if line.startswith("error")]
    assert errors[0].startswith(f"error: {path}:2: Expecting property name")
    assert errors[1:] == [
        f"error: {path}:3: label: expected true or false",
        f"error: {tmp_path / 'missing.jsonl'}: No such file or directory",
        f"error: {path}:4: no target 'feedback' in the catalogue",
    ]


def test_the_shipped_rule_meets_its_goal_on_the_labelled_set() -> None:
    problems: list[str] = []
    report = evaluate(read_cases(sorted(EVAL_DIR.glob("*.jsonl")), problems),
                      load_definitions(CATALOGUE_FILE))
    assert problems == [] and report.problems == []
    counts = report.counts["her2-exon20"]
    assert set(counts) == {"pubmed", "ctgov", "rss", "overall"}
    assert counts["overall"].total >= 200
    for source, c in counts.items():
        assert (source, c.precision >= 0.95, c.recall >= 0.95) == (source, True, True)
