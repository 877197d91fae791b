"""The PubMed adapter, against recorded NCBI payloads and a fake E-utilities served
through a real UpstreamClient over httpx.MockTransport."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerts.sources import http as http_module
from alerts.sources.base import (
    ItemKind,
    PollResult,
    Progress,
    RetryLater,
    SourceError,
    SourceName,
    TargetQuery,
)
from alerts.sources.http import UpstreamClient, host_key
from alerts.sources.pubmed import (
    LONG_TERM_CHARS,
    PubMedSource,
    parse_efetch,
    publication_date,
)
from alerts.sources.registry import make_adapter, make_client
from alerts.sources.xml import parse_xml
from tests.conftest import make_settings
from tests.test_sources.pubmed_fakes import (
    BASE_URL,
    SYNTHETIC,
    FakeEutils,
    Handler,
    article_set,
    body,
    efetch_leaving_out,
    esearch_by_entry_date,
    esearch_ids,
    history_efetch,
    in_turn,
    raising,
    recorded,
    recorded_bytes,
    synthetic_article,
    synthetic_efetch,
)

NOW = datetime(2025, 6, 11, 9, 30, tzinfo=UTC)
SINCE = datetime(2025, 6, 4, 9, 30, tzinfo=UTC)
QUERY = '"HER2"[tiab] AND "exon 20"[tiab]'
TARGET = TargetQuery(slug="her2-exon20", pubmed_query=QUERY)
IDENTITY = {"tool": "alerts-test", "email": "ops@example.org"}


def ids(n: int, first: int = 40_000_000) -> list[str]:
    return [str(first + i) for i in range(n)]


def run_poll(
    eutils: FakeEutils,
    *,
    cursor: dict[str, Any] | None = None,
    now: datetime = NOW,
    since: datetime = SINCE,
    target: TargetQuery = TARGET,
    known: Collection[str] | None = None,
    progress: Progress | None = None,
    max_retries: int = 2,
    **options: Any,
) -> PollResult:
    """One poll through a real UpstreamClient (no backoff) talking to `eutils`."""
    known_ids = None if known is None else (lambda batch: [p for p in batch if p in known])

    async def go() -> PollResult:
        transport = httpx.MockTransport(eutils)
        async with UpstreamClient(
            transport=transport, backoff_base=0, max_retries=max_retries
        ) as client:
            source = PubMedSource(client, base_url=BASE_URL, **(IDENTITY | options))
            return await source.poll(
                target, cursor or {}, now=now, since=since, known_ids=known_ids,
                progress=progress,
            )

    return asyncio.run(go())


def failing_poll(eutils: FakeEutils, error: type[Exception], **kwargs: Any) -> Exception:
    with pytest.raises(error) as caught:
        run_poll(eutils, **kwargs)
    return caught.value


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The client's inline waits (Retry-After, backoff), recorded instead of slept."""
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def record(delay: float) -> None:
        delays.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(http_module.asyncio, "sleep", record)
    return delays


# -- parsing recorded EFetch answers -------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "pmids"),
    [
        ("efetch_her2_tdxd_32306807.xml", ["32306807"]),
        ("efetch_nsclc_emerging_targets_39337530.xml", ["39337530"]),
        ("efetch_2articles.xml", ["12091962", "9997"]),
        (
            "efetch_cancer_6articles_2015.xml",
            ["19008416", "18927361", "18787170", "18487186", "18239126", "18239125"],
        ),
    ],
)
def test_every_recorded_record_parses_in_order(payload: str, pmids: list[str]) -> None:
    items = parse_efetch(recorded_bytes(payload))

    assert [item.external_id for item in items] == pmids
    for item in items:
        assert item.source is SourceName.pubmed
        assert item.kind is ItemKind.publication
        assert item.url == f"https://pubmed.ncbi.nlm.nih.gov/{item.external_id}/"
        assert item.title and item.published_at is not None
        assert item.published_at.tzinfo is UTC


