"""PubMed through NCBI E-utilities: ESearch finds the PMIDs that entered PubMed in a date
window, EFetch (XML) brings their records.

Why it is built this way:
- The window is by Entrez date (`datetype=edat`, the day a record entered PubMed) and
  reaches two days behind the last success, so records indexed late are not missed; the
  overlap costs nothing because ids already stored are not fetched again.
- ESearch lists at most 9,999 ids of one result, so a window holding more is halved until
  every part fits; a single day that still holds more is taken as far as ESearch goes,
  with a warning that says so.
- A record that ESearch listed but EFetch did not return holds the window: the records
  that did come back are delivered, and the cursor keeps its window (and counts the miss
  in `cursor["missing"]`), so the next poll searches the same days again, fetching only
  what is not stored yet. A record missing in `MISSING_POLLS_BEFORE_SKIP` consecutive
  polls is given up with a warning, so one record NCBI never serves cannot block the
  source for good; it is still fetched while ESearch lists it, in case it turns up.
- The catalogue-wide poll (`poll_catalogue`) asks for every record of the window
  (`all[sb]`) once for all targets, which match locally: ESearch keeps the result on
  NCBI's History server (`usehistory=y`), a window past 9,999 records is split the same
  way, and EFetch pages through the stored result (`query_key`, `WebEnv`, `retstart`)
  in batches of `DELTA_BATCH`; when some records of a part are stored already, only the
  others are fetched, by id. Its requests grow with the day's records, never with the
  number of targets.
- `tool`, `email` and `api_key` go on every call (NCBI's usage policy); rate limits and
  retries live in the shared UpstreamClient, not here.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from alerts.config import Settings
from alerts.sources.base import (
    FetchedItem,
    ItemKind,
    KnownIds,
    PollRequest,
    PollResult,
    RetryLater,
    Source,
    SourceError,
    SourceName,
    TargetQuery,
)
from alerts.sources.http import UpstreamClient, counts_requests
from alerts.sources.xml import element_text, parse_xml

DEFAULT_BASE_URL = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils"
ARTICLE_URL = "https://pubmed.ncbi.nlm.nih.gov/{pmid}/"
DEFAULT_TOOL = "target-alerts"
#: ESearch serves records 0..9998 of a result (retstart=9999 fails): 9,999 ids per query.
ESEARCH_MAX_IDS = 9999
#: NCBI: above about 200 UIDs, send EFetch as a POST.
EFETCH_GET_MAX_IDS = 200
#: NCBI: terms longer than "several hundred characters" go in a POST body.
LONG_TERM_CHARS = 300
#: How far behind the last successful window's end the next window starts.
WINDOW_OVERLAP = timedelta(days=2)
#: Ids asked of `known_ids` at once (keeps the ingest's IN (...) lists bounded).
KNOWN_IDS_CHUNK = 1000
#: The largest answer read: a 200-record EFetch is a few MB, so only a broken or hostile
#: upstream comes near it, and it is stopped while downloading.
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
#: Consecutive polls a listed record may be missing from EFetch before it is skipped.
MISSING_POLLS_BEFORE_SKIP = 3
#: How long to wait after NCBI answered 200 with its rate-limit error body.
RATE_LIMITED_RETRY_SECONDS = 60.0

#: The ESearch term that selects every PubMed record (the catalogue-wide poll).
ALL_RECORDS_TERM = "all[sb]"
#: Records per EFetch of the catalogue-wide poll: NCBI suggests "several hundred".
DELTA_BATCH = 500

ESEARCH = "pubmed esearch"
EFETCH = "pubmed efetch"

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
#: The first date of a MedlineDate: "2019 Jan-Feb", "1998 Dec-1999 Jan", "2019 Jan 15-21",
#: "1975-1976", "2000 Spring".
_MEDLINE_DATE = re.compile(r"(\d{4})(?:\s+([A-Za-z]+)(?:\s+(\d{1,2})\b)?)?")


@dataclass(frozen=True)
class _SearchPart:
    """One ESearch result kept on the History server: a window that fits ESearch."""

    ids: list[str]
    web_env: str
    query_key: str


class PubMedSource(Source):
    """The PubMed adapter (see the module docstring for the polling contract)."""

    name: ClassVar[SourceName] = SourceName.pubmed

    def __init__(
        self,
        client: UpstreamClient,
        *,
        base_url: str = DEFAULT_BASE_URL,
        tool: str = DEFAULT_TOOL,
        email: str | None = None,
        api_key: str | None = None,
        batch_size: int = EFETCH_GET_MAX_IDS,
    ) -> None:
        if not 1 <= batch_size <= 10_000:
            raise ValueError("batch_size must be between 1 and 10000")
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.tool = tool
        self.email = email
        self.api_key = api_key
        self.batch_size = batch_size

    @classmethod
    def from_settings(cls, settings: Settings, client: UpstreamClient) -> PubMedSource:
        key = settings.ncbi_api_key.get_secret_value() if settings.ncbi_api_key else None
        return cls(
            client,
            base_url=settings.pubmed_base,
            tool=settings.ncbi_tool,
            email=settings.ncbi_email or None,
            api_key=key or None,
        )

    def is_configured_for(self, target: TargetQuery) -> bool:
        return bool(target.pubmed_query and target.pubmed_query.strip())

    @counts_requests
    async def _poll(self, request: PollRequest) -> PollResult:
        target, cursor = request.target, request.cursor
        term = (target.pubmed_query or "").strip()
        if not term:
            raise SourceError(f"pubmed: target {target.slug!r} has no PubMed query")
        warnings: list[str] = []
        start, end = search_window(cursor, now=request.now, since=request.since, warnings=warnings)

        ids = list(dict.fromkeys(await self._search(term, start, end, warnings)))
        wanted = _unknown(ids, request.known_ids)
        items: list[FetchedItem] = []
        missing: list[str] = []
        for offset in range(0, len(wanted), self.batch_size):
            batch = wanted[offset : offset + self.batch_size]
            fetched = await self._efetch(batch)
            items.extend(fetched)
            returned = {item.external_id for item in fetched}
            missing.extend(pmid for pmid in batch if pmid not in returned)
            if request.progress is not None:
                request.progress(EFETCH, offset + len(batch), len(wanted))

        return PollResult(
            items=items,
            cursor=next_cursor(cursor, start=start, end=end, missing=missing, warnings=warnings),
            warnings=tuple(dict.fromkeys(warnings)),
        )

    @counts_requests
    async def _poll_catalogue(self, request: PollRequest) -> PollResult:
        """Every record that entered PubMed in the window, for the whole catalogue (see
        the module docstring); the same window and cursor as `poll`."""
        cursor = request.cursor
        warnings: list[str] = []
        start, end = search_window(cursor, now=request.now, since=request.since, warnings=warnings)
        parts = await self._search_history(start, end, warnings)
        total = sum(len(part.ids) for part in parts)
        items: list[FetchedItem] = []
        missing: list[str] = []
        done = 0
        for part in parts:
            wanted = _unknown(part.ids, request.known_ids)
            # Nothing stored yet: page through the History server; else fetch by id.
            by_history = len(wanted) == len(part.ids)
            for offset in range(0, len(wanted), DELTA_BATCH):
                batch = wanted[offset : offset + DELTA_BATCH]
                fetched = (
                    await self._efetch_history(part, offset, batch)
                    if by_history
                    else await self._efetch(batch)
                )
                items.extend(fetched)
                returned = {item.external_id for item in fetched}
                missing.extend(pmid for pmid in batch if pmid not in returned)
            done += len(part.ids)
            if request.progress is not None:
                request.progress(EFETCH, done, total)
        return PollResult(
            items=items,
            cursor=next_cursor(cursor, start=start, end=end, missing=missing, warnings=warnings),
            warnings=tuple(dict.fromkeys(warnings)),
        )

    async def _search_history(
        self, start: date, end: date, warnings: list[str]
    ) -> list[_SearchPart]:
        """[start, end] as History-server results of at most 9,999 records each: a window
        holding more is halved until every part fits (a single day that still holds more
        is taken as far as ESearch goes, with a warning)."""
        params = {
            "db": "pubmed",
            "term": ALL_RECORDS_TERM,
            "datetype": "edat",
            "mindate": start.strftime("%Y/%m/%d"),
            "maxdate": end.strftime("%Y/%m/%d"),
            "usehistory": "y",
            "retmode": "json",
            "retmax": str(ESEARCH_MAX_IDS),
            **self._identity(),
        }
        response = await self._call("esearch.fcgi", params, ESEARCH, post=False)
        count, ids = parse_esearch(response.content, warnings)
        if count > len(ids) and start < end:
            middle = start + (end - start) // 2
            return [
                *await self._search_history(start, middle, warnings),
                *await self._search_history(middle + timedelta(days=1), end, warnings),
            ]
        if count > len(ids):
            warnings.append(
                f"PubMed lists {count} records entered on {start.isoformat()} but ESearch "
                f"returns only the first {len(ids)}; {count - len(ids)} were not fetched"
            )
        web_env, query_key = parse_history(response.content)
        return [_SearchPart(list(dict.fromkeys(ids)), web_env, query_key)]

    # -- ESearch -------------------------------------------------------------------------

    async def _search(self, term: str, start: date, end: date, warnings: list[str]) -> list[str]:
        """The ids of [start, end], halving the window while ESearch cannot list them all."""
        count, ids = await self._esearch(term, start, end, warnings)
        if count <= len(ids):
            return ids
        if start >= end:
            warnings.append(
                f"PubMed lists {count} records entered on {start.isoformat()} but ESearch "
                f"returns only the first {len(ids)}; {count - len(ids)} were not fetched"
            )
            return ids
        middle = start + (end - start) // 2
        earlier = await self._search(term, start, middle, warnings)
        later = await self._search(term, middle + timedelta(days=1), end, warnings)
        return earlier + later

    async def _esearch(
        self, term: str, start: date, end: date, warnings: list[str]
    ) -> tuple[int, list[str]]:
        params = {
            "db": "pubmed",
            "term": term,
            "datetype": "edat",
            "mindate": start.strftime("%Y/%m/%d"),
            "maxdate": end.strftime("%Y/%m/%d"),
            "retmode": "json",
            "retmax": str(ESEARCH_MAX_IDS),
            **self._identity(),
        }
        long_term = len(term) > LONG_TERM_CHARS
        response = await self._call("esearch.fcgi", params, ESEARCH, post=long_term)
        return parse_esearch(response.content, warnings)

    # -- EFetch --------------------------------------------------------------------------

    async def _efetch(self, ids: Sequence[str]) -> list[FetchedItem]:
        params = {"db": "pubmed", "retmode": "xml", "id": ",".join(ids), **self._identity()}
        response = await self._call(
            "efetch.fcgi", params, EFETCH, post=len(ids) > EFETCH_GET_MAX_IDS
        )
        if not response.content.strip():
            raise RetryLater(f"{EFETCH}: empty response body", seconds=RATE_LIMITED_RETRY_SECONDS)
        by_id = {item.external_id: item for item in parse_efetch(response.content)}
        # In the order asked; a requested id not answered is the caller's to count.
        return [by_id[pmid] for pmid in ids if pmid in by_id]

    async def _efetch_history(
        self, part: _SearchPart, offset: int, ids: Sequence[str]
    ) -> list[FetchedItem]:
        """The records `ids`, at `offset` of the History-server result `part`."""
        params = {
            "db": "pubmed",
            "retmode": "xml",
            "query_key": part.query_key,
            "WebEnv": part.web_env,
            "retstart": str(offset),
            "retmax": str(len(ids)),
            **self._identity(),
        }
        response = await self._call("efetch.fcgi", params, EFETCH, post=False)
        if not response.content.strip():
            raise RetryLater(f"{EFETCH}: empty response body", seconds=RATE_LIMITED_RETRY_SECONDS)
        by_id = {item.external_id: item for item in parse_efetch(response.content)}
        return [by_id[pmid] for pmid in ids if pmid in by_id]

    # -- plumbing ------------------------------------------------------------------------

    def _identity(self) -> dict[str, str]:
        """What NCBI's usage policy asks on every call."""
        identity = {"tool": self.tool}
        if self.email:
            identity["email"] = self.email
        if self.api_key:
            identity["api_key"] = self.api_key
        return identity

    async def _call(
        self, endpoint: str, params: dict[str, str], what: str, *, post: bool
    ) -> httpx.Response:
        url = f"{self.base_url}/{endpoint}"
        if post:
            return await self.client.request(
                "POST", url, what=what, data=params, max_bytes=MAX_RESPONSE_BYTES
            )
        return await self.client.request(
            "GET", url, what=what, params=params, max_bytes=MAX_RESPONSE_BYTES
        )


