"""How fast the RSS/Atom adapter polls many feeds, against a plain sequential fetcher.

A loopback server (in its own process) serves N synthetic feeds x M entries, optionally
delaying every response. For each delay the script measures:

  a) FeedSource's first poll over all feeds (concurrent fetches, parsing in a process
     pool), with the pool started inside the timing ("cold") and already running ("warm");
     for comparison, the same poll parsing every body on the event loop;
  b) a sequential baseline: one GET after another with httpx, then feedparser.parse on the
     bytes with its defaults (HTML sanitising on), roughly what rss2email does;
  c) the re-poll when nothing changed (every feed answers 304): wall time, requests, and
     parse calls (must be 0).

Each figure is the best of --repeat runs (the machine may be shared).

    python bench/feeds_fetch.py                      # 200 feeds x 50 entries, delays 0 and 50 ms
    python bench/feeds_fetch.py --entries 1 --delay-ms 0 --inline-max-bytes 0 4096
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from feedserver import feed_server_process  # noqa: E402

from alerts.sources import rss  # noqa: E402
from alerts.sources.base import FeedRef, FeedStatus, PollResult, TargetQuery  # noqa: E402
from alerts.sources.http import UpstreamClient  # noqa: E402
from alerts.sources.rss import (  # noqa: E402
    INLINE_MAX_BYTES,
    PER_HOST_CONCURRENCY,
    FeedSource,
    shared_parser_pool,
    shutdown_parser_pool,
)

ALL_INLINE = 1 << 40


@dataclass
class Row:
    scenario: str
    seconds: float
    cpu: float | None
    requests: int
    parses: int
    entries: int


@dataclass
class Poll:
    result: PollResult
    seconds: float
    cpu: float | None
    parses: int


def _worker_cpu() -> dict[int, float] | None:
    """CPU seconds used so far by each parser worker (Linux /proc; None elsewhere)."""
    pool = rss._pool  # noqa: SLF001 (a benchmark may look inside)
    if pool is None:
        return {}
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in list(pool._processes or {}):  # noqa: SLF001
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        seconds[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return seconds


async def _poll(
    refs: Sequence[FeedRef], *, concurrency: int, per_host: int, inline_max_bytes: int
) -> Poll:
    async with UpstreamClient(timeout=30, max_retries=0, max_connections=concurrency) as client:
        source = FeedSource(
            client,
            concurrency=concurrency,
            per_host_concurrency=per_host,
            inline_max_bytes=inline_max_bytes,
        )
        now = datetime.now(UTC)
        workers_before = _worker_cpu()
        cpu_before = time.process_time()
        started = time.perf_counter()
        result = await source.poll(TargetQuery("bench", feeds=refs), {}, now=now, since=now)
        seconds = time.perf_counter() - started
        cpu: float | None = time.process_time() - cpu_before
        workers_after = _worker_cpu()
    if workers_before is None or workers_after is None:
        cpu = None
    else:
        cpu += sum(t - workers_before.get(pid, 0.0) for pid, t in workers_after.items())
    failed = [o for o in result.feeds if o.status is FeedStatus.failed]
    if failed:
        raise SystemExit(f"{len(failed)} feeds failed, first: {failed[0].error}")
    return Poll(result, seconds, cpu, source.parse_calls)


async def _best(repeat: int, run: Callable[[], Awaitable[Poll]]) -> Poll:
    polls = [await run() for _ in range(repeat)]
    return min(polls, key=lambda p: p.seconds)


def _row(scenario: str, poll: Poll) -> Row:
    result = poll.result
    return Row(scenario, poll.seconds, poll.cpu, result.requests, poll.parses, len(result.items))


def _warm_pool() -> float:
    """Start every worker of the shared pool; returns the seconds it took."""
    started = time.perf_counter()
    pool = shared_parser_pool()
    list(pool.map(abs, range((os.cpu_count() or 1) * 4)))
    return time.perf_counter() - started


async def _feed_source_rows(
    refs: Sequence[FeedRef], args: argparse.Namespace
) -> tuple[list[Row], float]:
    """(a) and (c), in one event loop: on Python 3.11 asyncio.run reprs the main task's
    result on exit, so big results stay inside."""

    def polling(
        feeds: Sequence[FeedRef], inline: int, cold: bool = False
    ) -> Callable[[], Awaitable[Poll]]:
        async def run() -> Poll:
            if cold:
                shutdown_parser_pool()
            return await _poll(
                feeds, concurrency=args.concurrency, per_host=args.per_host, inline_max_bytes=inline
            )

        return run

    default_inline = args.inline_max_bytes[0]
    cold = await _best(args.repeat, polling(refs, default_inline, cold=True))
    rows = [_row("FeedSource first poll, cold pool", cold)]
    shutdown_parser_pool()
    pool_start = _warm_pool()
    warm = {
        limit: await _best(args.repeat, polling(refs, limit)) for limit in args.inline_max_bytes
    }
    rows += [_row(f"FeedSource first poll, warm pool, inline <= {n} B", p) for n, p in warm.items()]
    on_loop = await _best(args.repeat, polling(refs, ALL_INLINE))
    rows.append(_row("FeedSource first poll, every body parsed on the loop", on_loop))

    known = [
        FeedRef(ref.feed_id, ref.url, o.etag, o.last_modified, o.content_hash)
        for ref, o in zip(refs, warm[default_inline].result.feeds, strict=True)
    ]
    repoll = await _best(args.repeat, polling(known, default_inline))
    unchanged = sum(o.status is FeedStatus.not_modified for o in repoll.result.feeds)
    if unchanged != len(refs) or repoll.parses:
        raise SystemExit(f"re-poll: {unchanged} feeds unchanged, {repoll.parses} parses")
    rows.append(_row("FeedSource re-poll, nothing new (304)", repoll))
    return rows, pool_start


def _sequential(urls: Sequence[str], repeat: int) -> Row:
    best, best_cpu = float("inf"), 0.0
    for _ in range(repeat):
        started, cpu_before = time.perf_counter(), time.process_time()
        entries = 0
        with httpx.Client(timeout=30) as client:
            for url in urls:
                response = client.get(url)
                response.raise_for_status()
                entries += len(feedparser.parse(response.content).entries)
        seconds = time.perf_counter() - started
        if seconds < best:
            best, best_cpu = seconds, time.process_time() - cpu_before
    count = len(urls)
    return Row("sequential httpx + feedparser (sanitising)", best, best_cpu, count, count, entries)


def run(args: argparse.Namespace) -> None:
    for delay in args.delay_ms:
        with feed_server_process(
            args.feeds, args.entries, delay_ms=delay, hosts=args.hosts
        ) as served:
            refs = [FeedRef(i, url) for i, url in enumerate(served.urls)]
            before = served.stats()
            rows, pool_start = asyncio.run(_feed_source_rows(refs, args))
            after = served.stats()
            baseline = _sequential(served.urls, args.repeat)
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(
            f"\n{args.feeds} feeds x {args.entries} entries on {args.hosts} hosts, server delay "
            f"{delay:g} ms, concurrency {args.concurrency} ({args.per_host} per host), "
            f"{os.cpu_count()} CPUs (load {load}), "
            f"best of {args.repeat}; parser pool start {pool_start:.2f} s"
        )
        print(
            f"{'scenario':<54} {'wall s':>7} {'CPU s':>6} {'requests':>8} {'parses':>6}"
            f" {'entries':>7} {'vs sequential':>13}"
        )
        for row in [*rows[:-1], baseline, rows[-1]]:
            ratio = baseline.seconds / row.seconds if row.seconds else float("inf")
            cpu = f"{row.cpu:6.2f}" if row.cpu is not None else f"{'?':>6}"
            print(
                f"{row.scenario:<54} {row.seconds:7.3f} {cpu} {row.requests:8d} {row.parses:6d} "
                f"{row.entries:7d} {ratio:12.1f}x"
            )
        print("CPU s: the polling process plus its parser workers (not the server)")
        print(
            f"server: {after['requests'] - before['requests']} requests over all FeedSource "
            f"runs, {after['not_modified'] - before['not_modified']} answered 304"
        )
    shutdown_parser_pool()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--delay-ms", type=float, nargs="+", default=[0.0, 50.0])
    parser.add_argument("--hosts", type=int, default=20, help="loopback ports the feeds share")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--per-host", type=int, default=PER_HOST_CONCURRENCY)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--inline-max-bytes",
        type=int,
        nargs="+",
        default=[INLINE_MAX_BYTES],
        help="bodies up to this size are parsed on the event loop (several values: a row each)",
    )
    run(parser.parse_args())


if __name__ == "__main__":
    main()
