"""A fake NCBI E-utilities for the PubMed adapter's tests.

`FakeEutils` is an httpx.MockTransport handler: it records every request (URL query and
form body merged, so GET and POST read alike) and answers ESearch and EFetch through
replaceable handlers: recorded payloads, synthetic records for any requested PMID, or an
ESearch that honestly lists at most 9,999 ids of a set of records by entry date.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

import httpx

DATA = Path(__file__).resolve().parent.parent / "data"
RECORDED = DATA / "upstream" / "pubmed"
SYNTHETIC = DATA / "pubmed_synthetic"
BASE_URL = "http://eutils.test/entrez/eutils"
ESEARCH_LIMIT = 9999


@dataclass(frozen=True)
class Sent:
    """One request the adapter sent."""

    method: str
    endpoint: str  # "esearch.fcgi" / "efetch.fcgi"
    params: dict[str, str]  # query string and form body together
    in_body: bool  # the parameters came in a form body

    @classmethod
    def of(cls, request: httpx.Request) -> Sent:
        form = dict(parse_qsl(request.content.decode())) if request.method == "POST" else {}
        return cls(
            method=request.method,
            endpoint=request.url.path.rsplit("/", 1)[-1],
            params={**dict(request.url.params), **form},
            in_body=bool(form),
        )

    @property
    def ids(self) -> list[str]:
        return self.params["id"].split(",")

    @property
    def window(self) -> tuple[str, str]:
        return self.params["mindate"], self.params["maxdate"]


Handler = Callable[[Sent], httpx.Response]


@dataclass
class FakeEutils:
    esearch: Handler = field(default_factory=lambda: esearch_ids([]))
    efetch: Handler = field(default_factory=lambda: synthetic_efetch)
    sent: list[Sent] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        sent = Sent.of(request)
        self.sent.append(sent)
        handler = {"esearch.fcgi": self.esearch, "efetch.fcgi": self.efetch}[sent.endpoint]
        return handler(sent)

    def calls(self, endpoint: str) -> list[Sent]:
        return [sent for sent in self.sent if sent.endpoint == endpoint]


# -- ESearch answers ---------------------------------------------------------------------


def esearch_body(
    ids: Sequence[str],
    *,
    count: int | None = None,
    errorlist: Mapping[str, list[str]] | None = None,
) -> bytes:
    result: dict[str, object] = {
        "count": str(len(ids) if count is None else count),
        "retmax": str(len(ids)),
        "retstart": "0",
        "idlist": list(ids),
        "translationset": [],
        "querytranslation": "",
    }
    if errorlist is not None:
        result["errorlist"] = dict(errorlist)
    answer = {"header": {"type": "esearch", "version": "0.3"}, "esearchresult": result}
    return json.dumps(answer).encode()


def esearch_ids(
    ids: Sequence[str], *, errorlist: Mapping[str, list[str]] | None = None
) -> Handler:
    body = esearch_body(ids, errorlist=errorlist)
    return lambda sent: httpx.Response(200, content=body)


def esearch_by_entry_date(
    records: Mapping[date, Sequence[str]], *, errorlist: Mapping[str, list[str]] | None = None,
    history: dict[str, list[str]] | None = None,
) -> Handler:
    """An ESearch over records keyed by entry date: count is the truth, idlist at most
    9,999 ids, as NCBI does. With `history`, `usehistory=y` keeps the listed ids there
    under a new WebEnv (query key 1), for `history_efetch`."""

    def answer(sent: Sent) -> httpx.Response:
        low, high = (datetime.strptime(value, "%Y/%m/%d").date() for value in sent.window)
        ids = [pmid for day, day_ids in sorted(records.items()) if low <= day <= high
               for pmid in day_ids]
        body = esearch_body(ids[:ESEARCH_LIMIT], count=len(ids), errorlist=errorlist)
        if history is not None and sent.params.get("usehistory") == "y":
            web_env = f"WEBENV_{len(history)}"
            history[web_env] = ids[:ESEARCH_LIMIT]
            answer_json = json.loads(body)
            answer_json["esearchresult"].update(webenv=web_env, querykey="1")
            body = json.dumps(answer_json).encode()
        return httpx.Response(200, content=body)

    return answer


def history_efetch(history: Mapping[str, list[str]]) -> Handler:
    """Synthetic records of a kept ESearch result (`WebEnv`, `query_key`, `retstart`,
    `retmax`), or of the ids asked for."""

    def answer(sent: Sent) -> httpx.Response:
        if "id" in sent.params:
            return synthetic_efetch(sent)
        assert sent.params["query_key"] == "1"
        start, size = int(sent.params["retstart"]), int(sent.params["retmax"])
        kept = history[sent.params["WebEnv"]][start : start + size]
        return httpx.Response(200, content=article_set([synthetic_article(p) for p in kept]))

    return answer


# -- EFetch answers ----------------------------------------------------------------------


def synthetic_article(pmid: str) -> str:
    return (
        f"<PubmedArticle><MedlineCitation><PMID>{escape(pmid)}</PMID><Article>"
        "<Journal><JournalIssue><PubDate><Year>2025</Year><Month>Jun</Month></PubDate>"
        "</JournalIssue><Title>Synthetic journal</Title></Journal>"
        f"<ArticleTitle>Record {escape(pmid)}</ArticleTitle></Article></MedlineCitation>"
        "</PubmedArticle>"
    )


def article_set(articles: Sequence[str]) -> bytes:
    return ("<?xml version='1.0'?><PubmedArticleSet>" + "".join(articles)
            + "</PubmedArticleSet>").encode()


def synthetic_efetch(sent: Sent) -> httpx.Response:
    """A record for every requested PMID."""
    return httpx.Response(200, content=article_set([synthetic_article(p) for p in sent.ids]))


def efetch_leaving_out(*missing: str) -> Handler:
    def answer(sent: Sent) -> httpx.Response:
        kept = [synthetic_article(pmid) for pmid in sent.ids if pmid not in missing]
        return httpx.Response(200, content=article_set(kept))

    return answer


# -- generic answers ---------------------------------------------------------------------


def recorded_bytes(name: str) -> bytes:
    return (RECORDED / name).read_bytes()


def body(content: bytes, *, status: int = 200, headers: Mapping[str, str] | None = None
         ) -> Handler:
    return lambda sent: httpx.Response(status, content=content, headers=headers)


def recorded(name: str, *, status: int = 200, headers: Mapping[str, str] | None = None
             ) -> Handler:
    return body(recorded_bytes(name), status=status, headers=headers)


def raising(error: Exception) -> Handler:
    def answer(sent: Sent) -> httpx.Response:
        raise error

    return answer


def in_turn(*handlers: Handler) -> Handler:
    """The n-th call is answered by the n-th handler; the last one answers the rest."""
    queue: Iterator[Handler] = iter(handlers)
    last = handlers[-1]

    def answer(sent: Sent) -> httpx.Response:
        return next(queue, last)(sent)

    return answer
