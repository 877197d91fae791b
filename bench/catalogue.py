"""One catalogue-wide poll cycle at 1, 100, 1,000 and 10,000 targets: upstream requests,
wall time, matching time and peak memory, for a day's delta on loopback upstreams.

The upstreams are the suite's loopback PubMed and ClinicalTrials.gov
(`tests/fakes/upstream.py`, in a process of its own) serving a day's delta built by
multiplying the recorded records with new ids: --pubs PubMed articles (the recorded
EFetch records, each under a new PMID) and --trials studies (the recorded study pages,
each under a new NCT id), all entered or updated today. Each record's abstract or
summary gains one sentence naming genes and drugs of the synthetic catalogue, so the
matching has candidates to read (`bench/matching.py` builds the same catalogue: the
shipped entries, then targets with invented gene symbols, variant terms and drugs).

Each step runs in a fresh process on a fresh SQLite database holding N targets: the
shipped her2-exon20 alone at N = 1, else the shipped catalogue plus synthetic targets.
It compiles the catalogue (timed apart: it happens once per catalogue version, not per
cycle), then runs `alerts.polling.sweep.poll_catalogue` once, with an NCBI API key's
rate (10 requests/s) and ClinicalTrials.gov's 1 request/s, and reports:

  requests   upstream HTTP requests of the cycle (PubMed + ClinicalTrials.gov)
  wall       the cycle's wall time (fetch, match, store), compilation excluded
  match      the local matching of the fetched records against every target
  compile    compiling the catalogue (cached by version between cycles)
  peak RSS   the step's process high-water mark

and, as the baseline, the requests the per-target polls would make for the same
targets: at least one ESearch, one version check and one page of studies per target (3
per target, a lower bound: no EFetch counted), as a ratio to the catalogue-wide cycle's.

    python bench/catalogue.py                          # 1, 100, 1,000 and 10,000 targets
    python bench/catalogue.py --targets 1 100 --pubs 500 --trials 200
"""

from __future__ import annotations

import argparse
import copy
import logging
import multiprocessing
import random
import re
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from matching import synthetic_catalogue  # noqa: E402
from sqlalchemy import delete, func, insert, select  # noqa: E402

from alerts.config import Settings  # noqa: E402
from alerts.polling.sweep import RuleCache, poll_catalogue  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import Item, ItemTarget, Target, UnmatchedItem  # noqa: E402
from db.session import make_engine, make_sessionmaker, transaction  # noqa: E402
from tests.fakes.upstream import UPSTREAM_DATA, Article, FakeUpstream  # noqa: E402

SEED = 7
CATALOGUE_SIZE = 10_000  # the genes and drugs the delta's records name come from here
_PMID = re.compile(r"<PMID[^>]*>\d+</PMID>")


# -- the upstreams ------------------------------------------------------------------------


def _sentence(definitions: list[dict[str, Any]], rng: random.Random) -> str:
    first, second, third = (rng.choice(definitions) for _ in range(3))
    return (f"{first['genes'][0]} exon 20 mutations and {second['genes'][0]}-positive "
            f"disease were seen; {third['drugs'][0]['name']} was given.")


def _with_sentence(xml: str, sentence: str) -> str:
    if "</Abstract>" in xml:
        return xml.replace("</Abstract>", f"<AbstractText>{sentence}</AbstractText></Abstract>",
                           1)
    return xml.replace("</Article>",
                       f"<Abstract><AbstractText>{sentence}</AbstractText></Abstract></Article>", 1)


def _serve(pubs: int, trials: int, pipe: Connection) -> None:
    """The loopback upstreams with the day's delta; sends its URLs, serves until told."""
    today = datetime.now(UTC).date()
    projected = [p for p in sorted((UPSTREAM_DATA / "ctgov").glob("*.json"))
                 if "full" not in p.name]  # the full records are not what the poll asks for
    fake = FakeUpstream(posted_on=today, ctgov_files=projected)
    rng = random.Random(SEED)
    definitions = [d for d in synthetic_catalogue(CATALOGUE_SIZE, random.Random(SEED)).values()
                   if d.get("drugs")]
    articles, studies = list(fake.articles.values()), list(fake.studies.values())
    fake.articles.clear()
    fake.studies.clear()
    for number in range(pubs):
        pmid = str(90_000_000 + number)
        xml = _PMID.sub(f'<PMID Version="1">{pmid}</PMID>', articles[number % len(articles)].xml,
                        count=1)
        fake.articles[pmid] = Article(pmid, _with_sentence(xml, _sentence(definitions, rng)),
                                      today)
    for number in range(trials):
        study = copy.deepcopy(studies[number % len(studies)])
        protocol = study["protocolSection"]
        nct_id = f"NCT{90_000_000 + number}"
        protocol["identificationModule"]["nctId"] = nct_id
        description = protocol.setdefault("descriptionModule", {})
        description["briefSummary"] = (f"{description.get('briefSummary') or ''} "
                                       f"{_sentence(definitions, rng)}")
        fake.studies[nct_id] = study
    with fake:
        pipe.send((fake.pubmed_base_url, fake.ctgov_base_url))
        pipe.recv()