def search_window(
    cursor: Mapping[str, Any], *, now: datetime, since: datetime, warnings: list[str]
) -> tuple[date, date]:
    """(mindate, maxdate) in UTC days: from two days before the last window's end (else
    from `since`) to today."""
    end = _utc(now).date()
    start = _utc(since).date()
    stored = cursor.get("window_end")
    if stored:
        try:
            start = date.fromisoformat(str(stored)) - WINDOW_OVERLAP
        except ValueError:
            warnings.append(
                f"PubMed cursor window_end={stored!r} unreadable; searched from {start}"
            )
    return min(start, end), end


def next_cursor(
    cursor: Mapping[str, Any],
    *,
    start: date,
    end: date,
    missing: Sequence[str],
    warnings: list[str],
) -> dict[str, Any]:
    """The cursor after a poll of [start, end] in which EFetch did not return `missing`.

    `cursor["missing"]` counts, per PMID, the consecutive polls it has been missing; an id
    answered (or no longer listed) drops out. While an id is missing for fewer than
    `MISSING_POLLS_BEFORE_SKIP` polls, the window does not advance: the cursor is set so
    the next poll starts at `start` again. Ids past that count are reported once and no
    longer hold the window.
    """
    before = _missing_counts(cursor.get("missing"))
    counts = {pmid: before.get(pmid, 0) + 1 for pmid in missing}
    holding = sorted(pmid for pmid, count in counts.items() if count < MISSING_POLLS_BEFORE_SKIP)
    for pmid, count in counts.items():
        if count == MISSING_POLLS_BEFORE_SKIP:
            warnings.append(f"PubMed listed PMID {pmid} but never returned it; skipped")
    if holding:
        shown = ", ".join(holding[:5]) + (" ..." if len(holding) > 5 else "")
        warnings.append(
            f"{EFETCH}: {len(holding)} listed records not returned ({shown}); the window "
            f"from {start.isoformat()} will be searched again"
        )
        # search_window starts WINDOW_OVERLAP before window_end: this end restarts at
        # `start`, also on a first poll, whose `since` moves on with the clock.
        window_end = start + WINDOW_OVERLAP
    else:
        window_end = end
    next_state: dict[str, Any] = {"window_end": window_end.isoformat()}
    if counts:
        next_state["missing"] = counts
    return next_state


