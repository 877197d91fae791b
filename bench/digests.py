"""How fast digests go out end to end, against the raw SMTP rate of the same messages.

Seeds N subscribers (one active daily alert each on the seeded HER2 exon 20 target) and
--events events for the target into a SQLite file, then measures, each in a process of
its own so peak memory is the phase's own:

  a) raw SMTP throughput: N copies of one rendered digest (same size as the real ones)
     over one reused smtplib connection;
  b) `send_due` end to end: plan + render + send + record, on SQLite;
  c) b) again with 2N subscribers, to show peak RSS stays flat.

The SMTP sink runs in a process of its own, as a real relay does, so its CPU is not
charged to the sender's GIL; both a) and b) send to the same sink process, which counts
what it accepted (each phase is checked against that count) and how many reads held
pipelined commands. It is a minimal asyncio sink that advertises and honours PIPELINING
(RFC 2920) by default (`--no-pipelining` hides it); aiosmtpd (`--sink aiosmtpd`, no
PIPELINING) spends ~3 ms of CPU per 20 KB message (it reads DATA line by line), which
makes it, not the sender, the bottleneck: the "sink check" line measures both.

The raw baseline is plain smtplib.sendmail, which never pipelines (four round trips per
message); send_due uses alerts.mail.smtp.SmtpMailer, which pipelines MAIL, RCPT and
DATA when the server offers it. The output says which each side used.

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


# --- a small, fast SMTP sink, in a process of its own ------------------------------------


class _SinkProtocol(asyncio.Protocol):
    """Just enough ESMTP for smtplib: EHLO, MAIL, RCPT, DATA (found with one bytes.find
    per read, not line by line), RSET, NOOP, QUIT. It answers every complete command of
    a read in order, so it honours PIPELINING (RFC 2920), which it advertises unless told
    not to."""

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
        commands = 0
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
            commands += 1
            verb = self.buffer[:4].upper()
            self.buffer = self.buffer[newline + 2 :]
            if verb == b"EHLO":
                replies.append(self.sink.ehlo)
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
        if commands > 1:
            self.sink.pipelined += 1  # commands that came in one read, before any reply
        if replies:
            self.transport.write(b"".join(replies))


class FastSink:
    def __init__(self, pipelining: bool) -> None:
        self.messages = 0
        self.bytes = 0
        #: Reads that held more than one command (a client that pipelines).
        self.pipelined = 0
        extensions = [b"8BITMIME", b"SIZE 52428800"] + ([b"PIPELINING"] if pipelining else [])
        self.ehlo = b"250-sink\r\n" + b"".join(
            (b"250 " if n == len(extensions) - 1 else b"250-") + e + b"\r\n"
            for n, e in enumerate(extensions)
        )
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
    """aiosmtpd, which does not offer PIPELINING."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.messages += 1
                sink.bytes += len(envelope.content)
                return "250 accepted"

        self.messages = 0
        self.bytes = 0
        self.pipelined = 0
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        Controller(Handler(), hostname="127.0.0.1", port=self.port).start()


def serve_sink(kind: str, pipelining: bool) -> None:
    """The sink process: prints its port, then one line of counters per line read on
    stdin, until stdin closes."""
    sink = AiosmtpdSink() if kind == "aiosmtpd" else FastSink(pipelining)
    print(sink.port, flush=True)
    for _line in sys.stdin:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(json.dumps({"messages": sink.messages, "bytes": sink.bytes,
                          "pipelined": sink.pipelined,
                          "cpu": usage.ru_utime + usage.ru_stime}), flush=True)


class SinkProcess:
    """An SMTP sink in a process of its own, as a real relay is: its CPU is not charged
    to the sender's. `stats()` reads its counters; phases compare them before and after."""

    def __init__(self, kind: str, pipelining: bool) -> None:
        argv = [sys.executable, __file__, "--child", "sink", "--sink", kind]
        if not pipelining:
            argv.append("--no-pipelining")
        self.kind = kind
        self.pipelining = pipelining and kind == "fast"
        self._process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         text=True)
        assert self._process.stdout is not None
        self.port = int(self._process.stdout.readline())

    def stats(self) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write("stats\n")
        self._process.stdin.flush()
        return json.loads(self._process.stdout.readline())  # type: ignore[no-any-return]

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=10)

    def __enter__(self) -> SinkProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    from alerts.digests.delivery.render import render_digest
    from alerts.digests.message import public_host
    from alerts.digests.planning import plan_chunk
    from alerts.digests.views import load_views
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


def phase_raw(seeded: Path, n: int, port: int) -> dict[str, Any]:
    """Plain smtplib.sendmail over one reused connection: no pipelining, four round
    trips per message (MAIL, RCPT, DATA, body)."""
    data = (seeded / "sample.eml").read_bytes()
    client = smtplib.SMTP("127.0.0.1", port)
    started = time.perf_counter()
    cpu = time.process_time()
    for i in range(n):
        client.sendmail("alerts@alerts.example.org", [f"reader{i}@example.org"], data)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    client.quit()
    return {"rate": n / elapsed, "seconds": elapsed, "bytes": len(data), "sent": n,
            "cpu": cpu}