RECORDED_FIELDS = [
    pytest.param(
        "efetch_her2_tdxd_32306807.xml", "32306807",
        {
            "title": "Pharmacokinetics of trastuzumab deruxtecan (T-DXd), a novel anti-HER2 "
                     "antibody-drug conjugate, in HER2-positive tumour-bearing mice.",
            "published_at": datetime(2020, 10, 1, tzinfo=UTC),
            "journal": "Xenobiotica; the fate of foreign compounds in biological systems",
            "journal_abbrev": "Xenobiotica",
            "authors": ["Okamoto H", "Oitate M", "Hagihara K", "Shiozawa H", "Furuta Y",
                        "Ogitani Y", "Kuga H"],
            "doi": "10.1080/00498254.2020.1755909",
            "pub_date": "2020 Oct",
            "publication_types": ["Journal Article"],
            "summary_starts": "Trastuzumab deruxtecan (T-DXd, DS-8201a) is an antibody-drug",
        },
        id="her2-tdxd",
    ),
    pytest.param(
        "efetch_nsclc_emerging_targets_39337530.xml", "39337530",
        {
            "title": "Emerging Targets in Non-Small Cell Lung Cancer.",
            "published_at": datetime(2024, 9, 18, tzinfo=UTC),
            "journal": "International journal of molecular sciences",
            "journal_abbrev": "Int J Mol Sci",
            "authors": ["Liu L", "Soler J", "Reckamp KL", "Sankar K"],
            # ELocationID doi, not the pii before it, nor any of the references' DOIs
            "doi": "10.3390/ijms251810046",
            "pub_date": "2024 Sep 18",
            "publication_types": ["Journal Article", "Review"],
            "summary_starts": "Lung cancer is responsible for a high burden of disease globally.",
        },
        id="nsclc-review-with-references",
    ),
    pytest.param(
        "efetch_2articles.xml", "12091962",
        {
            "title": "The treatment of AIDS behind the walls of correctional facilities.",
            "published_at": datetime(1990, 1, 1, tzinfo=UTC),  # Year + Season: the year
            "journal": "Social justice (San Francisco, Calif.)",
            "journal_abbrev": "Soc Justice",
            "authors": ["Olivero JM"],
            "doi": "",
            "pub_date": "1990 Spring",
            "publication_types": ["Journal Article", "Review"],
            "summary_starts": "",
        },
        id="season-no-abstract-no-doi",
    ),
    pytest.param(
        "efetch_2articles.xml", "9997",
        {
            "title": "Magnetic studies of Chromatium flavocytochrome C552. A mechanism for "
                     "heme-flavin interaction.",
            "published_at": datetime(1976, 9, 28, tzinfo=UTC),
            "journal": "Biochimica et biophysica acta",
            "journal_abbrev": "Biochim Biophys Acta",
            "authors": ["Strekas TC"],
            "doi": "10.1016/0005-2795(76)90109-4",  # from ArticleIdList: no ELocationID
            "pub_date": "1976 Sep 28",
            "publication_types": ["Journal Article"],
            "summary_starts": "Electron paramagnetic resonance and magnetic susceptibility",
        },
        id="doi-from-article-id-list",
    ),
    pytest.param(
        "efetch_cancer_6articles_2015.xml", "19008416",
        {
            "title": "Genomic loss of microRNA-101 leads to overexpression of histone "
                     "methyltransferase EZH2 in cancer.",
            "published_at": datetime(2008, 12, 12, tzinfo=UTC),
            "journal": "Science (New York, N.Y.)",
            "journal_abbrev": "Science",
            "doi": "10.1126/science.1165395",
            "pub_date": "2008 Dec 12",
            "publication_types": ["Journal Article", "Research Support, N.I.H., Extramural",
                                  "Research Support, Non-U.S. Gov't",
                                  "Research Support, U.S. Gov't, Non-P.H.S."],
            "summary_starts": "Enhancer of zeste homolog 2 (EZH2) is a mammalian histone",
        },
        id="older-dtd-indented",
    ),
    pytest.param(
        "efetch_cancer_6articles_2015.xml", "18927361",
        {
            "title": "Genetics. DNA test for breast cancer risk draws criticism.",
            "published_at": datetime(2008, 10, 17, tzinfo=UTC),
            "authors": ["Couzin J"],
            "doi": "10.1126/science.322.5900.357",
            "publication_types": ["News"],
            "summary_starts": "",
        },
        id="news-without-abstract",
    ),
]

SYNTHETIC_FIELDS = [
    pytest.param(
        "90000001",
        {
            "title": "Zongertinib in ERBB2 exon 20 insertion-mutant NSCLC: Ca2+ flux and "
                     "YVMA response.",
            "published_at": datetime(2019, 1, 1, tzinfo=UTC),
            "summary": "BACKGROUND: HER2 exon 20 insertions are rare.\n\n"
                       "METHODS: We treated n = 42 patients with zongertinib.\n\n"
                       "RESULTS: Response rate was 71%.\n\n"
                       "CONCLUSIONS: Zongertinib is active.",
            "journal": "Journal of thoracic oncology",
            "journal_abbrev": "J Thorac Oncol",
            # the author marked ValidYN="N" is left out; the group keeps its name
            "authors": ["Doe JA", "Roe R Jr", "HER2 Exon 20 Study Group"],
            "doi": "10.9999/synthetic.2019.001",  # ELocationID is a pii only
            "pub_date": "2019 Jan-Feb",
            "publication_types": ["Clinical Trial, Phase I", "Journal Article"],
        },
        id="structured-abstract-inline-markup-medlinedate",
    ),
    pytest.param(
        "90000002",
        {
            "title": "A letter without abstract or DOI.",
            "published_at": datetime(1998, 12, 1, tzinfo=UTC),
            "summary": "",
            "authors": ["Smith K"],
            "doi": "",  # the reference's DOI is not this record's
            "pub_date": "1998 Dec-1999 Jan",
        },
        id="medlinedate-across-years-reference-ids-ignored",
    ),
    pytest.param(
        "90000003",
        {
            "title": "Sevabertinib bei HER2-mutiertem Lungenkrebs.",  # VernacularTitle
            "published_at": datetime(2024, 3, 5, tzinfo=UTC),  # ArticleDate fallback
            "summary": "Unstructured abstract.",
            "journal_abbrev": "Cancers (Basel)",  # ISOAbbreviation without MedlineTA
            "authors": [],
            "doi": "10.9999/synthetic.2024.003",
            "pub_date": "Spring-Summer",
        },
        id="pmid-from-article-id-list-article-date-fallback",
    ),
    pytest.param(
        "90000004",
        {
            "title": "HER2-Mutant Lung Cancer",
            "published_at": datetime(2021, 6, 1, tzinfo=UTC),
            "summary": "CLINICAL CHARACTERISTICS: Adenocarcinoma.\n\nMANAGEMENT: Targeted therapy.",
            "journal": "Oncology Reviews®",
            "authors": ["Writer W"],  # the book's editors are not the chapter's authors
            "publication_types": ["Review"],
            "publisher": "Example University Press",
        },
        id="book-chapter",
    ),
]


