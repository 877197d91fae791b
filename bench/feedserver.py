"""Synthetic feeds and a loopback HTTP server for feed benchmarks.

Shared by the benchmarks (`bench/feeds_fetch.py`, and any comparison with other feed
readers): `make_feeds` builds N deterministic feeds (RSS 2.0 and Atom alternating, some
entries about HER2 exon 20, HTML in the summaries), and `FeedServer` serves them on
127.0.0.1 the way a well-behaved site does: `ETag` and `Last-Modified`, 304 on a
matching conditional GET, HTTP/1.1 keep-alive, an optional delay per response.

Run it alone to serve feeds for a manual test:
    python bench/feedserver.py --feeds 200 --entries 50 --port 8765
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from types import TracebackType
from xml.sax.saxutils import escape

STATS_PATH = "/_stats"
BASE_DATE = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
LAST_MODIFIED = format_datetime(BASE_DATE, usegmt=True)

_TOPICS = (
    "Zongertinib in HER2 exon 20 insertion-mutant NSCLC: phase 1b results",
    "HER2-positive breast cancer treated with trastuzumab deruxtecan",
    "EGFR exon 20 insertion: amivantamab after progression",
    "Sevabertinib shows activity in ERBB2-mutant lung adenocarcinoma",
    "Exon 20 skipping in MET: a review",
    "Real-world outcomes of KRAS G12C inhibitors",
    "A775_G776insYVMA and the tyrosine kinase domain of HER2",
    "Biomarker testing rates in community oncology practice",
)
_PARAGRAPH = (
    "<p>Patients with <b>advanced disease</b> received the study drug once daily until "
    "progression. The objective response rate was <i>assessed</i> by blinded independent "
    "central review &amp; investigators.</p><p>Adverse events were mostly grade 1&ndash;2; "
    'diarrhoea and rash were the most common. See <a href="https://example.org/ref">'
    "the supplementary appendix</a> for details.</p>"
)


def feed_path(index: int) -> str:
    return f"/feeds/{index}.xml"


def make_feed(index: int, entries: int = 50, *, base_url: str = "http://127.0.0.1") -> bytes:
    """Feed `index` with `entries` entries; even indexes are RSS 2.0, odd ones Atom."""
    site = f"{base_url}/site/{index}"
    rows = []
    for n in range(entries):
        title = f"{_TOPICS[(index + n) % len(_TOPICS)]} (report {index}-{n})"
        when = BASE_DATE - timedelta(hours=n * 7 + index)
        link = f"{site}/posts/{n}"
        summary = _PARAGRAPH * (1 + n % 3)
        if index % 2 == 0:
            rows.append(
                f"<item><title>{escape(title)}</title><link>{link}</link>"
                f'<guid isPermaLink="false">feed{index}-entry{n}</guid>'
                f"<pubDate>{format_datetime(when)}</pubDate>"
                f"<author>desk{index}@example.org (News Desk)</author>"
                f"<description>{escape(summary)}</description></item>"
            )
        else:
            rows.append(
                f"<entry><title>{escape(title)}</title>"
                f'<link rel="alternate" href="{link}"/>'
                f"<id>tag:example.org,2025:feed{index}/entry{n}</id>"
                f"<updated>{when.isoformat()}</updated><author><name>News Desk</name></author>"
                f'<summary type="html">{escape(summary)}</summary></entry>'
            )
    body = "".join(rows)
    if index % 2 == 0:
        text = (
            '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
            f"<title>Oncology news {index}</title><link>{site}</link>"
            f"<description>Synthetic feed {index}</description>{body}</channel></rss>"
        )
    else:
        text = (
            '<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f'<title>Oncology news {index}</title><link rel="alternate" href="{site}"/>'
            f"<id>tag:example.org,2025:feed{index}</id>"
            f"<updated>{BASE_DATE.isoformat()}</updated>{body}</feed>"
        )
    return text.encode("utf-8")


def make_feeds(
    count: int, entries: int = 50, *, base_url: str = "http://127.0.0.1"
) -> dict[str, bytes]:
    """{path: body} for `count` feeds."""
    return {feed_path(i): make_feed(i, entries, base_url=base_url) for i in range(count)}


@dataclass
class ServerStats:
    requests: int = 0
    not_modified: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, status: int) -> None:
        with self.lock:
            self.requests += 1
            if status == 304:
                self.not_modified += 1

    def reset(self) -> None:
        with self.lock:
            self.requests = self.not_modified = 0


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 stalls concurrent clients on TCP retransmits (about 1 s).
    request_queue_size = 128
    daemon_threads = True
    feeds: Mapping[str, bytes]
    etags: Mapping[str, str]
    delay: float
    stats: ServerStats


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real feed hosts do
    # Headers and body go out in two writes; with Nagle on, the body waits for the
    # client's delayed ACK (about 40 ms per response on a kept-alive connection).
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == STATS_PATH:  # for a server running in another process
            stats = self.server.stats
            payload = {"requests": stats.requests, "not_modified": stats.not_modified}
            self._send(
                200, json.dumps(payload).encode(), {"Content-Type": "application/json"}, count=False
            )
            return
        if self.server.delay:
            time.sleep(self.server.delay)
        body = self.server.feeds.get(self.path)
        if body is None:
            self._send(404, b"not found", {"Content-Type": "text/plain"})
            return
        etag = self.server.etags[self.path]
        validators = {"ETag": etag, "Last-Modified": LAST_MODIFIED}
        if self.headers.get("If-None-Match") == etag or (
            "If-None-Match" not in self.headers
            and self.headers.get("If-Modified-Since") == LAST_MODIFIED
        ):
            self._send(304, b"", validators)
            return
        self._send(200, body, {"Content-Type": "application/xml; charset=utf-8", **validators})

    def _send(
        self, status: int, body: bytes, headers: Mapping[str, str], *, count: bool = True
    ) -> None:
        if count:
            self.server.stats.count(status)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        pass


class FeedServer:
    """Serve {path: body} on 127.0.0.1 in a background thread. A context manager."""

    def __init__(self, feeds: Mapping[str, bytes], *, delay_ms: float = 0, port: int = 0) -> None:
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.feeds = feeds
        self._server.etags = _etags(feeds)
        self._server.delay = delay_ms / 1000
        self._server.stats = ServerStats()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def stats(self) -> ServerStats:
        return self._server.stats

    def url(self, path: str) -> str:
        return self.base_url + path

    def __enter__(self) -> FeedServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@dataclass(frozen=True)
class ServedFeeds:
    """Feeds served by `feed_server_process`: feed i is at `urls[i]`."""

    urls: list[str]
    bases: list[str]

    def stats(self) -> dict[str, int]:
        """Requests answered so far, over every host."""
        with urllib.request.urlopen(self.bases[0] + STATS_PATH, timeout=10) as response:
            result: dict[str, int] = json.load(response)
        return result


def _serve_forever(
    count: int, entries: int, delay_ms: float, hosts: int, bases_out: Connection
) -> None:
    servers = [_Server(("127.0.0.1", 0), _Handler) for _ in range(hosts)]
    bases = [f"http://127.0.0.1:{server.server_address[1]}" for server in servers]
    feeds = make_feeds(count, entries, base_url=bases[0])
    etags, stats = _etags(feeds), ServerStats()
    for server in servers:
        server.feeds, server.etags, server.stats = feeds, etags, stats
        server.delay = delay_ms / 1000
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    bases_out.send(bases)
    servers[0].serve_forever()


@contextmanager
def feed_server_process(
    count: int, entries: int = 50, *, delay_ms: float = 0, hosts: int = 1
) -> Iterator[ServedFeeds]:
    """Serve `make_feeds(count, entries)` from a child process (so the server's threads
    do not compete with the client for the GIL), spread over `hosts` ports: each port is
    a host of its own to a client's connection pool and per-host limits."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_serve_forever, args=(count, entries, delay_ms, hosts, sender), daemon=True
    )
    process.start()
    try:
        if not receiver.poll(60):
            raise RuntimeError("the feed server did not start")
        bases: list[str] = receiver.recv()
        urls = [bases[i % len(bases)] + feed_path(i) for i in range(count)]
        yield ServedFeeds(urls, bases)
    finally:
        process.terminate()
        process.join()


def _etags(feeds: Mapping[str, bytes]) -> dict[str, str]:
    return {path: f'"{hashlib.sha256(body).hexdigest()[:20]}"' for path, body in feeds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--delay-ms", type=float, default=0)
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    with FeedServer(
        make_feeds(args.feeds, args.entries, base_url=base), delay_ms=args.delay_ms, port=args.port
    ) as server:
        print(f"serving {args.feeds} feeds at {server.base_url}/feeds/<0..{args.feeds - 1}>.xml")
        with suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