def phase_e2e(seeded: Path, port: int, workers: int | None) -> dict[str, Any]:
    from alerts.digests import planning
    from alerts.digests.delivery import send
    from alerts.mail.smtp import SmtpMailer
    from db.session import make_engine, make_sessionmaker

    directory = fresh_copy(seeded)
    settings = bench_settings(directory, port)
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
    cpu = time.process_time()
    report = send.send_due(
        make_sessionmaker(engine),
        settings,
        SmtpMailer(host="127.0.0.1", port=port),
        now=NOW,
        owner="bench",
        render_workers=workers,
    )
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    engine.dispose()
    assert (report.pending, report.failed) == (0, 0), report
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "rate": report.sent / elapsed,
        "seconds": elapsed,
        "plan_chunks": planned_in[0],
        "sent": report.sent,
        "cpu": cpu,
        "workers_cpu": children.ru_utime + children.ru_stime,
        "rss_mb": peak_rss_mb(),
        "workers_rss_mb": peak_rss_mb(resource.RUSAGE_CHILDREN),
    }


def child(args: argparse.Namespace) -> None:
    if args.child == "sink":
        serve_sink(args.sink, not args.no_pipelining)
        return
    seeded = Path(args.dir)
    if args.child == "seed":
        seed(seeded, args.n, args.events)
        (seeded / "sample.eml").write_bytes(sample_message(seeded))
        result: dict[str, Any] = {"seeded": args.n}
    elif args.child == "raw":
        result = phase_raw(seeded, args.n, args.port)
    else:
        result = phase_e2e(seeded, args.port, args.workers)
    print(json.dumps(result))


def run_child(*argv: str) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, *argv], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def against(sink: SinkProcess, *argv: str) -> dict[str, Any]:
    """One phase against `sink`, checked by the sink's own count of what it accepted;
    with the sink's CPU seconds and its count of pipelined reads for the phase."""
    before = sink.stats()
    result = run_child(*argv, "--port", str(sink.port))
    after = sink.stats()
    accepted = after["messages"] - before["messages"]
    assert accepted == result["sent"], (accepted, result)
    result["sink_cpu"] = after["cpu"] - before["cpu"]
    result["sink_pipelined"] = after["pipelined"] - before["pipelined"]
    return result


def best(repeat: int, sink: SinkProcess, *argv: str) -> dict[str, Any]:
    """The fastest of `repeat` runs, each in a fresh process (the machine may be shared)."""
    return max((against(sink, *argv) for _ in range(repeat)), key=lambda r: r["rate"])


def features(result: dict[str, Any], client: str) -> str:
    pipelined = result["sink_pipelined"]
    mode = (f"PIPELINING used ({pipelined:,} pipelined reads at the sink)" if pipelined
            else "no pipelining")
    return f"{client}, {mode}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000, help="subscribers (digests)")
    parser.add_argument("--events", type=int, default=12, help="events per digest")
    parser.add_argument("--sink", choices=("fast", "aiosmtpd"), default="fast")
    parser.add_argument("--no-pipelining", action="store_true",
                        help="the fast sink does not advertise PIPELINING")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="render processes (default: send_due decides; 0: inline)",
    )
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs")
    parser.add_argument("--child", choices=("seed", "raw", "e2e", "sink"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    common = ["--events", str(args.events)]
    if args.workers is not None:
        common += ["--workers", str(args.workers)]
    sink = SinkProcess(args.sink, not args.no_pipelining)
    print(
        f"digest benchmark: N={args.n:,}, {args.events} events per digest, SQLite, "
        f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f}), sink: {args.sink} "
        f"in a process of its own ({'advertises' if sink.pipelining else 'without'} "
        f"PIPELINING), best of {args.repeat}"
    )
    results: dict[int, dict[str, Any]] = {}
    with sink:
        for n in (args.n, 2 * args.n):
            with tempfile.TemporaryDirectory(prefix="digest-bench-") as root:
                seeded = Path(root) / "seeded"
                seeded.mkdir()
                run_child("--child", "seed", "--dir", str(seeded), "--n", str(n), *common)
                if n == args.n:
                    checked = min(n, 2000)
                    rates = {}
                    for kind in ("aiosmtpd", "fast"):
                        with SinkProcess(kind, pipelining=True) as other:
                            rates[kind] = against(other, "--child", "raw", "--dir",
                                                  str(seeded), "--n", str(checked))["rate"]
                    print(
                        f"sink check ({checked:,} messages, one smtplib connection): aiosmtpd "
                        f"{rates['aiosmtpd']:,.0f}/s, fast sink {rates['fast']:,.0f}/s"
                    )
                    raw = best(args.repeat, sink, "--child", "raw", "--dir", str(seeded),
                               "--n", str(n), *common)
                    print(
                        f"raw SMTP, {n:,} pre-rendered messages of {raw['bytes'] / 1024:.1f} KB "
                        f"({features(raw, 'smtplib.sendmail over one connection')}): "
                        f"{raw['rate']:,.0f} msg/s ({raw['seconds']:.2f} s; CPU: sender "
                        f"{raw['cpu']:.2f} s, sink {raw['sink_cpu']:.2f} s)"
                    )
                results[n] = best(args.repeat, sink, "--child", "e2e", "--dir", str(seeded),
                                  *common)
                e2e = results[n]
                print(
                    f"send_due end to end, {n:,} digests (plan + render + send + record; "
                    f"{features(e2e, 'SmtpMailer over one connection')}): "
                    f"{e2e['rate']:,.0f} digests/s ({e2e['seconds']:.2f} s, planned in "
                    f"{e2e['plan_chunks']:.0f} chunks meanwhile; CPU: sender {e2e['cpu']:.2f} s, "
                    f"workers {e2e['workers_cpu']:.2f} s, sink {e2e['sink_cpu']:.2f} s); "
                    f"peak RSS {e2e['rss_mb']:.0f} MB, render worker {e2e['workers_rss_mb']:.0f} MB"
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