def _missing_counts(stored: Any) -> dict[str, int]:
    """`cursor["missing"]` as {pmid: count}; anything unreadable counts as not missing."""
    if not isinstance(stored, Mapping):
        return {}
    return {
        str(pmid): count
        for pmid, count in stored.items()
        if isinstance(count, int) and not isinstance(count, bool) and count > 0
    }


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _unknown(ids: list[str], known_ids: KnownIds | None) -> list[str]:
    if known_ids is None or not ids:
        return ids
    known: set[str] = set()
    for offset in range(0, len(ids), KNOWN_IDS_CHUNK):
        known.update(known_ids(ids[offset : offset + KNOWN_IDS_CHUNK]))
    return [pmid for pmid in ids if pmid not in known]


# -- parsing: ESearch JSON ---------------------------------------------------------------


def parse_esearch(body: bytes, warnings: list[str]) -> tuple[int, list[str]]:
    """(count, ids) of an ESearch JSON answer; terms PubMed dropped become warnings."""
    if not body.strip():
        raise RetryLater(f"{ESEARCH}: empty response body", seconds=RATE_LIMITED_RETRY_SECONDS)
    try:
        # strict=False: NCBI's ERROR strings can hold raw newlines.
        answer = json.loads(body, strict=False)
    except ValueError as exc:
        raise SourceError(
            f"{ESEARCH}: the answer is not JSON ({exc}); it starts {_start(body)!r}"
        ) from None
    except RecursionError:  # "[[[[…" nested past the interpreter's stack
        raise SourceError(f"{ESEARCH}: the answer is not JSON (nested too deeply)") from None
    if not isinstance(answer, dict):
        raise SourceError(f"{ESEARCH}: unexpected JSON (not an object): {_start(body)!r}")
    if answer.get("error"):
        message = str(answer["error"])
        if "rate limit" in message.lower():
            raise RetryLater(f"{ESEARCH}: {message}", seconds=RATE_LIMITED_RETRY_SECONDS)
        raise SourceError(f"{ESEARCH}: {message}")
    result = answer.get("esearchresult")
    if not isinstance(result, dict):
        raise SourceError(f"{ESEARCH}: no 'esearchresult' in the answer: {_start(body)!r}")
    if result.get("ERROR"):
        raise SourceError(f"{ESEARCH}: {' '.join(str(result['ERROR']).split())}")
    try:
        count = int(result["count"])
        ids = [str(int(pmid)) for pmid in result.get("idlist") or []]
    except (KeyError, TypeError, ValueError):
        raise SourceError(f"{ESEARCH}: missing or invalid count/idlist") from None
    errors = result.get("errorlist") or {}
    if isinstance(errors, dict):
        for phrase in errors.get("phrasesnotfound") or []:
            warnings.append(f"PubMed dropped phrase not found: {phrase!r}")
        for field_name in errors.get("fieldsnotfound") or []:
            warnings.append(f"PubMed dropped field not found: {field_name!r}")
    return count, ids


