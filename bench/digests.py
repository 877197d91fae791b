"""How fast digests go out end to end, against the raw SMTP rate of the same messages.

Seeds N subscribers (one active daily alert each on the seeded HER2 exon 20 target) and
--events events for the target into a SQLite file, then measures, each in a process of
its own so peak memory is the phase's own:

  a) raw SMTP throughput: N copies of one rendered digest (same size as the real ones)
     over one reused smtplib connection;
  b) `send_due` end to end: plan + render + send + record, on SQLite;
  c) b) again with 2N subscribers, to show peak RSS stays flat.

The SMTP sink runs in the measuring process (a thread), as the goal was set. It is a
minimal asyncio sink by default; aiosmtpd spends ~3 ms of CPU per 20 KB message in that
same process (it reads DATA line by line), which would make it, not the sender, the
bottleneck: `--sink aiosmtpd` shows that, and the "sink check" line measures both.

    python bench/digests.py                 # N = 10,000
    python bench/digests.py --n 2000 --events 20 --workers 0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select  # noqa: E402

from alerts.config import Settings  # noqa: E402
from db.models import (  # noqa: E402
    Alert,
    Digest,
    Item,
    ItemEvent,
    ItemTarget,
    SourceState,
    Subscriber,
    Target,
)

T0 = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
NOW = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)  # the daily 08:00 UTC slot
CHUNK = 5000


# --- a small, fast SMTP sink ------------------------------------------------------------


class _SinkProtocol(asyncio.Protocol):
    """Just enough ESMTP for smtplib: EHLO, MAIL, RCPT, DATA (found with one bytes.find
    per read, not line by line), RSET, NOOP, QUIT."""

    def __init__(self, sink: FastSink) -> None:
        self.sink = sink
        self.buffer = b""
        self.in_data = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(b"220 sink ESMTP\r\n")  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        replies = []
        while True:
            if self.in_data:
                if self.buffer.startswith(b".\r\n"):
                    end = 0
                else:
                    found = self.buffer.find(b"\r\n.\r\n")
                    if found < 0:
                        break
                    end = found + 2
                self.sink.messages += 1
                self.sink.bytes += end
                self.buffer = self.buffer[end + 3 :]
                self.in_data = False
                replies.append(b"250 2.0.0 accepted\r\n")
                continue
            newline = self.buffer.find(b"\r\n")
            if newline < 0:
                break
            verb = self.buffer[:4].upper()
            self.buffer = self.buffer[newline + 2 :]
            if verb == b"EHLO":
                replies.append(b"250-sink\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n")
            elif verb == b"DATA":
                self.in_data = True
                replies.append(b"354 end with <CRLF>.<CRLF>\r\n")
            elif verb == b"QUIT":
                replies.append(b"221 bye\r\n")
                self.transport.write(b"".join(replies))
                self.transport.close()
                return
            else:
                replies.append(b"250 OK\r\n")
        if replies:
            self.transport.write(b"".join(replies))


class FastSink:
    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            server = self._loop.run_until_complete(
                self._loop.create_server(lambda: _SinkProtocol(self), "127.0.0.1", 0)
            )
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        threading.Thread(target=serve, daemon=True).start()
        ready.wait()


class AiosmtpdSink:
    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.messages += 1
                return "250 accepted"

        self.messages = 0
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        Controller(Handler(), hostname="127.0.0.1", port=self.port).start()


def start_sink(kind: str) -> Any:
    return AiosmtpdSink() if kind == "aiosmtpd" else FastSink()


# --- the dataset -------------------------------------------------------------------------


def bench_settings(directory: Path, port: int = 25) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=f"sqlite:///{directory / 'bench.db'}",
        var_dir=directory / "var",
        secret_key="bench-secret-key-0123456789abcdef",
        public_url="https://alerts.example.org",
        smtp_host="127.0.0.1",
        smtp_port=port,
    )


def seed(directory: Path, subscribers: int, events: int) -> None:
    """A migrated database with the subscribers, their alerts and the events."""
    from db.migrate import upgrade
    from db.session import make_engine, make_sessionmaker, transaction

    engine = make_engine(bench_settings(directory).database_url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    with transaction(factory) as session:
        target_id = session.scalars(select(Target.id).where(Target.slug == "her2-exon20")).one()
        kinds = ["trial", "trial"] + ["publication"] * max(events - 4, 0) + ["news", "news"]
        for n, kind in enumerate(kinds[:events]):
            source = {"trial": "ctgov", "publication": "pubmed", "news": "rss"}[kind]
            external_id = {
                "ctgov": f"NCT0{6000000 + n}",
                "pubmed": f"{40000000 + n}",
                "rss": f"https://news.example.org/her2/{n}",
            }[source]
            item = Item(
                source=source,
                external_id=external_id,
                kind=kind,
                title=f"HER2 exon 20 insertion NSCLC: zongertinib and sevabertinib update {n}, "
                "with a title as long as a real one",
                url=external_id if source == "rss" else f"https://example.org/{n}",
                published_at=T0 - timedelta(days=n % 5),
                first_seen_at=T0,
                data={"feed_title": "Oncology Wire"} if source == "rss" else {},
            )
            session.add(item)
            session.flush()
            at = T0 + timedelta(hours=1, minutes=n)
            session.add(
                ItemTarget(
                    item_id=item.id,
                    target_id=target_id,
                    matched_terms=["HER2", "exon 20"],
                    created_at=at,
                )
            )
            updated = kind == "trial" and n % 2 == 1
            session.add(
                ItemEvent(
                    item_id=item.id,
                    target_id=target_id,
                    kind="updated" if updated else "new",
                    created_at=at,
                    changes=[
                        {
                            "field": "overall_status",
                            "old": "RECRUITING",
                            "new": "ACTIVE_NOT_RECRUITING",
                        }
                    ]
                    if updated
                    else [],
                )
            )
        for source in ("pubmed", "ctgov", "rss"):
            session.add(
                SourceState(
                    source=source,
                    target_id=target_id,
                    cursor={},
                    last_success_at=NOW - timedelta(hours=2),
                )
            )
    for start in range(0, subscribers, CHUNK):
        ids = range(start + 1, min(start + CHUNK, subscribers) + 1)
        with transaction(factory) as session:
            session.execute(
                insert(Subscriber),
                [
                    {
                        "id": i,
                        "email": f"reader{i}@example.org",
                        "verified_at": T0,
                        "mail_status": "ok",
                        "created_at": T0,
                    }
                    for i in ids
                ],
            )
            session.execute(
                insert(Alert),
                [
                    {
                        "subscriber_id": i,
                        "target_id": target_id,
                        "frequency": "daily",
                        "weekday": "monday",
                        "send_hour": 8,
                        "timezone": "UTC",
                        "max_items": 50,
                        "send_when_empty": False,
                        "status": "active",
                        "activated_at": T0,
                        "created_at": T0,
                    }
                    for i in ids
                ],
            )
    engine.dispose()


def sample_message(directory: Path) -> bytes:
    """One digest as the real run renders it (planned and loaded in a transaction that
    is rolled back, so the database stays unplanned)."""
    from alerts.digests.planning import plan_chunk
    from alerts.digests.render import load_views, public_host, render_digest
    from db.session import make_engine, make_sessionmaker

    settings = bench_settings(directory)
    engine = make_engine(settings.database_url)
    session = make_sessionmaker(engine)()
    try:
        plan_chunk(session, [1], now=NOW, frequency=None, host=public_host(settings), slots={})
        digest_ids = session.scalars(select(Digest.id))
        [view] = load_views(session, settings, list(digest_ids))
        return render_digest(view, settings, date=NOW).data
    finally:
        session.rollback()
        session.close()
        engine.dispose()


# --- the phases (each in its own process) ------------------------------------------------


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # kilobytes on Linux


def fresh_copy(seeded: Path) -> Path:
    """A copy of the seeded, unplanned database for one measurement."""
    directory = Path(tempfile.mkdtemp(prefix="run-", dir=seeded.parent))
    shutil.copyfile(seeded / "bench.db", directory / "bench.db")
    return directory


def phase_raw(seeded: Path, n: int, sink_kind: str) -> dict[str, Any]:
    data = (seeded / "sample.eml").read_bytes()
    sink = start_sink(sink_kind)
    client = smtplib.SMTP("127.0.0.1", sink.port)
    started = time.perf_counter()
    for i in range(n):
        client.sendmail("alerts@alerts.example.org", [f"reader{i}@example.org"], data)
    elapsed = time.perf_counter() - started
    client.quit()
    assert sink.messages == n, (sink.messages, n)
    return {"rate": n / elapsed, "seconds": elapsed, "bytes": len(data)}


def phase_e2e(seeded: Path, sink_kind: str, workers: int | None) -> dict[str, Any]:
    from alerts.digests import planning, service
    from alerts.mail.smtp import SmtpMailer
    from db.session import make_engine, make_sessionmaker

    directory = fresh_copy(seeded)
    sink = start_sink(sink_kind)
    settings = bench_settings(directory, sink.port)
    engine = make_engine(settings.database_url)
    planned_in = [0.0]
    apply = planning.Planner.apply

    # Planning is interleaved with sending (in the worker, or here when inline): count
    # the chunks it took.
    def counted_apply(self: Any, result: Any) -> None:
        planned_in[0] += 1
        apply(self, result)

    planning.Planner.apply = counted_apply  # type: ignore[method-assign]
    started = time.perf_counter()
    report = service.send_due(
        make_sessionmaker(engine),
        settings,
        SmtpMailer(host="127.0.0.1", port=sink.port),
        now=NOW,
        owner="bench",
        render_workers=workers,
    )
    elapsed = time.perf_counter() - started
    engine.dispose()
    assert report.sent == sink.messages, (report, sink.messages)
    assert (report.pending, report.failed) == (0, 0), report
    return {
        "rate": report.sent / elapsed,
        "seconds": elapsed,
        "plan_chunks": planned_in[0],
        "sent": report.sent,
        "rss_mb": peak_rss_mb(),
        "workers_rss_mb": peak_rss_mb(resource.RUSAGE_CHILDREN),
    }


def phase_sink_check(seeded: Path, n: int) -> dict[str, Any]:
    return {kind: phase_raw(seeded, n, kind)["rate"] for kind in ("aiosmtpd", "fast")}


def child(args: argparse.Namespace) -> None:
    seeded = Path(args.dir)
    if args.child == "seed":
        seed(seeded, args.n, args.events)
        (seeded / "sample.eml").write_bytes(sample_message(seeded))
        result: dict[str, Any] = {"seeded": args.n}
    elif args.child == "raw":
        result = phase_raw(seeded, args.n, args.sink)
    elif args.child == "sinks":
        result = phase_sink_check(seeded, args.n)
    else:
        result = phase_e2e(seeded, args.sink, args.workers)
    print(json.dumps(result))


def run_child(*argv: str) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, *argv], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def best(repeat: int, *argv: str) -> dict[str, Any]:
    """The fastest of `repeat` runs, each in a fresh process (the machine may be shared)."""
    return max((run_child(*argv) for _ in range(repeat)), key=lambda r: r["rate"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000, help="subscribers (digests)")
    parser.add_argument("--events", type=int, default=12, help="events per digest")
    parser.add_argument("--sink", choices=("fast", "aiosmtpd"), default="fast")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="render processes (default: send_due decides; 0: inline)",
    )
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs")
    parser.add_argument("--child", choices=("seed", "raw", "sinks", "e2e"), help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    common = ["--events", str(args.events), "--sink", args.sink]
    if args.workers is not None:
        common += ["--workers", str(args.workers)]
    print(
        f"digest benchmark: N={args.n:,}, {args.events} events per digest, SQLite, "
        f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f}), sink: {args.sink}, "
        f"best of {args.repeat}"
    )
    results: dict[int, dict[str, Any]] = {}
    for n in (args.n, 2 * args.n):
        with tempfile.TemporaryDirectory(prefix="digest-bench-") as root:
            seeded = Path(root) / "seeded"
            seeded.mkdir()
            run_child("--child", "seed", "--dir", str(seeded), "--n", str(n), *common)
            if n == args.n:
                checked = min(n, 2000)
                sinks = run_child("--child", "sinks", "--dir", str(seeded), "--n", str(checked))
                print(
                    f"sink check ({checked:,} messages, one connection): aiosmtpd "
                    f"{sinks['aiosmtpd']:,.0f}/s, fast sink {sinks['fast']:,.0f}/s"
                )
                raw = best(args.repeat, "--child", "raw", "--dir", str(seeded), "--n", str(n),
                           *common)
                print(
                    f"raw SMTP, {n:,} pre-rendered messages of {raw['bytes'] / 1024:.1f} KB "
                    f"over one smtplib connection: {raw['rate']:,.0f} msg/s "
                    f"({raw['seconds']:.2f} s)"
                )
            results[n] = best(args.repeat, "--child", "e2e", "--dir", str(seeded), *common)
            e2e = results[n]
            print(
                f"send_due end to end, {n:,} digests (plan + render + send + record): "
                f"{e2e['rate']:,.0f} digests/s ({e2e['seconds']:.2f} s, planned in "
                f"{e2e['plan_chunks']:.0f} chunks meanwhile); peak RSS {e2e['rss_mb']:.0f} MB, "
                f"render worker {e2e['workers_rss_mb']:.0f} MB"
            )
    first = results[args.n]
    print(
        f"ratio end to end / raw SMTP at N={args.n:,}: {first['rate'] / raw['rate']:.2f}x "
        "(goal >= 0.6x)"
    )
    print(
        f"peak RSS of the sending process: N={args.n:,}: {results[args.n]['rss_mb']:.0f} MB, "
        f"2N={2 * args.n:,}: {results[2 * args.n]['rss_mb']:.0f} MB"
    )


if __name__ == "__main__":
    main()
