"""A loopback imitation of PubMed E-utilities, ClinicalTrials.gov API v2 and RSS feeds,
serving the recorded payloads of tests/data/upstream/, for tests and demos.

    with FakeUpstream(posted_on=date.today()) as fake:
        settings = make_settings(..., pubmed_base_url=fake.pubmed_base_url,
                                 ctgov_base_url=fake.ctgov_base_url)
        ...
        assert fake.requests_to("/efetch.fcgi") == []

What it serves (every request is recorded in `fake.requests`, in order):

- `{pubmed_base_url}/esearch.fcgi` (GET or POST): JSON listing the PMIDs it holds, whatever
  the term, newest Entrez date first; `mindate`/`maxdate` (YYYY[/MM[/DD]]) filter on each
  article's Entrez date; `retstart`/`retmax` page; `rettype=count` answers the count only;
  `usehistory=y` keeps the result and answers its `webenv` and `querykey` ("1").
- `{pubmed_base_url}/efetch.fcgi` (GET or POST, `id=1,2,3`, or `WebEnv`, `query_key`,
  `retstart`, `retmax` of a kept result): a PubmedArticleSet of the requested articles it
  holds, cut out of the recorded EFetch files.
- `{ctgov_base_url}/studies`: the recorded studies, `pageSize` per page (default 10, at
  most 1000), `nextPageToken`/`pageToken`, `countTotal=true`, `sort=LastUpdatePostDate:desc`
  and `filter.advanced=AREA[LastUpdatePostDate]RANGE[YYYY-MM-DD,MAX]`; query terms are
  ignored. `{ctgov_base_url}/version`: `dataTimestamp`, which moves forward whenever a
  study is changed with `set_study_status`.
- `{url}/feeds/<name>.xml`: bodies given to `add_feed`, with an ETag (304 on a matching
  If-None-Match).

Each recorded request has its method, path, query, form body and headers.
`fail(path, status, ...)` makes requests whose path starts with `path` answer `status` (with
Retry-After, extra headers such as Location, a number of times or for ever).
`misbehave(path, behaviour)` makes them answer badly at the socket level instead: the
behaviours below (`drip`, `stall`, `truncate`, `replace_body`, `endless_body`, `hold`)
get the answer the fake would have given and write something else; each is bounded in
time, so a test's server thread always ends.

`posted_on=<date>` re-dates every article (Entrez date) and study (last update) to that
day, so a poll window ending today finds them all; by default the recorded dates stay
(studies recorded without a last update date get today's).

Run it by hand: `python -m tests.fakes.upstream --port 8900` prints the ALERTS_* variables
that point the service at it (articles and studies dated today).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

UPSTREAM_DATA = Path(__file__).resolve().parent.parent / "data" / "upstream"
PUBMED_FILES = tuple(sorted((UPSTREAM_DATA / "pubmed").glob("efetch_*.xml")))
CTGOV_FILES = tuple(sorted((UPSTREAM_DATA / "ctgov").glob("*.json")))

PUBMED_PATH = "/entrez/eutils"
CTGOV_PATH = "/api/v2"
FEEDS_PATH = "/feeds"

_ARTICLE = re.compile(r"<PubmedArticle>.*?</PubmedArticle>", re.S)
_PMID = re.compile(r"<PMID[^>]*>(\d+)</PMID>")
_ENTREZ = re.compile(
    r'<PubMedPubDate PubStatus="entrez">\s*<Year>(\d+)</Year>\s*<Month>(\d+)</Month>\s*'
    r"<Day>(\d+)</Day>.*?</PubMedPubDate>",
    re.S,
)
_RANGE = re.compile(r"AREA\[LastUpdatePostDate\]RANGE\[(\d{4}-\d{2}-\d{2}),\s*MAX\]")
_SET_HEAD = (
    '<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, '
    '1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
    "<PubmedArticleSet>\n"
)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]  # query string, last value of each name
    form: dict[str, str]  # url-encoded POST body
    headers: httpx.Headers = field(default_factory=httpx.Headers)  # case-insensitive

    @property
    def params(self) -> dict[str, str]:
        """Query and form together (E-utilities accept either)."""
        return {**self.query, **self.form}


@dataclass
class Article:
    pmid: str
    xml: str  # one <PubmedArticle> element
    edat: date  # Entrez date


#: What a misbehaving endpoint does with the answer it would have given:
#: (handler, status, headers, body) -> None, writing to `handler.wfile` itself.
Behaviour = Callable[["_Handler", int, dict[str, str], bytes], None]


@dataclass
class _Failure:
    respond: Behaviour
    remaining: int | None  # None: for ever


@dataclass
class _Feed:
    body: bytes
    content_type: str
    etag: str = field(init=False)

    def __post_init__(self) -> None:
        self.etag = f'"{hashlib.sha256(self.body).hexdigest()[:16]}"'


class FakeUpstream:
    """See the module docstring. Use as a context manager, or start()/stop()."""

    def __init__(
        self,
        *,
        pubmed_files: Iterable[Path] = PUBMED_FILES,
        ctgov_files: Iterable[Path] = CTGOV_FILES,
        posted_on: date | None = None,
        port: int = 0,
    ) -> None:
        self.articles: dict[str, Article] = {}
        for path in pubmed_files:
            for chunk in _ARTICLE.findall(path.read_text(encoding="utf-8")):
                article = _article(chunk)
                self.articles.setdefault(article.pmid, article)
        self.studies: dict[str, dict[str, Any]] = {}
        for path in ctgov_files:
            for study in _studies(json.loads(path.read_text(encoding="utf-8"))):
                nct_id = study["protocolSection"]["identificationModule"]["nctId"]
                self.studies.setdefault(nct_id, study)
        if posted_on is not None:
            for article in self.articles.values():
                _redate(article, posted_on)
        for study in self.studies.values():
            status = study["protocolSection"].setdefault("statusModule", {})
            if posted_on is not None or "lastUpdatePostDateStruct" not in status:
                day = posted_on or datetime.now(UTC).date()
                status["lastUpdatePostDateStruct"] = {"date": day.isoformat(), "type": "ACTUAL"}
        self._data_time = datetime.combine(
            posted_on or datetime.now(UTC).date(), datetime.min.time()
        ) + timedelta(hours=9)
        self.feeds: dict[str, _Feed] = {}
        #: WebEnv -> the PMIDs of the search kept on the "History server".
        self._history: dict[str, list[str]] = {}
        self.requests: list[RecordedRequest] = []
        self._failures: dict[str, _Failure] = {}
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.fake = self
        self._thread: threading.Thread | None = None

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> FakeUpstream:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-upstream", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- where it is -------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def pubmed_base_url(self) -> str:
        return self.url + PUBMED_PATH

    @property
    def ctgov_base_url(self) -> str:
        return self.url + CTGOV_PATH

    def feed_url(self, name: str) -> str:
        return f"{self.url}{FEEDS_PATH}/{name}.xml"

    def env(self) -> dict[str, str]:
        """The ALERTS_* variables that point the service at this fake."""
        return {
            "ALERTS_PUBMED_BASE_URL": self.pubmed_base_url,
            "ALERTS_CTGOV_BASE_URL": self.ctgov_base_url,
        }

    # -- what it serves ----------------------------------------------------------------

    @property
    def pmids(self) -> list[str]:
        return list(self.articles)

    @property
    def nct_ids(self) -> list[str]:
        return list(self.studies)

    @property
    def data_timestamp(self) -> str:
        return self._data_time.strftime("%Y-%m-%dT%H:%M:%S")

    def set_study_status(self, nct_id: str, status: str) -> None:
        """Change a study's overallStatus, as the registry's next data refresh would: its
        last update date becomes the refresh day and `dataTimestamp` moves forward."""
        with self._lock:
            module = self.studies[nct_id]["protocolSection"]["statusModule"]
            module["overallStatus"] = status
            self._data_time += timedelta(hours=1)
            module["lastUpdatePostDateStruct"] = {
                "date": max(self._data_time.date(), _study_day(self.studies[nct_id])).isoformat(),
                "type": "ACTUAL",
            }

    def refresh(self) -> None:
        """Move `dataTimestamp` forward, as the registry's next data refresh does (after
        studies were added to `studies` by hand)."""
        with self._lock:
            self._data_time += timedelta(hours=1)

    def add_feed(self, name: str, body: bytes, content_type: str = "application/rss+xml") -> str:
        """Serve `body` at feed_url(name); returns that URL."""
        with self._lock:
            self.feeds[name] = _Feed(body, content_type)
        return self.feed_url(name)

    def fail(
        self,
        path: str,
        status: int,
        *,
        retry_after: int | None = None,
        headers: Mapping[str, str] | None = None,
        times: int | None = None,
    ) -> None:
        """Answer `status` to requests whose path starts with `path` (`times` of them, or
        all until `clear_failures`)."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = str(retry_after)
        self.misbehave(path, _status(status, extra), times=times)

    def misbehave(self, path: str, behaviour: Behaviour, *, times: int | None = None) -> None:
        """Answer requests whose path starts with `path` through `behaviour` (`times` of
        them, or all until `clear_failures`)."""
        with self._lock:
            self._failures[path] = _Failure(behaviour, times)

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def requests_to(self, path_suffix: str) -> list[RecordedRequest]:
        """The recorded requests whose path ends with `path_suffix`."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith(path_suffix)]

    # -- request handling (called from the server's threads) ----------------------------

    def _record(self, request: RecordedRequest) -> _Failure | None:
        with self._lock:
            self.requests.append(request)
            for prefix, failure in self._failures.items():
                if request.path.startswith(prefix):
                    if failure.remaining is not None:
                        if failure.remaining <= 0:
                            continue
                        failure.remaining -= 1
                    return failure
        return None

    def _answer(
        self, request: RecordedRequest, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        path = request.path
        if path == f"{PUBMED_PATH}/esearch.fcgi":
            return self._esearch(request.params)
        if path == f"{PUBMED_PATH}/efetch.fcgi":
            return self._efetch(request.params)
        if path == f"{CTGOV_PATH}/studies":
            return self._studies(request.query)
        if path == f"{CTGOV_PATH}/version":
            body = {"apiVersion": "2.0.5", "dataTimestamp": self.data_timestamp}
            return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()
        if path.startswith(f"{FEEDS_PATH}/") and path.endswith(".xml"):
            return self._feed(path.removeprefix(f"{FEEDS_PATH}/").removesuffix(".xml"), headers)
        return _text(404, f"no such endpoint: {path}")

    def _esearch(self, params: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        try:
            low = _day(params["mindate"], end=False) if params.get("mindate") else date.min
            high = _day(params["maxdate"], end=True) if params.get("maxdate") else date.max
            start = int(params.get("retstart", "0"))
            size = int(params.get("retmax", "20"))
        except ValueError as exc:
            return _text(400, f"bad parameter: {exc}")
        with self._lock:
            hits = sorted(
                (a for a in self.articles.values() if low <= a.edat <= high),
                key=lambda a: (a.edat, int(a.pmid)),
                reverse=True,
            )
        ids = [a.pmid for a in hits]
        result: dict[str, Any] = {"count": str(len(ids))}
        if params.get("usehistory") == "y":
            with self._lock:
                web_env = f"FAKE_WEBENV_{len(self._history)}"
                self._history[web_env] = ids
            result.update(webenv=web_env, querykey="1")
        if params.get("rettype") != "count":
            page = ids[start : start + size]
            result.update(
                retmax=str(len(page)), retstart=str(start), idlist=page, translationset=[],
                querytranslation=params.get("term", ""),
            )
        body = {"header": {"type": "esearch", "version": "0.3"}, "esearchresult": result}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    def _efetch(self, params: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        wanted = [pmid.strip() for pmid in params.get("id", "").split(",") if pmid.strip()]
        if not wanted and params.get("WebEnv"):
            with self._lock:
                stored = self._history.get(params["WebEnv"])
            if stored is None or params.get("query_key") != "1":
                return _text(400, "unknown WebEnv or query_key")
            try:
                start = int(params.get("retstart", "0"))
                wanted = stored[start : start + int(params.get("retmax", "20"))]
            except ValueError as exc:
                return _text(400, f"bad parameter: {exc}")
            if not wanted:
                return _text(400, "Empty result - nothing todo")
        if not wanted:
            return _text(400, "Empty id list - nothing todo")
        with self._lock:
            chunks = [self.articles[p].xml for p in wanted if p in self.articles]
        body = _SET_HEAD + "\n".join(chunks) + "\n</PubmedArticleSet>\n"
        return 200, {"Content-Type": "text/xml; charset=UTF-8"}, body.encode()

    def _studies(self, query: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        try:
            size = min(int(query.get("pageSize", "10")), 1000)
            offset = _offset(query["pageToken"]) if query.get("pageToken") else 0
        except ValueError:
            return _text(400, "invalid pageSize or pageToken")
        if size < 0:
            return _text(400, "pageSize must not be negative")
        size = size or 10
        window = _RANGE.search(query.get("filter.advanced", ""))
        with self._lock:
            studies = [copy.deepcopy(s) for s in self.studies.values()]
        if window:
            first = date.fromisoformat(window.group(1))
            studies = [s for s in studies if _study_day(s) >= first]
        if query.get("sort", "").startswith("LastUpdatePostDate"):
            studies.sort(key=_study_day, reverse=query["sort"].endswith(":desc"))
        page = studies[offset : offset + size]
        body: dict[str, Any] = {"studies": page}
        if query.get("countTotal") == "true" and offset == 0:
            body["totalCount"] = len(studies)
        if offset + size < len(studies):
            body["nextPageToken"] = _token(offset + size)
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    def _feed(self, name: str, headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            feed = self.feeds.get(name)
        if feed is None:
            return _text(404, f"no feed {name}")
        if headers.get("If-None-Match") == feed.etag:
            return 304, {"ETag": feed.etag}, b""
        return 200, {"Content-Type": feed.content_type, "ETag": feed.etag}, feed.body


class _Server(ThreadingHTTPServer):
    # Many concurrent clients (parallel feed fetches, several pollers) must not stall on
    # the default backlog of 5 (see RESEARCH.md, Traps).
    request_queue_size = 128
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeUpstream


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real upstreams
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        self._handle(form={})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        self._handle(form=dict(parse_qsl(raw, keep_blank_values=True)))

    def _handle(self, form: dict[str, str]) -> None:
        parts = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            form=form,
            headers=httpx.Headers(list(self.headers.items())),
        )
        fake = self.server.fake
        failure = fake._record(request)
        status, headers, body = fake._answer(request, self.headers)
        if failure is None:
            self.answer(status, headers, body)
            return
        # A misbehaving answer ends its connection, unless its behaviour keeps it open.
        self.close_connection = True
        # The client giving up first (reset, broken pipe) is what a test expects.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            failure.respond(self, status, dict(headers), body)

    def answer(self, status: int, headers: Mapping[str, str], body: bytes,
               *, length: int | None = None) -> None:
        """Status, headers and Content-Length (`length`, default the body's), then the
        body (all of it; a behaviour sends its own share after `answer(..., b"")`)."""
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
            self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


# -- misbehaviours ---------------------------------------------------------------------


def _status(status: int, headers: Mapping[str, str]) -> Behaviour:
    def respond(handler: _Handler, _status: int, _headers: dict[str, str], _body: bytes) -> None:
        body = b"" if status == 304 else f"failing on purpose: HTTP {status}".encode()
        extra = dict(headers)
        if status != 304:
            extra.setdefault("Content-Type", "text/plain")
        handler.answer(status, extra, body)
        handler.close_connection = False

    return respond


def drip(interval: float = 0.1, for_seconds: float = 10.0) -> Behaviour:
    """The real answer's headers, then its body one byte every `interval` seconds: each
    read is well within any read timeout, the whole never arrives in time. Gives up
    (closes) after `for_seconds`."""

    def respond(handler: _Handler, status: int, headers: dict[str, str], body: bytes) -> None:
        handler.answer(status, headers, b"", length=len(body))
        ends = time.monotonic() + for_seconds
        for offset in range(len(body)):
            if time.monotonic() > ends:
                return
            handler.wfile.write(body[offset : offset + 1])
            handler.wfile.flush()
            time.sleep(interval)

    return respond


def stall(for_seconds: float) -> Behaviour:
    """The real answer's headers, then silence for `for_seconds` (a read timeout)."""

    def respond(handler: _Handler, status: int, headers: dict[str, str], body: bytes) -> None:
        handler.answer(status, headers, b"", length=len(body))
        time.sleep(for_seconds)

    return respond


def truncate(handler: _Handler, status: int, headers: dict[str, str], body: bytes) -> None:
    """The real answer's headers with its full length, half its body, then the
    connection closes."""
    handler.answer(status, headers, b"", length=len(body))
    handler.wfile.write(body[: len(body) // 2])
    handler.wfile.flush()


def replace_body(body: bytes, **headers: str) -> Behaviour:
    """A 200 with `body` (and `headers`, e.g. Content-Encoding) instead of the real one."""

    def respond(handler: _Handler, _status: int, real: dict[str, str], _body: bytes) -> None:
        kept = {k: v for k, v in real.items() if k.lower() in ("content-type", "etag")}
        handler.answer(200, {**kept, **headers}, body)

    return respond


def endless_body(declared: int | None, for_seconds: float = 10.0) -> Behaviour:
    """A 200 whose body never ends: `declared` as its Content-Length (None: none, the
    connection's end marks the body's), zeros sent until the client hangs up or
    `for_seconds` pass."""

    def respond(handler: _Handler, _status: int, real: dict[str, str], _body: bytes) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", real.get("Content-Type", "application/octet-stream"))
        if declared is not None:
            handler.send_header("Content-Length", str(declared))
        handler.send_header("Connection", "close")
        handler.end_headers()
        chunk = b"0" * 65536
        ends = time.monotonic() + for_seconds
        while time.monotonic() < ends:
            handler.wfile.write(chunk)

    return respond


def hold(release: threading.Event, for_seconds: float = 60.0) -> Behaviour:
    """The real answer, once `release` is set (or `for_seconds` passed)."""

    def respond(handler: _Handler, status: int, headers: dict[str, str], body: bytes) -> None:
        release.wait(for_seconds)
        handler.answer(status, headers, body)
        handler.close_connection = False

    return respond


# -- helpers -----------------------------------------------------------------------------


def _article(chunk: str) -> Article:
    pmid = _PMID.search(chunk)
    entrez = _ENTREZ.search(chunk)
    if pmid is None or entrez is None:
        raise ValueError("recorded article without a PMID or an Entrez date")
    year, month, day = (int(part) for part in entrez.groups())
    return Article(pmid.group(1), chunk, date(year, month, day))


def _redate(article: Article, day: date) -> None:
    article.edat = day
    replacement = (
        f'<PubMedPubDate PubStatus="entrez"><Year>{day.year}</Year><Month>{day.month}</Month>'
        f"<Day>{day.day}</Day><Hour>0</Hour><Minute>0</Minute></PubMedPubDate>"
    )
    article.xml = _ENTREZ.sub(replacement, article.xml, count=1)


def _studies(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The studies of a recorded page, or the one study of a single-study record."""
    if "studies" in document:
        return [dict(s) for s in document["studies"]]
    return [dict(document)]


def _study_day(study: Mapping[str, Any]) -> date:
    struct = study["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]
    return date.fromisoformat(struct["date"])


def _day(value: str, *, end: bool) -> date:
    """An E-utilities date (YYYY, YYYY/MM or YYYY/MM/DD) as the first or last day."""
    parts = [int(p) for p in value.split("/")]
    if len(parts) == 3:
        return date(*parts)
    if len(parts) == 2:
        first = date(parts[0], parts[1], 1)
        if not end:
            return first
        return (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    if len(parts) == 1:
        return date(parts[0], 12, 31) if end else date(parts[0], 1, 1)
    raise ValueError(f"bad date {value!r}")


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError("bad token") from None
    if not text.startswith("offset:"):
        raise ValueError("bad token")
    return int(text.removeprefix("offset:"))


def _text(status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "text/plain"}, message.encode()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the recorded upstream payloads.")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument(
        "--recorded-dates",
        action="store_true",
        help="keep the recorded Entrez/last update dates (default: date everything today)",
    )
    args = parser.parse_args(argv)
    posted_on = None if args.recorded_dates else datetime.now(UTC).date()
    fake = FakeUpstream(posted_on=posted_on, port=args.port)
    for name, value in fake.env().items():
        print(f"export {name}={value}")
    print(f"# {len(fake.articles)} articles, {len(fake.studies)} studies; Ctrl-C stops",
          flush=True)
    try:
        fake._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake._server.server_close()


if __name__ == "__main__":
    main()