def _observed(item: Any) -> dict[str, Any]:
    return {
        "title": item.title,
        "published_at": item.published_at,
        "summary": item.summary,
        **item.data,
    }


@pytest.mark.parametrize(("payload", "pmid", "expected"), RECORDED_FIELDS)
def test_recorded_record_fields(payload: str, pmid: str, expected: dict[str, Any]) -> None:
    (item,) = [i for i in parse_efetch(recorded_bytes(payload)) if i.external_id == pmid]
    expected = dict(expected)
    starts = expected.pop("summary_starts")

    assert item.summary.startswith(starts) and bool(item.summary) == bool(starts)
    assert {key: _observed(item)[key] for key in expected} == expected


def test_inline_markup_in_an_abstract_is_flattened() -> None:
    (item,) = parse_efetch(recorded_bytes("efetch_her2_tdxd_32306807.xml"))

    # <i>T</i><sub>1/2</sub>; 1.35&#x2009;h
    assert "rapidly cleared from the circulation (T1/2; 1.35 h)" in item.summary
    assert "<" not in item.summary


@pytest.mark.parametrize(("pmid", "expected"), SYNTHETIC_FIELDS)
def test_edge_case_record_fields(pmid: str, expected: dict[str, Any]) -> None:
    items = parse_efetch((SYNTHETIC / "efetch_edge_cases.xml").read_bytes())
    (item,) = [i for i in items if i.external_id == pmid]

    assert {key: _observed(item)[key] for key in expected} == expected


@pytest.mark.parametrize(
    ("pub_date_xml", "text", "first_day"),
    [
        ("<Year>2020</Year><Month>10</Month><Day>7</Day>", "2020 10 7", date(2020, 10, 7)),
        ("<Year>2020</Year><Month>Oct</Month>", "2020 Oct", date(2020, 10, 1)),
        ("<Year>2021</Year><Month>February</Month><Day>30</Day>", "2021 February 30",
         date(2021, 2, 1)),  # no such day: the month
        ("<Year>2020</Year><Season>Winter</Season>", "2020 Winter", date(2020, 1, 1)),
        ("<Year>2020</Year>", "2020", date(2020, 1, 1)),
        ("<MedlineDate>2019 Jan-Feb</MedlineDate>", "2019 Jan-Feb", date(2019, 1, 1)),
        ("<MedlineDate>1998 Dec-1999 Jan</MedlineDate>", "1998 Dec-1999 Jan", date(1998, 12, 1)),
        ("<MedlineDate>2019 Jan 15-21</MedlineDate>", "2019 Jan 15-21", date(2019, 1, 15)),
        ("<MedlineDate>1975-1976</MedlineDate>", "1975-1976", date(1975, 1, 1)),
        ("<MedlineDate>2000 Spring-Summer</MedlineDate>", "2000 Spring-Summer", date(2000, 1, 1)),
        ("<MedlineDate>Summer 2007</MedlineDate>", "Summer 2007", date(2007, 1, 1)),
        ("<MedlineDate>undated</MedlineDate>", "undated", None),
        ("", "", None),
    ],
)
def test_publication_date_forms(pub_date_xml: str, text: str, first_day: date | None) -> None:
    element = parse_xml(f"<PubDate>{pub_date_xml}</PubDate>".encode(), what="test")

    observed_text, when = publication_date(element)

    assert observed_text == text
    assert when == (None if first_day is None else datetime(
        first_day.year, first_day.month, first_day.day, tzinfo=UTC))


# -- the search window and the parameters of every request --------------------------------


@pytest.mark.parametrize(
    ("cursor", "since", "now", "window"),
    [
        pytest.param({}, SINCE, NOW, ("2025/06/04", "2025/06/11"), id="first-poll-from-since"),
        pytest.param({"window_end": "2025-06-10"}, SINCE, NOW, ("2025/06/08", "2025/06/11"),
                     id="two-day-overlap-with-last-window"),
        pytest.param({"window_end": "2025-06-11"}, SINCE, NOW, ("2025/06/09", "2025/06/11"),
                     id="same-day-repoll"),
        pytest.param({}, SINCE, datetime(2025, 6, 10, 22, 0, tzinfo=timezone(timedelta(hours=-5))),
                     ("2025/06/04", "2025/06/11"), id="now-converted-to-utc-date"),
        pytest.param({}, NOW + timedelta(days=3), NOW, ("2025/06/11", "2025/06/11"),
                     id="since-after-now-is-clamped"),
    ],
)
def test_search_window(
    cursor: dict[str, Any], since: datetime, now: datetime, window: tuple[str, str]
) -> None:
    eutils = FakeEutils()

    result = run_poll(eutils, cursor=cursor, since=since, now=now)

    (search,) = eutils.calls("esearch.fcgi")
    assert search.window == window
    assert result.cursor == {"window_end": window[1].replace("/", "-")}


def test_esearch_parameters() -> None:
    eutils = FakeEutils()

    run_poll(eutils, cursor={"window_end": "2025-06-01"})

    (search,) = eutils.sent
    assert (search.method, search.in_body) == ("GET", False)
    assert search.params == {
        "db": "pubmed",
        "term": QUERY,
        "datetype": "edat",
        "mindate": "2025/05/30",
        "maxdate": "2025/06/11",
        "retmode": "json",
        "retmax": "9999",
        "tool": "alerts-test",
        "email": "ops@example.org",
    }


