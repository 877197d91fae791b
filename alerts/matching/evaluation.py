"""`make eval`: how well each target's rule agrees with labelled items.

Reads JSON Lines files of labelled items: each line an item as `alerts match` reads it,
plus `"label": true|false`, `"reason"` (why a reader labelled it so) and optionally
`"family"` and `"target"`. The target is the line's `target`, else the file name
(`tests/data/eval/her2-exon20.jsonl` is her2-exon20); its rule is the catalogue's. Prints
precision, recall and F1 per source and overall for each target, then every false
positive (with the evidence the rule matched on) and every false negative (with the
label's reason), so each miss can be read and its general cause fixed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerts.matching import SOURCES, DefinitionError, Match, MatchInput, compile_rule
from alerts.matching.catalogue import CATALOGUE_FILE, load_definitions


@dataclass(frozen=True)
class Case:
    target: str
    where: str  # "file:line"
    data: dict[str, Any]
    item: MatchInput
    label: bool


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, predicted: bool, label: bool) -> None:
        if predicted and label:
            self.tp += 1
        elif predicted:
            self.fp += 1
        elif label:
            self.fn += 1
        else:
            self.tn += 1

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.fn + self.tn


@dataclass
class Report:
    counts: dict[str, dict[str, Counts]] = field(default_factory=dict)
    misses: list[tuple[str, Case, Match]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_cases(paths: Iterable[Path], problems: list[str]) -> Iterator[Case]:
    """The labelled items of the files; a bad line is reported and skipped."""
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror or exc}")
            continue
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                data = json.loads(line)
                item = MatchInput.from_json(data)
                label = data.get("label")
                if not isinstance(label, bool):
                    raise ValueError("label: expected true or false")
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
                continue
            target = data.get("target") or path.stem
            yield Case(str(target), where, data, item, label)


def evaluate(cases: Iterable[Case], definitions: dict[str, dict[str, Any]]) -> Report:
    report = Report()
    for case in cases:
        definition = definitions.get(case.target)
        if definition is None:
            report.problems.append(f"{case.where}: no target {case.target!r} in the catalogue")
            continue
        try:
            result = compile_rule(definition).match(case.item)
        except DefinitionError as exc:
            report.problems.append(f"{case.where}: {case.target}: {exc}")
            continue
        by_source = report.counts.setdefault(case.target, {})
        for key in (case.item.source, "overall"):
            by_source.setdefault(key, Counts()).add(result.matched, case.label)
        if result.matched != case.label:
            report.misses.append(("false positive" if result.matched else "false negative",
                                  case, result))
    return report


def render(report: Report) -> list[str]:
    lines = []
    for target, by_source in report.counts.items():
        lines.append(f"{target}")
        lines.append(f"  {'source':<8} {'items':>5} {'TP':>4} {'FP':>4} {'FN':>4} {'TN':>4}"
                     f" {'precision':>9} {'recall':>6} {'F1':>5}")
        for source in (*SOURCES, "overall"):
            c = by_source.get(source)
            if c is None:
                continue
            lines.append(f"  {source:<8} {c.total:>5} {c.tp:>4} {c.fp:>4} {c.fn:>4} {c.tn:>4}"
                         f" {c.precision:>9.3f} {c.recall:>6.3f} {c.f1:>5.3f}")
    for kind, case, result in report.misses:
        data = case.data
        family = f" [{data['family']}]" if data.get("family") else ""
        lines.append("")
        lines.append(f"{kind}: {case.target} {data.get('id', case.where)} "
                     f"({case.item.source}){family}")
        lines.append(f"  title:    {case.item.title}")
        lines.append(f"  label:    {data.get('reason', '')}")
        if result.matched:
            lines.append(f"  matched:  {', '.join(result.terms)} in {result.field}: "
                         f"{result.evidence}")
    for problem in report.problems:
        lines.append(f"error: {problem}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        print("usage: python -m alerts.matching.evaluation FILE.jsonl ...", file=sys.stderr)
        return 2
    try:
        definitions = load_definitions(CATALOGUE_FILE)
    except DefinitionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    problems: list[str] = []
    report = evaluate(read_cases(paths, problems), definitions)
    report.problems[:0] = problems
    print("\n".join(render(report)))
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
