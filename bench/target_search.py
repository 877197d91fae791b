"""How fast `GET /api/v1/targets?q=` is with a catalogue of 10,000 targets, against the
same request over today's catalogue of 55 (the baseline, run first in this script).

Synthetic targets look like the catalogue's entries: a gene of their own with four
synonyms, 15 variant terms from a shared vocabulary and 2 of their own, four drugs with
two codes and a brand each, three related drugs from a shared pool (about 40 terms).
Figures: the first request (it builds the index), then the median of later requests
per query (the index is reused; each still reads the catalogue's version), and the
version query alone. Run: .venv/bin/python bench/target_search.py [--targets N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import delete, insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerts.app import create_app  # noqa: E402
from alerts.config import Settings  # noqa: E402
from alerts.targets import repository  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import Target  # noqa: E402
from db.session import make_engine, make_sessionmaker  # noqa: E402

CATALOGUE = Path(__file__).resolve().parents[1] / "alerts" / "targets" / "catalogue.toml"
RULE_KEYS_OUT = {"slug", "name", "description", "pubmed_query", "ctgov_term", "ctgov_intr",
                 "sources"}
QUERIES = ["zongertinib", "ERBB2", "HER2 ex20", "BI1810631", "kras g12c", "mutation",
           "ex", "syn"]
VOCABULARY = ["mutation", "mutations", "mutant", "fusion", "fusions", "rearrangement",
              "amplification", "exon 20 insertion", "exon 19 deletion", "G12C", "V600E",
              "L858R", "T790M", "overexpression", "positive", "deletion", "insertion",
              "splice site", "kinase domain", "truncating", "hotspot", "gain of function"]


def real_rows() -> list[dict[str, Any]]:
    entries = tomllib.loads(CATALOGUE.read_text(encoding="utf-8"))["targets"]
    return [{"slug": e["slug"], "name": e["name"], "description": e["description"],
             "match_terms": {k: v for k, v in e.items() if k not in RULE_KEYS_OUT}}
            for e in entries]


def synthetic_rows(count: int) -> list[dict[str, Any]]:
    rnd = random.Random(7)

    def word(n: int) -> str:
        return "".join(rnd.choice(string.ascii_lowercase) for _ in range(n))

    pool = [word(9) + "ib" for _ in range(300)]
    rows = []
    for n in range(count):
        gene = word(3).upper() + str(n)
        drugs = [{"name": word(8) + "nib", "codes": [f"{word(2).upper()}-{n}{d}",
                                                     f"{word(3).upper()}{n}{d}"],
                  "brands": [word(7).capitalize()], "shared_with": []} for d in range(4)]
        rows.append({
            "slug": f"synthetic-{n:05d}", "name": f"{gene} {rnd.choice(VOCABULARY)}",
            "description": f"{gene} and the drugs aimed at it.",
            "match_terms": {
                "kind": "variant", "genes": [gene, f"{gene}-1", word(5).upper(), word(6),
                                             f"{word(4)} receptor {n}"],
                "variant_terms": rnd.sample(VOCABULARY, 15) + [f"{word(1).upper()}{n}X",
                                                               f"p.{word(1).upper()}{n}Y"],
                "variant_patterns": [], "drugs": drugs, "related_drugs": rnd.sample(pool, 3),
            },
        })
    return rows


def timed(client: TestClient, q: str) -> float:
    start = time.perf_counter()
    response = client.get("/api/v1/targets", params={"q": q, "limit": 20})
    elapsed = time.perf_counter() - start
    assert response.status_code == 200, response.text
    return elapsed


def measure(directory: Path, rows: list[dict[str, Any]], label: str) -> dict[str, float]:
    url = f"sqlite:///{directory / (label + '.db')}"
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(delete(Target))
        for chunk in range(0, len(rows), 1000):
            connection.execute(insert(Target), rows[chunk:chunk + 1000])
    settings = Settings(database_url=url, var_dir=directory / "var",
                        secret_key="bench-secret-key-0123456789")
    app = create_app(settings, engine=engine)
    figures: dict[str, float] = {}
    with TestClient(app) as client:
        figures["first request (builds the index)"] = timed(client, "zongertinib")
        for q in QUERIES:
            figures[f"q={q!r}"] = statistics.median(timed(client, q) for _ in range(15))
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        version = []
        for _ in range(15):
            start = time.perf_counter()
            repository.catalogue_version(session)
            version.append(time.perf_counter() - start)
    figures["version query alone"] = statistics.median(version)
    engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        base = real_rows()
        baseline = measure(directory, base, "baseline")
        large = measure(directory, base + synthetic_rows(args.targets - len(base)), "large")
    print(f"GET /api/v1/targets?q=...&limit=20, SQLite: {len(base)} targets (baseline) "
          f"vs {args.targets:,}")
    print(f"{'':40} {'baseline ms':>12} {'large ms':>10} {'ratio':>7}")
    for name, seconds in large.items():
        print(f"{name:40} {baseline[name] * 1000:12.1f} {seconds * 1000:10.1f} "
              f"{seconds / baseline[name]:7.1f}")


if __name__ == "__main__":
    main()