def test_an_unreadable_cursor_falls_back_to_since_with_a_warning() -> None:
    eutils = FakeEutils()

    result = run_poll(eutils, cursor={"window_end": "yesterday"})

    assert eutils.calls("esearch.fcgi")[0].window == ("2025/06/04", "2025/06/11")
    assert result.warnings == (
        "PubMed cursor window_end='yesterday' unreadable; searched from 2025-06-04",
    )


def test_a_long_term_is_posted_in_a_form_body() -> None:
    long_query = " OR ".join(f'"term{i}"[tiab]' for i in range(40))
    assert len(long_query) > LONG_TERM_CHARS
    eutils = FakeEutils()

    run_poll(eutils, target=TargetQuery(slug="t", pubmed_query=long_query))

    (search,) = eutils.sent
    assert (search.method, search.in_body) == ("POST", True)
    assert search.params["term"] == long_query


@pytest.mark.parametrize(
    ("email", "api_key"),
    [(None, None), ("ops@example.org", None), ("ops@example.org", "k3y-0123")],
)
@pytest.mark.parametrize("long_term", [False, True], ids=["get", "post"])
def test_tool_email_and_api_key_on_every_call(
    email: str | None, api_key: str | None, long_term: bool
) -> None:
    # 250 new ids in batches of 250 (a POST) and a long term (esearch POST) or not.
    query = QUERY + " OR x" * (LONG_TERM_CHARS if long_term else 0)
    eutils = FakeEutils(esearch=esearch_ids(ids(450)))

    run_poll(eutils, target=TargetQuery(slug="t", pubmed_query=query), email=email,
             api_key=api_key, batch_size=250)

    assert [s.endpoint for s in eutils.sent] == ["esearch.fcgi", "efetch.fcgi", "efetch.fcgi"]
    assert {s.method for s in eutils.sent} >= {"POST"}
    for sent in eutils.sent:
        assert sent.params["tool"] == "alerts-test"
        assert sent.params.get("email") == email
        assert sent.params.get("api_key") == api_key


def test_efetch_parameters() -> None:
    eutils = FakeEutils(esearch=recorded("esearch_pten_d326n_3ids.json"))

    result = run_poll(eutils)

    (fetch,) = eutils.calls("efetch.fcgi")
    assert (fetch.method, fetch.in_body) == ("GET", False)
    assert fetch.params == {
        "db": "pubmed",
        "retmode": "xml",
        "id": "32150788,29373119,17427195",
        "tool": "alerts-test",
        "email": "ops@example.org",
    }
    assert [item.external_id for item in result.items] == ["32150788", "29373119", "17427195"]
    assert result.requests == 2


# -- batching, known ids, progress ----------------------------------------------------------


@pytest.mark.parametrize(
    ("new", "batch_size", "batches", "methods"),
    [
        (0, 200, [], []),
        (1, 200, [1], ["GET"]),
        (200, 200, [200], ["GET"]),
        (450, 200, [200, 200, 50], ["GET", "GET", "GET"]),
        (201, 201, [201], ["POST"]),
        (450, 300, [300, 150], ["POST", "GET"]),
        (5, 2, [2, 2, 1], ["GET", "GET", "GET"]),
    ],
)
def test_efetch_batches(new: int, batch_size: int, batches: list[int], methods: list[str]) -> None:
    found = ids(new)
    eutils = FakeEutils(esearch=esearch_ids(found))
    reports: list[tuple[str, int, int | None]] = []

    result = run_poll(eutils, batch_size=batch_size,
                      progress=lambda what, done, total: reports.append((what, done, total)))

    fetches = eutils.calls("efetch.fcgi")
    assert [len(f.ids) for f in fetches] == batches
    assert [f.method for f in fetches] == methods
    assert [f.in_body for f in fetches] == [m == "POST" for m in methods]
    assert [item.external_id for item in result.items] == found  # ESearch's order
    assert result.requests == 1 + len(batches)
    done = [sum(batches[: i + 1]) for i in range(len(batches))]
    assert reports == [("pubmed efetch", d, new) for d in done]


def test_known_ids_are_not_fetched_again() -> None:
    found = ids(450)
    eutils = FakeEutils(esearch=esearch_ids(found))
    stored: set[str] = set()

    first = run_poll(eutils, known=stored)
    stored.update(item.external_id for item in first.items)
    eutils.sent.clear()
    second = run_poll(eutils, cursor=dict(first.cursor), known=stored)

    assert len(first.items) == 450 and first.requests == 4
    assert [s.endpoint for s in eutils.sent] == ["esearch.fcgi"]
    assert (second.items, second.requests) == ([], 1)
    assert second.cursor == first.cursor


def test_only_unknown_ids_are_fetched() -> None:
    found = ids(6)
    eutils = FakeEutils(esearch=esearch_ids(found))

    result = run_poll(eutils, known={found[0], found[3], "99999999"})

    (fetch,) = eutils.calls("efetch.fcgi")
    assert fetch.ids == [found[1], found[2], found[4], found[5]]
    assert [item.external_id for item in result.items] == fetch.ids


def test_duplicate_ids_are_fetched_once() -> None:
    eutils = FakeEutils(esearch=esearch_ids(["3", "1", "3", "2", "1"]))

    result = run_poll(eutils)

    assert eutils.calls("efetch.fcgi")[0].ids == ["3", "1", "2"]
    assert [item.external_id for item in result.items] == ["3", "1", "2"]


