"""The whole job "watch N feeds and mail me what is new", against rss2email on the same feeds.

The product promise is measured here, end to end, not an adapter alone: a first run over
200 feeds x 50 entries, from nothing fetched to the mail in the subscriber's inbox, at
least 4x faster than rss2email, and 8x when every feed answers in 50 ms; a re-poll with
nothing new costs one conditional GET per feed and no parse.

For each --delay-ms, one loopback feed server (bench/feedserver.py, in a process of its
own, spread over --hosts ports) and one SMTP sink (bench/digests.py's, in a process of its
own) serve both tools:

  ours      a fresh migrated SQLite database with a target holding the N feeds (its match
            terms are met by every synthetic entry, so all of them are new and kept) and
            one subscriber with an active daily alert; then, in a fresh process, as
            `alerts poll` and `alerts digests send` would: poll(source=rss) + send_due at
            the 08:00 slot, which mails the subscriber's digest. The wall time is the
            child process's, imports and the parser pool's start included, like r2e's.
            (The service, `alerts run`, pays neither: it has imported and keeps its pool.)
  r2e       rss2email in a throwaway venv (never this project's), its config and data in
            a temp dir, sending by SMTP to the same sink, the same N feeds added; `r2e run`
            timed with its default one mail per entry, and again with `digest = True` (one
            mail per feed, its most favourable mode).
  re-poll   the second run of each, with nothing new: our requests (must be N, all 304)
            and parse calls (must be 0, read from the adapter's own counter), and r2e's
            second `r2e run`.

Items stored are counted after each run, outside the timing: ours, the target's links in
the database; r2e, the entries its data file marks seen. A run that did not do the whole
job (a feed failed, an entry not kept, a mail missing) stops the script, not a figure.

Every timing is the median of --repeat runs (the machine may be shared; the load average
is printed). rss2email is installed on first use into --r2e-venv (default
/tmp/r2e-venv) and reused; --r2e PATH points at an existing `r2e` instead.

    python bench/feeds_e2e.py                          # 200 feeds x 50 entries, 0 and 50 ms
    python bench/feeds_e2e.py --delay-ms 0 --repeat 1 --feeds 50
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

# Only the standard library at the top: the parser pool's workers re-import the main
# module (multiprocessing does, for forkserver and spawn), and this one stays light. The
# `alerts` command's workers re-import alerts.cli instead (~0.4 s of CPU each, once per
# pool), which these figures do not include.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SLUG = "bench-feeds"
SUBSCRIBER = "reader@example.org"
#: Every synthetic entry's summary says the patients "received the study drug"
#: (feedserver._PARAGRAPH): a selective drug term alone meets the match rule.
MATCH_DRUGS = ["study drug"]
ACTIVATED_AT = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
POLL_AT = datetime(2026, 5, 1, 7, 0, tzinfo=UTC)
#: The daily 08:00 UTC slot: after the alert's activation and the poll's events.
SEND_AT = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
REPOLL_AT = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
DEFAULT_R2E_VENV = Path("/tmp/r2e-venv")


# --- our side: setup in this process, each run in a child process ----------------------


def _settings(db_path: Path, smtp_port: int) -> Any:
    from alerts.config import Settings

    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=f"sqlite:///{db_path}",
        var_dir=db_path.parent / "var",
        secret_key="bench-secret-key-0123456789abcdef",  # type: ignore[arg-type]
        public_url="https://alerts.example.org",  # type: ignore[arg-type]
        # Only the rss source is polled; should anything reach for the others, it fails
        # on a name that does not resolve instead of calling a real upstream.
        pubmed_base_url="http://pubmed.invalid/entrez/eutils",  # type: ignore[arg-type]
        ctgov_base_url="http://ctgov.invalid/api/v2",  # type: ignore[arg-type]
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
    )


def make_database(db_path: Path, feed_urls: Sequence[str]) -> None:
    """A migrated database: the bench target with the feeds, one active daily alert."""
    from alerts.targets import service as targets
    from alerts.targets.changes import add_target
    from db.migrate import upgrade
    from db.models import Alert, Subscriber
    from db.session import make_engine, make_sessionmaker, transaction

    engine = make_engine(_settings(db_path, 25).database_url)
    try:
        upgrade(engine)
        with transaction(make_sessionmaker(engine)) as session:
            target = add_target(session, {
                "slug": SLUG, "name": "Feed benchmark", "description": "", "kind": "protein",
                "genes": ["BENCHGENE1"], "drugs": [{"name": drug} for drug in MATCH_DRUGS],
            }, by="bench", now=ACTIVATED_AT).target
            for url in feed_urls:
                targets.add_feed(session, SLUG, url)
            subscriber = Subscriber(
                email=SUBSCRIBER,
                verified_at=ACTIVATED_AT,
                mail_status="ok",
                created_at=ACTIVATED_AT,
            )
            session.add(subscriber)
            session.flush()
            session.add(
                Alert(
                    subscriber_id=subscriber.id,
                    target_id=target.id,
                    frequency="daily",
                    send_hour=SEND_AT.hour,
                    timezone="UTC",
                    status="active",
                    activated_at=ACTIVATED_AT,
                    created_at=ACTIVATED_AT,
                )
            )
    finally:
        engine.dispose()


def child(phase: str, db_path: Path, smtp_port: int) -> dict[str, Any]:
    """One run of ours, in this (fresh) process: `first` = poll + send_due, `repoll` =
    poll alone. Returns what the parent reports."""
    from alerts.mail.factory import make_mailer
    from alerts.polling.service import poll
    from alerts.sources import registry
    from alerts.sources.base import SourceName
    from db.session import make_engine, make_sessionmaker

    # Keep the adapter poll() makes, to read its parse counter afterwards.
    adapters: list[Any] = []
    make_rss = registry.REGISTRY[SourceName.rss]

    def recording(settings: Any, client: Any) -> Any:
        adapters.append(make_rss(settings, client))
        return adapters[-1]

    registry.REGISTRY[SourceName.rss] = recording

    settings = _settings(db_path, smtp_port)
    engine = make_engine(settings.database_url)
    factory = make_sessionmaker(engine)
    started = time.perf_counter()
    [report] = poll(
        factory,
        settings,
        source=SourceName.rss,
        target_slug=SLUG,
        now=REPOLL_AT if phase == "repoll" else POLL_AT,
        owner="bench",
    )
    polled = time.perf_counter()
    result: dict[str, Any] = {
        "poll_s": polled - started,
        "requests": report.requests,
        "new": report.new,
        "failed": report.error,
        "parses": sum(a.parse_calls for a in adapters),
    }
    if phase == "first":
        from alerts.digests.delivery.send import send_due

        sent = send_due(factory, settings, make_mailer(settings), now=SEND_AT, owner="bench")
        result["send_s"] = time.perf_counter() - polled
        result["sent"] = sent.sent
        result["send_error"] = sent.error
    engine.dispose()
    result["worker_cpu_s"] = _parser_workers_cpu()
    return result


def _parser_workers_cpu() -> float:
    """CPU seconds the shared parser pool's workers used (Linux /proc; 0 elsewhere). They
    are forked by the forkserver, so the parent's RUSAGE_CHILDREN never sees them."""
    from alerts.sources import rss

    pool = rss._pool  # noqa: SLF001 (a benchmark may look inside)
    if pool is None:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in list(pool._processes or {}):  # noqa: SLF001
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return total