def parse_history(body: bytes) -> tuple[str, str]:
    """(WebEnv, QueryKey) of an ESearch JSON answer sent with `usehistory=y` (an answer
    `parse_esearch` accepted); SourceError when they are missing."""
    result = json.loads(body, strict=False).get("esearchresult") or {}
    web_env, query_key = result.get("webenv"), result.get("querykey")
    if not isinstance(web_env, str) or not web_env or query_key in (None, ""):
        raise SourceError(f"{ESEARCH}: usehistory=y answered no webenv/querykey")
    return web_env, str(query_key)


def _start(body: bytes, limit: int = 80) -> str:
    return " ".join(body[:limit].decode("utf-8", "replace").split())


# -- parsing: EFetch XML -----------------------------------------------------------------


def parse_efetch(body: bytes) -> list[FetchedItem]:
    """The records of a PubmedArticleSet, journal articles and book chapters alike.

    A record without a PMID is left out (the caller notices the id missing)."""
    root = parse_xml(body, what=EFETCH)
    if root.tag != "PubmedArticleSet":
        detail = element_text(root.find(".//ERROR"))
        raise SourceError(
            f"{EFETCH}: expected <PubmedArticleSet>, got <{root.tag}>"
            + (f": {detail}" if detail else "")
        )
    items: list[FetchedItem] = []
    for record in root:
        if record.tag == "PubmedArticle":
            item = parse_article(record)
        elif record.tag == "PubmedBookArticle":
            item = parse_book_article(record)
        else:
            continue
        if item is not None:
            items.append(item)
    return items