def test_records_come_back_in_esearch_order_whatever_efetch_sends() -> None:
    found = ["19008416", "18239125", "18927361"]
    eutils = FakeEutils(esearch=esearch_ids(found),
                        efetch=recorded("efetch_cancer_6articles_2015.xml"))

    result = run_poll(eutils)

    # EFetch answered 6 records in its own order; the 3 that were asked for are kept
    assert [item.external_id for item in result.items] == found


# -- more than ESearch lists at once: split the window ---------------------------------------


def test_a_window_over_9999_ids_is_halved_until_each_part_fits() -> None:
    days = [date(2025, 6, 8), date(2025, 6, 9), date(2025, 6, 10), date(2025, 6, 11)]
    per_day = {day: ids(n, first=10_000_000 * (i + 1))
               for i, (day, n) in enumerate(zip(days, [3000, 8000, 12000, 100], strict=True))}
    eutils = FakeEutils(esearch=esearch_by_entry_date(
        per_day, errorlist={"phrasesnotfound": ["fleegle"], "fieldsnotfound": []}))
    asked: list[str] = []

    def everything_known(batch: Sequence[str]) -> Collection[str]:
        asked.extend(batch)
        return batch

    async def go() -> PollResult:
        async with UpstreamClient(transport=httpx.MockTransport(eutils), backoff_base=0) as client:
            return await PubMedSource(client, base_url=BASE_URL).poll(
                TARGET, {"window_end": "2025-06-10"}, now=NOW, since=SINCE,
                known_ids=everything_known)

    result = asyncio.run(go())

    assert [s.window for s in eutils.calls("esearch.fcgi")] == [
        ("2025/06/08", "2025/06/11"),  # 23,100: split
        ("2025/06/08", "2025/06/09"),  # 11,000: split
        ("2025/06/08", "2025/06/08"),
        ("2025/06/09", "2025/06/09"),
        ("2025/06/10", "2025/06/11"),  # 12,100: split
        ("2025/06/10", "2025/06/10"),  # 12,000 on one day: the first 9,999 only
        ("2025/06/11", "2025/06/11"),
    ]
    union = per_day[days[0]] + per_day[days[1]] + per_day[days[2]][:9999] + per_day[days[3]]
    assert asked == union
    assert (result.items, result.requests) == ([], 7)
    assert result.warnings == (
        "PubMed dropped phrase not found: 'fleegle'",
        "PubMed lists 12000 records entered on 2025-06-10 but ESearch returns only the "
        "first 9999; 2001 were not fetched",
    )


def test_a_split_window_fetches_the_union() -> None:
    per_day = {date(2025, 6, 4) + timedelta(days=i): ids(3000, first=50_000_000 + i * 3000)
               for i in range(8)}  # 24,000 ids in the first poll's 8 days
    new = [day_ids[-1] for day_ids in per_day.values()]  # one not yet stored per day
    stored = {pmid for day_ids in per_day.values() for pmid in day_ids} - set(new)
    eutils = FakeEutils(esearch=esearch_by_entry_date(per_day))

    result = run_poll(eutils, known=stored)

    windows = [s.window for s in eutils.calls("esearch.fcgi")]
    assert windows[0] == ("2025/06/04", "2025/06/11")
    assert len(windows) == 1 + 2 + 4  # 24,000 -> 2 x 12,000 -> 4 x 6,000
    assert [item.external_id for item in result.items] == new
    assert result.requests == len(windows) + 1
    assert result.warnings == ()


# -- the catalogue-wide poll: every record of the window, through the History server ------------


def run_catalogue_poll(
    eutils: FakeEutils, *, cursor: dict[str, Any] | None = None,
    known: Collection[str] | None = None,
) -> PollResult:
    known_ids = None if known is None else (lambda batch: [p for p in batch if p in known])

    async def go() -> PollResult:
        async with UpstreamClient(transport=httpx.MockTransport(eutils), backoff_base=0) as client:
            return await PubMedSource(client, base_url=BASE_URL).poll_catalogue(
                cursor or {}, now=NOW, since=SINCE, known_ids=known_ids)

    return asyncio.run(go())


def test_the_catalogue_poll_splits_past_9999_and_pages_each_part_through_the_history() -> None:
    days = [date(2025, 6, 8), date(2025, 6, 9), date(2025, 6, 10), date(2025, 6, 11)]
    per_day = {day: ids(n, first=10_000_000 * (i + 1))
               for i, (day, n) in enumerate(zip(days, [3000, 8000, 1200, 100], strict=True))}
    history: dict[str, list[str]] = {}
    eutils = FakeEutils(esearch=esearch_by_entry_date(per_day, history=history),
                        efetch=history_efetch(history))

    result = run_catalogue_poll(eutils, cursor={"window_end": "2025-06-10"})

    searches = eutils.calls("esearch.fcgi")
    assert [s.window for s in searches] == [
        ("2025/06/08", "2025/06/11"),  # 12,300: split
        ("2025/06/08", "2025/06/09"),  # 11,000: split
        ("2025/06/08", "2025/06/08"),
        ("2025/06/09", "2025/06/09"),
        ("2025/06/10", "2025/06/11"),
    ]
    assert {(s.params["term"], s.params["datetype"], s.params["usehistory"])
            for s in searches} == {("all[sb]", "edat", "y")}
    # Each part that fits is paged through its own kept result, 500 records at a time.
    fetches = eutils.calls("efetch.fcgi")
    assert [(f.params["WebEnv"], f.params["retstart"]) for f in fetches][:3] == [
        ("WEBENV_2", "0"), ("WEBENV_2", "500"), ("WEBENV_2", "1000")]
    assert len(fetches) == 6 + 16 + 3  # 3,000, 8,000 and 1,300 records
    assert [item.external_id for item in result.items] == [
        pmid for day in days for pmid in per_day[day]]
    assert result.cursor == {"window_end": "2025-06-11"}


