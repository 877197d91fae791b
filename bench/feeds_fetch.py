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

from feedserver import feed_path, feed_server_process, server_stats  # noqa: E402

from alerts.sources.base import FeedRef, FeedStatus, PollResult, TargetQuery  # noqa: E402
from alerts.sources.http import UpstreamClient  # noqa: E402
from alerts.sources.rss import (  # noqa: E402
    INLINE_MAX_BYTES,
    FeedSource,
    shared_parser_pool,
    shutdown_parser_pool,
)

ALL_INLINE = 1 << 40


@dataclass
class Row:
    scenario: str
    seconds: float
    requests: int
    parses: int
    entries: int


@dataclass
class Poll:
    result: PollResult
    seconds: float
    parses: int


async def _poll(refs: Sequence[FeedRef], *, concurrency: int, inline_max_bytes: int) -> Poll:
    async with UpstreamClient(timeout=30, max_retries=0, max_connections=concurrency) as client:
        source = FeedSource(client, concurrency=concurrency, inline_max_bytes=inline_max_bytes)
        now = datetime.now(UTC)
        started = time.perf_counter()
        result = await source.poll(TargetQuery("bench", feeds=refs), {}, now=now, since=now)
        seconds = time.perf_counter() - started
    failed = [o for o in result.feeds if o.status is FeedStatus.failed]
    if failed:
        raise SystemExit(f"{len(failed)} feeds failed, first: {failed[0].error}")
    return Poll(result, seconds, source.parse_calls)


async def _best(repeat: int, run: Callable[[], Awaitable[Poll]]) -> Poll:
    polls = [await run() for _ in range(repeat)]
    return min(polls, key=lambda p: p.seconds)


def _row(scenario: str, poll: Poll) -> Row:
    result = poll.result
    return Row(scenario, poll.seconds, result.requests, poll.parses, len(result.items))


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
    conc, default_inline = args.concurrency, args.inline_max_bytes[0]

    async def cold() -> Poll:
        shutdown_parser_pool()
        return await _poll(refs, concurrency=conc, inline_max_bytes=default_inline)

    rows = [_row("FeedSource first poll, cold pool", await _best(args.repeat, cold))]
    shutdown_parser_pool()
    pool_start = _warm_pool()
    first: Poll | None = None
    for limit in args.inline_max_bytes:
        poll = await _best(
            args.repeat, lambda limit=limit: _poll(refs, concurrency=conc, inline_max_bytes=limit)
        )
        first = first or poll
        rows.append(_row(f"FeedSource first poll, warm pool, inline <= {limit} B", poll))
    on_loop = await _best(
        args.repeat, lambda: _poll(refs, concurrency=conc, inline_max_bytes=ALL_INLINE)
    )
    rows.append(_row("FeedSource first poll, every body parsed on the loop", on_loop))

    assert first is not None
    known = [
        FeedRef(ref.feed_id, ref.url, o.etag, o.last_modified, o.content_hash)
        for ref, o in zip(refs, first.result.feeds, strict=True)
    ]
    repoll = await _best(
        args.repeat, lambda: _poll(known, concurrency=conc, inline_max_bytes=default_inline)
    )
    unchanged = sum(o.status is FeedStatus.not_modified for o in repoll.result.feeds)
    if unchanged != len(refs) or repoll.parses:
        raise SystemExit(f"re-poll: {unchanged} feeds unchanged, {repoll.parses} parses")
    rows.append(_row("FeedSource re-poll, nothing new (304)", repoll))
    return rows, pool_start


def _sequential(base: str, count: int, repeat: int) -> Row:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        entries = 0
        with httpx.Client(timeout=30) as client:
            for i in range(count):
                response = client.get(base + feed_path(i))
                response.raise_for_status()
                entries += len(feedparser.parse(response.content).entries)
        best = min(best, time.perf_counter() - started)
    return Row("sequential httpx + feedparser (sanitising)", best, count, count, entries)


def run(args: argparse.Namespace) -> None:
    for delay in args.delay_ms:
        with feed_server_process(args.feeds, args.entries, delay_ms=delay) as base:
            refs = [FeedRef(i, base + feed_path(i)) for i in range(args.feeds)]
            before = server_stats(base)
            rows, pool_start = asyncio.run(_feed_source_rows(refs, args))
            after = server_stats(base)
            baseline = _sequential(base, args.feeds, args.repeat)
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(
            f"\n{args.feeds} feeds x {args.entries} entries, server delay {delay:g} ms, "
            f"concurrency {args.concurrency}, {os.cpu_count()} CPUs (load {load}), "
            f"best of {args.repeat}; parser pool start {pool_start:.2f} s"
        )
        print(
            f"{'scenario':<54} {'wall s':>8} {'requests':>9} {'parses':>7} {'entries':>8}"
            f" {'vs sequential':>14}"
        )
        for row in [*rows[:-1], baseline, rows[-1]]:
            ratio = baseline.seconds / row.seconds if row.seconds else float("inf")
            print(
                f"{row.scenario:<54} {row.seconds:8.3f} {row.requests:9d} {row.parses:7d} "
                f"{row.entries:8d} {ratio:13.1f}x"
            )
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
    parser.add_argument("--concurrency", type=int, default=32)
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