def parse_article(record: ET.Element) -> FetchedItem | None:
    """One <PubmedArticle> (paths as in NLM's PubMed DTD)."""
    citation = _child(record, "MedlineCitation")
    article = _child(citation, "Article")
    pmid = element_text(citation.find("PMID")) or _article_id(
        record.find("PubmedData/ArticleIdList"), "pubmed"
    )
    if not pmid:
        return None
    pub_date, published_at = publication_date(article.find("Journal/JournalIssue/PubDate"))
    if published_at is None:
        for electronic in article.findall("ArticleDate"):
            published_at = _date_of(electronic)
            if published_at is not None:
                pub_date = pub_date or published_at.date().isoformat()
                break
    return _item(
        pmid,
        title=element_text(article.find("ArticleTitle"))
        or element_text(article.find("VernacularTitle")),
        abstract=abstract_text(article.find("Abstract")),
        published_at=published_at,
        data={
            "journal": element_text(article.find("Journal/Title")),
            "journal_abbrev": element_text(citation.find("MedlineJournalInfo/MedlineTA"))
            or element_text(article.find("Journal/ISOAbbreviation")),
            "authors": author_names(article.find("AuthorList")),
            "doi": _elocation_doi(article)
            or _article_id(record.find("PubmedData/ArticleIdList"), "doi"),
            "pub_date": pub_date,
            "publication_types": [
                element_text(kind)
                for kind in article.findall("PublicationTypeList/PublicationType")
            ],
            **subject_terms(citation),
        },
    )