def test_the_catalogue_poll_fetches_by_id_only_what_is_not_stored() -> None:
    per_day = {date(2025, 6, 10): ids(1200, first=70_000_000)}
    history: dict[str, list[str]] = {}
    eutils = FakeEutils(esearch=esearch_by_entry_date(per_day, history=history),
                        efetch=history_efetch(history))
    listed = per_day[date(2025, 6, 10)]

    result = run_catalogue_poll(eutils, known=set(listed[:700]))

    fetches = eutils.calls("efetch.fcgi")
    assert [len(f.ids) for f in fetches] == [500]
    assert [item.external_id for item in result.items] == listed[700:]


# -- ESearch answers that are not a clean result ------------------------------------------------


def test_phrases_pubmed_dropped_become_warnings() -> None:
    eutils = FakeEutils(esearch=recorded("esearch_apc_100ids_phrasenotfound.json"))

    result = run_poll(eutils, since=NOW)  # one day: the recorded answer is taken as it is

    assert len(result.items) == 100
    assert result.warnings == (
        "PubMed dropped phrase not found: 'p.E1317Q'",
        # the recorded answer (retmax=100) lists 100 of its 40,362 ids, and we say so
        "PubMed lists 40362 records entered on 2025-06-11 but ESearch returns only the "
        "first 100; 40262 were not fetched",
    )


def test_fields_pubmed_dropped_become_warnings() -> None:
    eutils = FakeEutils(esearch=esearch_ids(
        ["1"], errorlist={"phrasesnotfound": [], "fieldsnotfound": ["tiabx"]}))

    result = run_poll(eutils)

    assert result.warnings == ("PubMed dropped field not found: 'tiabx'",)
    assert [item.external_id for item in result.items] == ["1"]


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        pytest.param(recorded("esearch_error_invalid_db.json"), SourceError,
                     "pubmed esearch: Invalid db name specified: fleegle", id="ERROR"),
        pytest.param(body(b'{"esearchresult":{"ERROR":"Invalid uid 9999\nat position"}}'),
                     SourceError, "pubmed esearch: Invalid uid 9999 at position",
                     id="ERROR-with-raw-newline"),
        pytest.param(body(b'{"error":"Invalid query"}'), SourceError,
                     "pubmed esearch: Invalid query", id="top-level-error"),
        pytest.param(body(b'{"esearchresult": {"count": "3", "idlist": ['), SourceError,
                     "pubmed esearch: the answer is not JSON", id="truncated-json"),
        pytest.param(body(b"<html><body>Bad Gateway</body></html>"), SourceError,
                     "pubmed esearch: the answer is not JSON", id="html"),
        pytest.param(recorded("esearch_error_invalid_db.xml"), SourceError,
                     "pubmed esearch: the answer is not JSON", id="xml"),
        pytest.param(body(b"[1, 2]"), SourceError, "pubmed esearch: unexpected JSON",
                     id="json-list"),
        pytest.param(body(b'{"header": {}}'), SourceError, "pubmed esearch: no 'esearchresult'",
                     id="no-esearchresult"),
        pytest.param(body(b'{"esearchresult": {"idlist": ["1"]}}'), SourceError,
                     "pubmed esearch: missing or invalid count/idlist", id="no-count"),
        pytest.param(body(b'{"esearchresult": {"count": "1", "idlist": ["<b>"]}}'),
                     SourceError, "pubmed esearch: missing or invalid count/idlist",
                     id="id-not-a-number"),
        pytest.param(recorded("error_rate_limit_429.json"), RetryLater,
                     "pubmed esearch: API rate limit exceeded", id="rate-limit-body-with-200"),
        pytest.param(body(b" \n"), RetryLater, "pubmed esearch: empty response body",
                     id="empty-body"),
    ],
)
def test_esearch_failures(answer: Handler, error: type[Exception], message: str) -> None:
    eutils = FakeEutils(esearch=answer)

    raised = failing_poll(eutils, error)

    assert str(raised).startswith(message)
    assert eutils.calls("efetch.fcgi") == []