def _run_child(phase: str, db_path: Path, smtp_port: int) -> dict[str, Any]:
    """Run `child` in a fresh interpreter (the caller times the whole process)."""
    command = [
        sys.executable,
        __file__,
        "--child",
        phase,
        "--db",
        str(db_path),
        "--smtp-port",
        str(smtp_port),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"our {phase} run failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- rss2email ---------------------------------------------------------------------------


def r2e_executable(args: argparse.Namespace) -> Path:
    """The `r2e` to run: --r2e, else the one in --r2e-venv, installed there on first use
    (a venv of its own: rss2email never enters this project's environment)."""
    if args.r2e:
        return Path(args.r2e)
    venv: Path = args.r2e_venv
    r2e = venv / "bin" / "r2e"
    if not r2e.exists():
        print(f"installing rss2email into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "rss2email"], check=True)
    return r2e


def make_r2e_setup(
    directory: Path, r2e: Path, feed_urls: Sequence[str], smtp_port: int, *, digest: bool
) -> None:
    """rss2email's config and data file in `directory`, the feeds added (one `r2e
    opmlimport`: the same as N `r2e add` without N interpreter starts)."""
    directory.mkdir(parents=True)
    lines = [
        "[DEFAULT]",
        f"to = {SUBSCRIBER}",
        "from = r2e@example.org",
        "email-protocol = smtp",
        f"smtp-server = 127.0.0.1:{smtp_port}",
        "smtp-auth = False",
        "smtp-ssl = False",
        f"digest = {digest}",
    ]
    (directory / "r2e.cfg").write_text("\n".join(lines) + "\n")
    outlines = "".join(
        f'<outline type="rss" text="feed{i}" xmlUrl={quoteattr(url)}/>'
        for i, url in enumerate(feed_urls)
    )
    opml = directory / "feeds.opml"
    opml.write_text(
        f'<?xml version="1.0"?><opml version="2.0"><head/><body>{outlines}</body></opml>'
    )
    _r2e(r2e, directory, "opmlimport", str(opml))
    listed = _r2e(r2e, directory, "list").stdout.count("\n")
    if listed != len(feed_urls):
        raise SystemExit(f"rss2email lists {listed} feeds, expected {len(feed_urls)}")


def _r2e(r2e: Path, directory: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    command = [str(r2e), "-c", str(directory / "r2e.cfg"), "-d", str(directory / "r2e.json"), *argv]
    done = subprocess.run(command, capture_output=True, text=True)
    # r2e logs each feed at INFO on stderr; keep the log next to the data for a post-mortem.
    with (directory / "r2e.log").open("a") as log:
        log.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"r2e {argv[0]} failed:\n{done.stderr[-3000:]}")
    errors = [line for line in done.stderr.splitlines() if "[ERROR]" in line]
    if errors:
        raise SystemExit(f"r2e {argv[0]}: {len(errors)} errors, first: {errors[0]}")
    return done


# --- measuring -----------------------------------------------------------------------------

FIRST = "first run"
REPOLL = "re-poll, nothing new"
#: The product's goals for 200 feeds x 50 entries: ours at least this many times faster
#: than rss2email on the first run, per server delay in ms.
GOAL_WORKLOAD = (200, 50)
GOALS = {0.0: 4.0, 50.0: 8.0}


@dataclass
class Sample:
    seconds: float
    #: CPU seconds of the run's processes: the child (and what it waited for) plus, for
    #: ours, its parser workers.
    cpu: float
    emails: int
    requests: int
    not_modified: int
    items: int
    detail: dict[str, Any]


@dataclass
class Row:
    scenario: str
    tool: str
    samples: list[Sample]

    @property
    def seconds(self) -> float:
        return self.median(lambda s: s.seconds)

    def median(self, pick: Callable[[Sample], float]) -> float:
        return statistics.median(pick(s) for s in self.samples)


@dataclass
class Contender:
    """One tool: `prepare(n)` makes the fresh state of repeat n (nothing fetched, nothing
    sent), `first` and `repoll` run on it and return details for the report, `items`
    counts what the state holds afterwards."""

    tool: str
    prepare: Callable[[int], Path]
    first: Callable[[Path], dict[str, Any]]
    repoll: Callable[[Path], dict[str, Any]]
    items: Callable[[Path], int]


class Sink:
    """bench/digests.py's minimal SMTP sink, in a process of its own as a real relay is
    (it offers PIPELINING, as Postfix does; aiosmtpd would spend more CPU per message
    than rss2email spends making one). `messages` is what it accepted so far."""

    def __init__(self) -> None:
        from digests import SinkProcess

        self._sink = SinkProcess("fast", pipelining=True)
        self.port: int = self._sink.port

    @property
    def messages(self) -> int:
        return int(self._sink.stats()["messages"])

    def close(self) -> None:
        self._sink.close()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _measure(
    run: Callable[[], dict[str, Any]], items: Callable[[], int], served: Any, sink: Sink
) -> Sample:
    stats, mails = served.stats(), sink.messages
    cpu_before = _children_cpu()
    started = time.perf_counter()
    detail = run()
    seconds = time.perf_counter() - started
    cpu = _children_cpu() - cpu_before + detail.get("worker_cpu_s", 0.0)
    after = served.stats()
    return Sample(
        seconds=seconds,
        cpu=cpu,
        emails=sink.messages - mails,
        requests=after["requests"] - stats["requests"],
        not_modified=after["not_modified"] - stats["not_modified"],
        items=items(),
        detail=detail,
    )


def ours(work: Path, feed_urls: Sequence[str], sink: Sink) -> Contender:
    template = work / "template.db"
    make_database(template, feed_urls)

    def prepare(n: int) -> Path:
        db_path = work / f"ours-{n}" / "bench.db"
        db_path.parent.mkdir()
        shutil.copyfile(template, db_path)
        return db_path

    def running(phase: str) -> Callable[[Path], dict[str, Any]]:
        def run(db_path: Path) -> dict[str, Any]:
            return _run_child(phase, db_path, sink.port)

        return run

    def items(db_path: Path) -> int:
        with sqlite3.connect(db_path) as connection:
            [(count,)] = connection.execute("SELECT count(*) FROM item_targets")
        return int(count)

    return Contender("ours", prepare, running("first"), running("repoll"), items)


def rss2email(
    work: Path, r2e: Path, feed_urls: Sequence[str], sink: Sink, *, digest: bool
) -> Contender:
    pristine = work / f"r2e-{'digest' if digest else 'default'}"
    make_r2e_setup(pristine, r2e, feed_urls, sink.port, digest=digest)

    def prepare(n: int) -> Path:
        directory = work / f"{pristine.name}-{n}"
        shutil.copytree(pristine, directory)
        return directory

    def run(directory: Path) -> dict[str, Any]:
        _r2e(r2e, directory, "run")
        return {}

    def items(directory: Path) -> int:
        data = json.loads((directory / "r2e.json").read_text())
        return sum(len(feed.get("seen") or ()) for feed in data["feeds"])

    tool = f"r2e ({'digest = True' if digest else 'default'})"
    return Contender(tool, prepare, run, run, items)


def measure(contenders: Sequence[Contender], served: Any, sink: Sink, repeat: int) -> list[Row]:
    """Every contender's first run then re-poll, repeat after repeat, the tools taking
    turns: a change in the machine's load falls on all of them alike."""
    rows = {
        (scenario, c.tool): Row(scenario, c.tool, [])
        for scenario in (FIRST, REPOLL)
        for c in contenders
    }
    for n in range(repeat):
        for contender in contenders:
            state = contender.prepare(n)
            for scenario, step in ((FIRST, contender.first), (REPOLL, contender.repoll)):
                sample = _measure(
                    functools.partial(step, state),
                    functools.partial(contender.items, state),
                    served,
                    sink,
                )
                rows[scenario, contender.tool].samples.append(sample)
    return list(rows.values())


def check(rows: Sequence[Row], feeds: int, entries: int) -> None:
    """Refuse figures from runs that did not do the job."""
    for row in rows:
        for sample in row.samples:
            d, problem = sample.detail, None
            if sample.items != feeds * entries:
                problem = f"{sample.items} items stored, expected {feeds * entries}"
            elif sample.requests != feeds:
                problem = f"{sample.requests} requests"
            elif row.scenario == REPOLL and (sample.not_modified != feeds or sample.emails):
                problem = f"{sample.not_modified} answered 304, {sample.emails} mails"
            elif row.tool != "ours":
                expected = feeds if "digest" in row.tool else feeds * entries
                if row.scenario == FIRST and sample.emails != expected:
                    problem = f"{sample.emails} mails, expected {expected}"
            elif d["failed"] or d["parses"] != (feeds if row.scenario == FIRST else 0):
                problem = f"error {d['failed']!r}, {d['parses']} parses"
            elif row.scenario == FIRST and (
                d["new"] != feeds * entries or d["sent"] != 1 or sample.emails != 1
            ):
                problem = f"{d['new']} new items, {d['sent']} digests sent, sink {sample.emails}"
            elif row.scenario == REPOLL and d["new"]:
                problem = f"{d['new']} new items"
            if problem:
                raise SystemExit(f"{row.tool}, {row.scenario}: {problem} ({d})")


# --- the report ------------------------------------------------------------------------------


def print_table(
    rows: Sequence[Row], args: argparse.Namespace, delay: float, load_before: str
) -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\n{args.feeds} feeds x {args.entries} entries on {args.hosts} loopback hosts, "
        f"server delay {delay:g} ms; {os.cpu_count()} CPUs, load average {load_before} before, "
        f"{load} after; median of {args.repeat} (min-max)"
    )
    header = (
        f"{'scenario':<21} {'tool':<19} {'wall s':>7} {'(min-max)':>13} {'CPU s':>6} {'emails':>6} "
        f"{'items':>6} {'requests':>8} {'304s':>5} {'parses':>6} {'ours is':>8}"
    )
    print(header)
    print("-" * len(header))
    mine = {row.scenario: row for row in rows if row.tool == "ours"}
    for row in rows:
        ratio = "" if row.tool == "ours" else f"{row.seconds / mine[row.scenario].seconds:.1f}x"
        spread = f"({min(s.seconds for s in row.samples):.2f}-"
        spread += f"{max(s.seconds for s in row.samples):.2f})"
        parses = f"{row.median(lambda s: s.detail['parses']):.0f}" if row.tool == "ours" else "-"
        print(
            f"{row.scenario:<21} {row.tool:<19} {row.seconds:7.2f} {spread:>13} "
            f"{row.median(lambda s: s.cpu):6.2f} "
            f"{row.median(lambda s: s.emails):6.0f} {row.median(lambda s: s.items):6.0f} "
            f"{row.median(lambda s: s.requests):8.0f} {row.median(lambda s: s.not_modified):5.0f} "
            f"{parses:>6} {ratio:>8}"
        )
    first, repoll = mine[FIRST], mine[REPOLL]
    print(
        f"ours, first run: poll {first.median(lambda s: s.detail['poll_s']):.2f} s, send_due "
        f"{first.median(lambda s: s.detail['send_s']):.2f} s (one digest); the rest is the "
        "process: interpreter, imports, exit"
    )
    print(
        f"ours, re-poll: poll {repoll.median(lambda s: s.detail['poll_s']):.2f} s; every run "
        f"{args.feeds} conditional GETs, all answered 304, no parse (checked)"
    )
    print(
        "CPU s: user + system time of the run's processes (ours: the process and its parser "
        "workers, not the forkserver's start); the server and the SMTP sink are not counted"
    )
    goal = GOALS.get(delay)
    if goal is not None and (args.feeds, args.entries) == GOAL_WORKLOAD:
        verdicts = [
            f"{row.seconds / first.seconds:.1f}x vs {row.tool}"
            + (" (met)" if row.seconds / first.seconds >= goal else " (NOT met)")
            for row in rows
            if row.scenario == FIRST and row.tool != "ours"
        ]
        print(f"goal, first run {goal:g}x faster than rss2email: {'; '.join(verdicts)}")


def run(args: argparse.Namespace) -> None:
    from feedserver import feed_server_process

    r2e = None if args.skip_r2e else r2e_executable(args)
    sink = Sink()
    with contextlib.closing(sink), tempfile.TemporaryDirectory(prefix="feeds-e2e-") as temp:
        for delay in args.delay_ms:
            work = Path(temp) / f"delay-{delay:g}"
            work.mkdir()
            with feed_server_process(
                args.feeds, args.entries, delay_ms=delay, hosts=args.hosts
            ) as served:
                contenders = [ours(work, served.urls, sink)]
                if r2e is not None:
                    contenders += [
                        rss2email(work, r2e, served.urls, sink, digest=digest)
                        for digest in (False, True)
                    ]
                load_before = ", ".join(f"{x:.2f}" for x in os.getloadavg())
                rows = measure(contenders, served, sink, args.repeat)
            check(rows, args.feeds, args.entries)
            print_table(rows, args, delay, load_before)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--delay-ms", type=float, nargs="+", default=[0.0, 50.0])
    parser.add_argument("--hosts", type=int, default=20, help="loopback ports the feeds share")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--r2e", help="an installed r2e executable to use")
    parser.add_argument(
        "--r2e-venv",
        type=Path,
        default=DEFAULT_R2E_VENV,
        help="where rss2email is installed on first use",
    )
    parser.add_argument("--skip-r2e", action="store_true", help="measure ours only")
    parser.add_argument("--child", choices=("first", "repoll"), help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--smtp-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.db, args.smtp_port)))
    else:
        run(args)


if __name__ == "__main__":
    main()