def parse_book_article(record: ET.Element) -> FetchedItem | None:
    """One <PubmedBookArticle> (a book chapter, e.g. GeneReviews): PubMed lists these too,
    and leaving them out would look like a missing record."""
    document = _child(record, "BookDocument")
    book = _child(document, "Book")
    pmid = element_text(document.find("PMID")) or _article_id(
        record.find("PubmedBookData/ArticleIdList"), "pubmed"
    )
    if not pmid:
        return None
    pub_date, published_at = publication_date(book.find("PubDate"))
    if published_at is None:
        published_at = _date_of(document.find("ContributionDate"))
    book_title = element_text(book.find("BookTitle"))
    authors = next(
        (
            author_names(group)
            for group in document.findall("AuthorList")
            if group.get("Type", "authors") == "authors"
        ),
        [],
    )
    return _item(
        pmid,
        title=element_text(document.find("ArticleTitle")) or book_title,
        abstract=abstract_text(document.find("Abstract")),
        published_at=published_at,
        data={
            "journal": book_title,
            "journal_abbrev": "",
            "authors": authors,
            "doi": _article_id(document.find("ArticleIdList"), "doi")
            or _article_id(record.find("PubmedBookData/ArticleIdList"), "doi"),
            "pub_date": pub_date,
            "publication_types": [
                element_text(kind) for kind in document.findall("PublicationType")
            ],
            "publisher": element_text(book.find("Publisher/PublisherName")),
            **subject_terms(document),
        },
    )


def _item(
    pmid: str,
    *,
    title: str,
    abstract: str,
    published_at: datetime | None,
    data: dict[str, Any],
) -> FetchedItem:
    return FetchedItem(
        source=SourceName.pubmed,
        external_id=pmid,
        kind=ItemKind.publication,
        title=title or f"PubMed record {pmid}",
        # Quoted: the id comes from the body, and the link is printed in the text part.
        url=ARTICLE_URL.format(pmid=quote(pmid, safe="")),
        summary=abstract,
        published_at=published_at,
        data=data,
    )


def subject_terms(record: ET.Element) -> dict[str, list[str]]:
    """What a record says it is about, for the match rule: author `keywords` (every
    KeywordList), `mesh` (MeSH descriptor names) and `substances` (ChemicalList names)."""
    return {
        "keywords": _unique(element_text(k) for k in record.findall("KeywordList/Keyword")),
        "mesh": _unique(
            element_text(d) for d in record.findall("MeshHeadingList/MeshHeading/DescriptorName")
        ),
        "substances": _unique(
            element_text(c) for c in record.findall("ChemicalList/Chemical/NameOfSubstance")
        ),
    }