# -- EFetch answers that are not a clean result -------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE PubmedArticleSet [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article>
<ArticleTitle>&lol9;</ArticleTitle></Article></MedlineCitation></PubmedArticle>
</PubmedArticleSet>
"""


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        pytest.param(body(b"<PubmedArticleSet><PubmedArticle><MedlineCitation>"),
                     SourceError, "pubmed efetch: malformed XML", id="truncated-xml"),
        pytest.param(body(BILLION_LAUGHS), SourceError,
                     "pubmed efetch: refused unsafe XML (EntitiesForbidden)", id="billion-laughs"),
        pytest.param(body(b"<eFetchResult><ERROR>Empty id list - nothing todo</ERROR>"
                          b"</eFetchResult>"), SourceError,
                     "pubmed efetch: expected <PubmedArticleSet>, got <eFetchResult>: Empty id "
                     "list - nothing todo", id="efetch-error"),
        pytest.param(recorded("esummary_error_no_id.xml"), SourceError,
                     "pubmed efetch: expected <PubmedArticleSet>, got <eSummaryResult>: "
                     "Neither query_key nor id specified", id="recorded-eutils-error"),
        pytest.param(body(b""), RetryLater, "pubmed efetch: empty response body",
                     id="empty-body"),
    ],
)
def test_efetch_failures(answer: Handler, error: type[Exception], message: str) -> None:
    eutils = FakeEutils(esearch=esearch_ids(ids(3)), efetch=answer)

    raised = failing_poll(eutils, error)

    assert str(raised).startswith(message)


# -- records ESearch lists but EFetch does not return ------------------------------------------

HELD_CURSOR = {"window_end": "2025-06-10"}  # searched from 06-08 to today, 06-11
HELD_START = "2025/06/08"


@pytest.mark.parametrize(
    ("answer", "returned", "missing"),
    [
        pytest.param(efetch_leaving_out("40000001"), ["40000000", "40000002"], ["40000001"],
                     id="missing-record"),
        pytest.param(body(article_set([])), [], ["40000000", "40000001", "40000002"],
                     id="no-records"),
        pytest.param(body(article_set([synthetic_article("40000000").replace(
                          "<PMID>40000000</PMID>", "")] + [synthetic_article("40000001"),
                                                           synthetic_article("40000002")])),
                     ["40000001", "40000002"], ["40000000"], id="record-without-pmid"),
    ],
)
def test_a_missing_record_holds_the_window_and_the_rest_is_delivered(
    answer: Handler, returned: list[str], missing: list[str]
) -> None:
    eutils = FakeEutils(esearch=esearch_ids(ids(3)), efetch=answer)

    result = run_poll(eutils, cursor=HELD_CURSOR)

    assert [item.external_id for item in result.items] == returned
    # Same window_end: the next poll searches from the same day again.
    assert result.cursor == {**HELD_CURSOR, "missing": dict.fromkeys(missing, 1)}
    assert any(w.startswith(f"pubmed efetch: {len(missing)} listed records not returned ("
                            f"{', '.join(missing)}); the window from 2025-06-08 will be "
                            "searched again") for w in result.warnings)


def test_a_first_poll_with_a_missing_record_restarts_at_since() -> None:
    # `since` moves on with the clock, so the held cursor must name the window itself.
    eutils = FakeEutils(esearch=esearch_ids(ids(2)), efetch=efetch_leaving_out("40000001"))

    first = run_poll(eutils)
    run_poll(eutils, cursor=dict(first.cursor), since=SINCE + timedelta(days=1),
             now=NOW + timedelta(days=1))

    searched = [sent.window[0] for sent in eutils.calls("esearch.fcgi")]
    assert searched == ["2025/06/04", "2025/06/04"]


def test_a_missing_record_in_a_later_batch_keeps_the_other_batches() -> None:
    eutils = FakeEutils(esearch=esearch_ids(ids(450)), efetch=efetch_leaving_out("40000420"))

    result = run_poll(eutils, cursor=HELD_CURSOR)

    assert len(eutils.calls("efetch.fcgi")) == 3
    assert len(result.items) == 449
    assert result.cursor == {**HELD_CURSOR, "missing": {"40000420": 1}}


def poll_in_turn(eutils: FakeEutils, days: int) -> list[PollResult]:
    """One poll a day, each handed the last cursor, with what was delivered stored."""
    stored: set[str] = set()
    cursor: dict[str, Any] = dict(HELD_CURSOR)
    results = []
    for day in range(days):
        result = run_poll(eutils, cursor=cursor, known=set(stored),
                          now=NOW + timedelta(days=day))
        stored.update(item.external_id for item in result.items)
        cursor = dict(result.cursor)
        results.append(result)
    return results


def test_a_record_never_returned_is_skipped_after_three_polls() -> None:
    eutils = FakeEutils(esearch=esearch_ids(ids(3)), efetch=efetch_leaving_out("40000001"))

    results = poll_in_turn(eutils, 4)

    # Held for two polls (the same window searched again), given up on the third.
    assert [sent.window[0] for sent in eutils.calls("esearch.fcgi")] == [
        HELD_START, HELD_START, HELD_START, "2025/06/11"]
    assert [r.cursor for r in results] == [
        {"window_end": "2025-06-10", "missing": {"40000001": 1}},
        {"window_end": "2025-06-10", "missing": {"40000001": 2}},
        {"window_end": "2025-06-13", "missing": {"40000001": 3}},
        # Still listed in the overlap: still asked for, but it no longer holds anything.
        {"window_end": "2025-06-14", "missing": {"40000001": 4}},
    ]
    skipped = "PubMed listed PMID 40000001 but never returned it; skipped"
    assert [skipped in r.warnings for r in results] == [False, False, True, False]
    # Stored records are not fetched again; the missing one is asked for every time.
    assert [sent.ids for sent in eutils.calls("efetch.fcgi")] == [
        ids(3), ["40000001"], ["40000001"], ["40000001"]]
    assert [item.external_id for r in results for item in r.items] == ["40000000", "40000002"]


def test_a_record_missing_once_is_delivered_by_the_next_poll() -> None:
    eutils = FakeEutils(esearch=esearch_ids(ids(3)),
                        efetch=in_turn(efetch_leaving_out("40000001"), synthetic_efetch))

    first, second = poll_in_turn(eutils, 2)

    assert [item.external_id for item in first.items] == ["40000000", "40000002"]
    assert [item.external_id for item in second.items] == ["40000001"]
    assert second.cursor == {"window_end": "2025-06-12"}  # advanced, nothing left to count
    assert not any("listed" in warning for warning in second.warnings)


@pytest.mark.parametrize(
    ("stored", "missing", "expected"),
    [
        pytest.param({"40000001": 2}, ["40000002"], {"40000002": 1},
                     id="an-id-answered-drops-out"),
        pytest.param({"40000001": 1}, ["40000001", "40000002"], {"40000001": 2, "40000002": 1},
                     id="counts-per-id"),
        pytest.param("garbage", ["40000001"], {"40000001": 1}, id="unreadable-map"),
        pytest.param({"40000001": "two", "40000002": True}, ["40000001", "40000002"],
                     {"40000001": 1, "40000002": 1}, id="unreadable-counts"),
    ],
)
def test_missing_counts_are_consecutive_per_id(
    stored: Any, missing: list[str], expected: dict[str, int]
) -> None:
    eutils = FakeEutils(esearch=esearch_ids(ids(3)), efetch=efetch_leaving_out(*missing))

    result = run_poll(eutils, cursor={**HELD_CURSOR, "missing": stored})

    assert result.cursor == {**HELD_CURSOR, "missing": expected}


def test_billion_laughs_fails_in_little_memory() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(SourceError):
            parse_efetch(BILLION_LAUGHS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 1_000_000  # expanded, lol9 alone would be 3 GB


# -- HTTP failures, through the shared client's retries --------------------------------------


def test_a_500_is_retried_then_succeeds(slept: list[float]) -> None:
    eutils = FakeEutils(esearch=in_turn(body(b"oops", status=500),
                                        recorded("esearch_mlh1_g67e_1id.json")))

    result = run_poll(eutils)

    assert [item.external_id for item in result.items] == ["18033691"]
    assert [s.endpoint for s in eutils.sent] == ["esearch.fcgi", "esearch.fcgi", "efetch.fcgi"]
    assert result.requests == 3  # retries count
    assert slept == [0.0]  # backoff_base=0


def test_a_429_with_short_retry_after_is_waited_for_and_retried(slept: list[float]) -> None:
    too_fast = recorded("error_rate_limit_429.json", status=429, headers={"Retry-After": "1"})
    eutils = FakeEutils(esearch=esearch_ids(ids(2)), efetch=in_turn(too_fast, synthetic_efetch))

    result = run_poll(eutils)

    assert len(result.items) == 2
    assert [s.endpoint for s in eutils.sent] == ["esearch.fcgi", "efetch.fcgi", "efetch.fcgi"]
    assert eutils.sent[1] == eutils.sent[2]  # the same request again
    assert slept == [1.0]
    assert result.requests == 3


def test_a_429_with_long_retry_after_ends_the_poll(slept: list[float]) -> None:
    eutils = FakeEutils(esearch=recorded("error_rate_limit_429.json", status=429,
                                         headers={"Retry-After": "3600"}))

    raised = failing_poll(eutils, RetryLater)

    assert isinstance(raised, RetryLater)
    assert raised.seconds == pytest.approx(3600)
    assert len(eutils.sent) == 1 and slept == []


@pytest.mark.parametrize(
    ("esearch", "efetch", "error", "attempts"),
    [
        pytest.param(raising(httpx.ReadTimeout("slow")), synthetic_efetch, RetryLater, 3,
                     id="esearch-timeout"),
        pytest.param(esearch_ids(ids(1)), raising(httpx.ConnectError("refused")), RetryLater, 4,
                     id="efetch-connection-refused"),
        pytest.param(esearch_ids(ids(1)), body(b"busy", status=503), RetryLater, 4,
                     id="efetch-keeps-503"),
        pytest.param(body(b"bad request", status=400), synthetic_efetch, SourceError, 1,
                     id="esearch-400-not-retried"),
    ],
)
def test_http_failures(
    esearch: Handler, efetch: Handler, error: type[Exception], attempts: int, slept: list[float]
) -> None:
    eutils = FakeEutils(esearch=esearch, efetch=efetch)

    failing_poll(eutils, error, max_retries=2)

    assert len(eutils.sent) == attempts  # esearch (+ efetch), each up to 1 + 2 retries


# -- configuration and registry ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "configured"), [(None, False), ("", False), ("   ", False), (QUERY, True)]
)
def test_is_configured_for(query: str | None, configured: bool) -> None:
    source = PubMedSource(UpstreamClient())

    assert source.is_configured_for(TargetQuery(slug="t", pubmed_query=query)) is configured


def test_polling_a_target_without_query_is_an_error() -> None:
    raised = failing_poll(FakeEutils(), SourceError, target=TargetQuery(slug="t"))

    assert "has no PubMed query" in str(raised)


@pytest.mark.parametrize("batch_size", [0, 10_001])
def test_batch_size_is_bounded(batch_size: int) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        PubMedSource(UpstreamClient(), batch_size=batch_size)


@pytest.mark.parametrize(
    ("api_key", "email", "rate"),
    [(None, None, 3.0), ("k3y-0123", "ops@example.org", 10.0)],
)
def test_registry_builds_the_adapter_and_the_ncbi_rate_limit(
    tmp_path: Path, api_key: str | None, email: str | None, rate: float
) -> None:
    settings = make_settings(tmp_path, "sqlite:///unused.db", ncbi_api_key=api_key,
                             ncbi_email=email, ncbi_tool="alerts-test")

    client = make_client(settings)
    source = make_adapter(SourceName.pubmed, settings, client)

    assert client.host_rates[host_key(settings.pubmed_base)] == rate
    assert isinstance(source, PubMedSource)
    assert (source.base_url, source.tool, source.email, source.api_key) == (
        "http://pubmed.test/entrez/eutils", "alerts-test", email, api_key)