# -- one step ------------------------------------------------------------------------------


class _MatchTimes(logging.Handler):
    """The sweep's `poll.matched seconds=` lines, summed."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seconds = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"^poll\.matched .*\bseconds=([\d.]+)", record.getMessage())
        if found:
            self.seconds += float(found.group(1))


def _targets(n: int) -> list[dict[str, Any]]:
    definitions = synthetic_catalogue(max(n, 2), random.Random(SEED))
    chosen = ["her2-exon20"] if n == 1 else list(definitions)[:n]
    return [{"slug": slug, "name": slug, "description": "", "match_terms": definitions[slug]}
            for slug in chosen]


def _step(n: int, urls: tuple[str, str], workdir: str, pipe: Connection) -> None:
    url = f"sqlite:///{workdir}/catalogue-{n}.db"
    engine = make_engine(url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    rows = _targets(n)
    with transaction(factory) as session:
        session.execute(delete(Target))  # the migrations' seed: the step's own targets only
        session.execute(insert(Target), rows)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=url, var_dir=Path(workdir) / "var",
        secret_key="bench-secret-key-0123456789", pubmed_base_url=urls[0],
        ctgov_base_url=urls[1], ncbi_api_key="bench", initial_lookback_days=1,
        poll_deadline_seconds=3600, http_timeout_seconds=300,
    )
    rules = RuleCache()
    started = time.perf_counter()
    with transaction(factory) as session:
        rules.get(session)
    compiled = time.perf_counter() - started

    matched = _MatchTimes()
    logger = logging.getLogger("alerts.polling.sweep")
    logger.setLevel(logging.INFO)
    logger.addHandler(matched)
    started = time.perf_counter()
    reports = poll_catalogue(factory, settings, owner="bench", rules=rules)
    wall = time.perf_counter() - started
    failed = [f"{r.source}: {r.error}" for r in reports if r.failed]
    with factory() as session:
        stored = {model.__tablename__: session.scalar(select(func.count()).select_from(model))
                  for model in (Item, ItemTarget, UnmatchedItem)}
    per_target = 3 * len(rows)  # an ESearch, a version check and a page of studies each
    pipe.send({
        "targets": n, "requests": sum(r.requests for r in reports), "wall": wall,
        "match": matched.seconds, "compile": compiled,
        "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "per_target_requests": per_target, "failed": failed, **stored,
    })
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", type=int, nargs="+", default=[1, 100, 1_000, 10_000])
    parser.add_argument("--pubs", type=int, default=5_000)
    parser.add_argument("--trials", type=int, default=2_000)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    server = context.Process(target=_serve, args=(args.pubs, args.trials, theirs), daemon=True)
    server.start()
    theirs.close()  # so a server that dies ends recv() with EOFError instead of a hang
    urls = ours.recv()
    print(f"a day's delta: {args.pubs:,} publications, {args.trials:,} trials "
          f"(loopback upstreams; NCBI at 10 requests/s, ClinicalTrials.gov at 1/s)")
    print("| targets | requests | per-target polls (lower bound) | wall | match | compile "
          "| peak RSS | items | links | unmatched kept |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-catalogue-") as workdir:
            for n in args.targets:
                mine, child = context.Pipe()
                step = context.Process(target=_step, args=(n, urls, workdir, child))
                step.start()
                child.close()
                try:
                    result = mine.recv()
                except EOFError:
                    step.join()
                    raise SystemExit(f"the {n:,}-target step died (exit {step.exitcode})") from None
                step.join()
                ratio = result["per_target_requests"] / max(result["requests"], 1)
                print(f"| {n:,} | {result['requests']} | {result['per_target_requests']:,} "
                      f"({ratio:,.1f}x) | {result['wall']:.1f} s | {result['match']:.1f} s "
                      f"| {result['compile']:.1f} s | {result['rss']:,.0f} MB "
                      f"| {result['items']:,} | {result['item_targets']:,} "
                      f"| {result['unmatched_items']:,} |", flush=True)
                for failure in result["failed"]:
                    print(f"  failed: {failure}")
    finally:
        ours.send("stop")
        server.join(timeout=30)


if __name__ == "__main__":
    main()
