"""How fast one day's delta is matched against a large catalogue, against per-target rules.

Builds a synthetic catalogue of --targets targets (gene symbols, variant terms, drugs
with codes, in the shipped her2-exon20 entry's format, plus her2-exon20 itself) and a
day's delta of --pubs publications and --trials trials made from the labelled evaluation
items, each also naming a few of the catalogue's genes and drugs so that the candidate
step has work to do. Then measures, in this process:

  a) baseline: every target's own `compile_rule(...).match(item)` for every item, on a
     sample of --sample targets, scaled to the whole catalogue;
  b) `compile_catalogue(definitions).match(item)`: one Aho-Corasick pass per item, the
     per-target sentence rule only for the targets it names (compilation included).

and prints both (wall and CPU time: on a shared machine the CPU time is the figure to
compare with the goal), their ratio, and how many target rules ran per item on average.

    python bench/matching.py                       # 10,000 targets, 5,000 + 2,000 items
    python bench/matching.py --targets 1000 --pubs 500 --trials 200
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import string
import time
from pathlib import Path
from typing import Any

from alerts.matching import MatchInput, compile_catalogue, compile_rule
from alerts.matching.catalogue import CATALOGUE_FILE, load_definitions
from alerts.matching.rule import Document

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "tests" / "data" / "eval" / "her2-exon20.jsonl"


def synthetic_catalogue(n: int, rng: random.Random) -> dict[str, dict[str, Any]]:
    definitions: dict[str, dict[str, Any]] = dict(load_definitions(CATALOGUE_FILE))
    used: set[str] = set()
    while len(definitions) < n:
        symbol = "".join(rng.choices(string.ascii_uppercase, k=rng.randint(3, 5)))
        symbol += str(rng.randint(1, 19))
        if symbol in used:
            continue
        used.add(symbol)
        i = len(definitions)
        definitions[f"t{i}"] = {
            "slug": f"t{i}",
            "kind": rng.choice(["variant", "variant", "fusion", "protein"]),
            "genes": [symbol, f"{symbol[:-1]}-{symbol[-1]}"],
            "variant_terms": [f"exon {rng.randint(2, 30)}", f"{symbol[0]}{rng.randint(10, 900)}X"],
            "status_terms": ["positive"],
            "drugs": [{"name": f"{symbol.lower()}tinib",
                       "codes": [f"ZZ-{rng.randint(1000, 99999)}"],
                       "brands": [f"{symbol.title()}ra"]}],
        }
    return definitions


def day(pubs: int, trials: int, definitions: dict[str, dict[str, Any]],
        rng: random.Random) -> list[MatchInput]:
    rows = [json.loads(line) for line in EVAL.read_text().splitlines() if line.strip()]
    genes = [d["genes"][0] for d in definitions.values()]
    drugs = [d["drugs"][0]["name"] for d in definitions.values() if d.get("drugs")]
    items = []
    for source, count in (("pubmed", pubs), ("ctgov", trials)):
        pool = [r for r in rows if r["source"] == source]
        for _ in range(count):
            row = dict(rng.choice(pool))
            extra = (f" {rng.choice(genes)} exon 20 mutations and {rng.choice(genes)}-positive"
                     f" disease were seen; {rng.choice(drugs)} was given.")
            row["summary"] = (row.get("summary") or "") + extra
            items.append(MatchInput.from_json(row))
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--pubs", type=int, default=5_000)
    parser.add_argument("--trials", type=int, default=2_000)
    parser.add_argument("--sample", type=int, default=20)
    args = parser.parse_args()
    rng = random.Random(7)
    definitions = synthetic_catalogue(args.targets, rng)
    items = day(args.pubs, args.trials, definitions, rng)

    sample = rng.sample(sorted(definitions), min(args.sample, len(definitions)))
    started, cpu = time.perf_counter(), time.process_time()
    for slug in sample:
        rule = compile_rule(definitions[slug])
        sum(rule.match(item).matched for item in items)
    scale = len(definitions) / len(sample)
    baseline = (time.perf_counter() - started) * scale
    baseline_cpu = (time.process_time() - cpu) * scale

    started, cpu = time.perf_counter(), time.process_time()
    catalogue = compile_catalogue(definitions)
    compiled = time.perf_counter() - started
    matches = sum(len(catalogue.match(item)) for item in items)
    elapsed = time.perf_counter() - started
    elapsed_cpu = time.process_time() - cpu
    candidates = sum(len(catalogue.candidates(Document(item))) for item in items)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"{len(definitions):,} targets, {len(items):,} items "
          f"({args.pubs:,} publications, {args.trials:,} trials)")
    print(f"a) per-target rules (scaled from {len(sample)} targets): {baseline:10.1f} s wall "
          f"{baseline_cpu:10.1f} s CPU")
    print(f"b) compile_catalogue + match:              {elapsed:10.1f} s wall "
          f"{elapsed_cpu:10.1f} s CPU (compile {compiled:.2f} s wall; "
          f"{candidates / len(items):.1f} candidate targets per item; {matches:,} matches)")
    print(f"ratio a/b: {baseline / elapsed:,.0f}x wall, {baseline_cpu / elapsed_cpu:,.0f}x CPU; "
          f"peak RSS {peak:,.0f} MB")


if __name__ == "__main__":
    main()