def _unique(texts: Iterable[str]) -> list[str]:
    return [text for text in dict.fromkeys(texts) if text]


def abstract_text(abstract: ET.Element | None) -> str:
    """The AbstractText parts in order; a labelled (structured) part reads "LABEL: text";
    parts are separated by a blank line."""
    if abstract is None:
        return ""
    paragraphs = []
    for part in abstract.findall("AbstractText"):
        text = element_text(part)
        if not text:
            continue
        label = " ".join((part.get("Label") or "").split())
        paragraphs.append(f"{label}: {text}" if label else text)
    return "\n\n".join(paragraphs)


def author_names(authors: ET.Element | None) -> list[str]:
    """ "LastName Initials" (plus Suffix), or the group's CollectiveName; authors marked
    invalid (ValidYN="N", e.g. corrected by an erratum) are left out."""
    if authors is None:
        return []
    names = []
    for author in authors.findall("Author"):
        if author.get("ValidYN") == "N":
            continue
        collective = element_text(author.find("CollectiveName"))
        parts = [element_text(author.find(tag)) for tag in ("LastName", "Initials", "Suffix")]
        name = collective or " ".join(part for part in parts if part)
        if name:
            names.append(name)
    return names


def publication_date(pub_date: ET.Element | None) -> tuple[str, datetime | None]:
    """(the date as PubMed wrote it, its first day as an aware UTC datetime or None).

    Handles Year/Month/Day (month as a name or a number), Year/Season, and the free-text
    MedlineDate ("2019 Jan-Feb", "1998 Dec-1999 Jan"), whose first date is taken."""
    if pub_date is None:
        return "", None
    medline = element_text(pub_date.find("MedlineDate"))
    if medline:
        match = _MEDLINE_DATE.search(medline)
        if match is None:
            return medline, None
        return medline, _datetime(*match.groups())
    parts = [element_text(pub_date.find(tag)) for tag in ("Year", "Month", "Day", "Season")]
    return " ".join(part for part in parts if part), _date_of(pub_date)


def _date_of(element: ET.Element | None) -> datetime | None:
    if element is None:
        return None
    return _datetime(
        element_text(element.find("Year")),
        element_text(element.find("Month")),
        element_text(element.find("Day")),
    )


def _datetime(year: str | None, month: str | None, day: str | None) -> datetime | None:
    """Midnight UTC of the most precise valid date the parts give (year, month, day)."""
    if not year or not year.isdigit() or len(year) != 4:
        return None
    number = _month_number(month or "")
    if number is None:
        return datetime(int(year), 1, 1, tzinfo=UTC)
    if day and day.isdigit():
        try:
            return datetime(int(year), number, int(day), tzinfo=UTC)
        except ValueError:
            pass
    return datetime(int(year), number, 1, tzinfo=UTC)


def _month_number(token: str) -> int | None:
    token = token.strip().lower()
    if token.isdigit():
        return int(token) if 1 <= int(token) <= 12 else None
    return _MONTHS.get(token[:3]) if len(token) >= 3 else None


def _elocation_doi(article: ET.Element) -> str:
    for location in article.findall("ELocationID"):
        if location.get("EIdType") == "doi" and location.get("ValidYN") != "N":
            doi = element_text(location)
            if doi:
                return doi
    return ""


def _article_id(id_list: ET.Element | None, id_type: str) -> str:
    if id_list is None:
        return ""
    for article_id in id_list.findall("ArticleId"):
        if article_id.get("IdType") == id_type:
            value = element_text(article_id)
            if value:
                return value
    return ""


def _child(parent: ET.Element, tag: str) -> ET.Element:
    """The child element, or an empty one, so a record missing a block still parses."""
    found = parent.find(tag)
    return found if found is not None else ET.Element(tag)
