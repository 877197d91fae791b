"""The ClinicalTrials.gov adapter against recorded API v2 payloads, through the real
UpstreamClient over httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerts.sources.base import (
    ItemKind,
    PollResult,
    RetryLater,
    SourceError,
    SourceName,
    TargetQuery,
)
from alerts.sources.ctgov import STUDY_FIELDS, ClinicalTrialsSource
from alerts.sources.http import UpstreamClient
from alerts.sources.trial_fields import TRACKED_FIELD_LABELS, format_tracked_value
from tests.conftest import make_settings

DATA = Path(__file__).resolve().parent.parent / "data" / "upstream" / "ctgov"
BASE = "http://ctgov.test/api/v2"
NOW = datetime(2026, 3, 12, 9, 30, tzinfo=UTC)
SINCE = datetime(2026, 3, 5, 9, 30, tzinfo=UTC)
STAMP = "2026-03-12T08:12:44"
TERM = "(HER2 OR ERBB2) AND (exon 20 OR insertion)"
INTR = "zongertinib OR sevabertinib"
TERM_ONLY = TargetQuery(slug="t", ctgov_term=TERM)
BOTH = TargetQuery(slug="t", ctgov_term=TERM, ctgov_intr=INTR)
MAX_RETRIES = 2

Answer = Callable[[httpx.Request], httpx.Response]


def payload(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


def page_of(*names: str, token: str | None = None) -> dict[str, Any]:
    """A `studies` page made of recorded studies (single-study files or whole pages)."""
    studies: list[Any] = []
    for name in names:
        body = payload(name)
        studies.extend(body.get("studies", [body]))
    return {"studies": studies, **({"nextPageToken": token} if token else {})}


def ok(body: Any) -> Answer:
    return lambda request: httpx.Response(200, json=body)


def status(code: int, text: str = "", headers: Mapping[str, str] | None = None) -> Answer:
    return lambda request: httpx.Response(
        code, text=text, headers={"Content-Type": "text/plain", **(headers or {})}
    )


def raw(body: bytes) -> Answer:
    return lambda request: httpx.Response(200, content=body)


def timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


class FakeCtgov:
    """ClinicalTrials.gov v2 for one poll. `/version` answers `version`; `/studies`
    answers `pages[(query parameter, pageToken)]`: a list of answers, one per attempt, the
    last one repeated."""

    def __init__(
        self,
        pages: Mapping[tuple[str, str | None], list[Answer]],
        version: list[Answer] | None = None,
    ) -> None:
        self.pages = {key: list(answers) for key, answers in pages.items()}
        self.version = list(version or [ok({"apiVersion": "2.0.5", "dataTimestamp": STAMP})])
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert len(self.requests) < 50, "the adapter keeps asking: a paging loop?"
        if request.url.path == "/api/v2/version":
            return _next(self.version)(request)
        assert request.url.path == "/api/v2/studies"
        search = next(key for key in ("query.term", "query.intr") if key in request.url.params)
        answers = self.pages.get((search, request.url.params.get("pageToken")))
        assert answers, f"unexpected request {request.url}"
        return _next(answers)(request)

    @property
    def searches(self) -> list[dict[str, str]]:
        return [dict(r.url.params) for r in self.requests if r.url.path.endswith("/studies")]


def _next(answers: list[Answer]) -> Answer:
    return answers.pop(0) if len(answers) > 1 else answers[0]


def poll(
    fake: FakeCtgov,
    target: TargetQuery = TERM_ONLY,
    cursor: Mapping[str, Any] | None = None,
    *,
    page_size: int = 1000,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> PollResult:
    async def run() -> PollResult:
        async with UpstreamClient(
            transport=httpx.MockTransport(fake), backoff_base=0, max_retries=MAX_RETRIES
        ) as client:
            source = ClinicalTrialsSource(base_url=BASE, client=client, page_size=page_size)
            return await source.poll(
                target, cursor or {}, now=NOW, since=SINCE, progress=progress
            )

    return asyncio.run(run())


def answering(*answers: Answer) -> FakeCtgov:
    """A term-only search whose first page gets these answers, one per attempt."""
    return FakeCtgov({("query.term", None): list(answers)})


def single_page(body: Any) -> FakeCtgov:
    return answering(ok(body))


# --- parsing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "study_NCT02210780_full_with_results.json",
            {
                "external_id": "NCT02210780",
                "title": "Study of Dupilumab and Immune Responses in Adults With Atopic "
                "Dermatitis (AD)",
                "summary_starts": "This was a 32-week, randomized, double-blind",
                "published_at": datetime(2014, 8, 7, tzinfo=UTC),
                "data": {
                    "official_title": "A Randomized, Double-Blind, Placebo-Controlled, Study "
                    "Investigating Vaccine Responses in Adults With Moderate to Severe Atopic "
                    "Dermatitis Treated With Dupilumab",
                    "study_type": "INTERVENTIONAL",
                    "conditions": ["Atopic Dermatitis"],
                    "interventions": ["Dupilumab", "Placebo"],
                    "lead_sponsor": "Regeneron Pharmaceuticals",
                    "start_date": "2014-08-05",
                    "first_post_date": "2014-08-07",
                    "last_update_post_date": "2020-05-07",
                    "locations_count": 42,
                },
                "tracked": {
                    "overall_status": "COMPLETED",
                    "phases": ["PHASE2"],
                    "has_results": True,
                    "enrollment": 194,
                    "primary_completion_date": "2015-09-15",
                    "countries": ["United States"],
                },
            },
        ),
        (
            "study_NCT04207047_full.json",
            {
                "external_id": "NCT04207047",
                "title": "Histologic Evaluation of Tissue Following Lutronic System Exposure",
                "summary_starts": "Enrollment of up to 25 subjects",
                "published_at": datetime(2019, 12, 20, tzinfo=UTC),
                "data": {
                    "study_type": "INTERVENTIONAL",
                    "conditions": ["Abdominoplasty"],
                    "interventions": ["Genius", "eC02", "PicoPlus", "LaseMD", "LaseMD Flex"],
                    "lead_sponsor": "LUTRONIC Corporation",
                    "start_date": "2018-10-02",
                    "last_update_post_date": "2019-12-20",
                    "locations_count": 1,
                },
                "tracked": {
                    "overall_status": "UNKNOWN",
                    "phases": ["NA"],
                    "has_results": False,
                    "enrollment": 3,
                    "primary_completion_date": "2018-10-31",
                    "countries": ["United States"],
                },
            },
        ),
        (
            # A `fields=` projection: no first-post date, no locations, no hasResults.
            "study_NCT06382129_fields.json",
            {
                "external_id": "NCT06382129",
                "title": "A Study Comparing BL-B01D1 With Docetaxel in Patients With "
                "Unresectable Locally Advanced or Metastatic EGFR Wild-type Non-small Cell "
                "Lung Cancer(PANKU-Lung02)",
                "summary_starts": "This trial is a registered phase III, randomized",
                "published_at": None,
                "data": {
                    "official_title": None,
                    "conditions": ["Non-small Cell Lung Cancer"],
                    "interventions": ["BL-B01D1", "Docetaxel"],
                    "lead_sponsor": "Sichuan Baili Pharmaceutical Co., Ltd.",
                    "start_date": "2024-05-17",
                    "first_post_date": None,
                    "locations_count": 0,
                },
                "tracked": {
                    "overall_status": "ACTIVE_NOT_RECRUITING",
                    "phases": ["PHASE3"],
                    "has_results": False,
                    "enrollment": 698,
                    "primary_completion_date": None,
                    "countries": [],
                },
            },
        ),
    ],
)
def test_parses_a_recorded_study(name: str, expected: dict[str, Any]) -> None:
    [item] = poll(single_page(page_of(name))).items

    assert item.source is SourceName.ctgov
    assert item.kind is ItemKind.trial
    assert item.external_id == expected["external_id"]
    assert item.title == expected["title"]
    assert item.url == f"https://clinicaltrials.gov/study/{expected['external_id']}"
    assert item.summary.startswith(expected["summary_starts"])
    assert item.published_at == expected["published_at"]
    assert {key: item.data[key] for key in expected["data"]} == expected["data"]
    assert dict(item.tracked) == expected["tracked"]
    # The data repeats the tracked values, so a digest can show them without `tracked`.
    assert {key: item.data[key] for key in item.tracked} == expected["tracked"]
    json.dumps(item.data)  # stored in a JSON column as is


def test_parses_every_study_of_a_projected_page_in_upstream_order() -> None:
    items = poll(single_page(page_of("studies_keytruda_page1.json"))).items

    assert [(i.external_id, i.tracked["overall_status"], i.tracked["phases"],
             i.tracked["enrollment"]) for i in items] == [
        ("NCT05431270", "RECRUITING", ["PHASE1", "PHASE2"], 40),
        ("NCT03590054", "COMPLETED", ["PHASE1"], 35),
        ("NCT04795661", "ACTIVE_NOT_RECRUITING", ["PHASE2"], 240),
    ]
    assert items[2].title == "Immunotherapy in MSI/dMMR Tumors in Perioperative Setting."
    assert items[0].data["interventions"][:2] == ["Mavrostobart (PT199)", "Tislelizumab"]


@pytest.mark.parametrize(
    ("study", "title"),
    [
        ({"protocolSection": {"identificationModule": {
            "nctId": "NCT09000001", "officialTitle": "Official only"}}}, "Official only"),
        ({"protocolSection": {"identificationModule": {"nctId": "NCT09000001"}}},
         "NCT09000001"),
        ({"protocolSection": {"identificationModule": {"nctId": "NCT09000001"},
                              "statusModule": "not an object", "designModule": None}},
         "NCT09000001"),
    ],
)
def test_a_study_missing_modules_still_parses(study: dict[str, Any], title: str) -> None:
    [item] = poll(single_page({"studies": [study]})).items

    assert item.title == title
    assert item.published_at is None
    assert dict(item.tracked) == {
        "overall_status": None, "phases": [], "has_results": False, "enrollment": None,
        "primary_completion_date": None, "countries": [],
    }


def test_countries_are_sorted_unique_and_every_location_counts() -> None:
    locations = [{"country": "Spain"}, {"country": "France"}, {"country": "Spain"},
                 {"city": "Nowhere"}, "not a location"]
    study = {"protocolSection": {"identificationModule": {"nctId": "NCT09000002"},
                                 "contactsLocationsModule": {"locations": locations}}}
    [item] = poll(single_page({"studies": [study]})).items

    assert (item.data["locations_count"], item.tracked["countries"]) == (4, ["France", "Spain"])


def test_a_study_without_nct_id_is_left_out_with_a_warning() -> None:
    body = page_of("studies_nsclc_egfr_l858r_lastpage.json")
    body["studies"].insert(0, {"protocolSection": {"identificationModule": {"briefTitle": "?"}}})

    result = poll(single_page(body))

    assert [i.external_id for i in result.items] == ["NCT06382129", "NCT06604689"]
    assert result.warnings == ["ctgov query.term: skipped a study without an NCT id"]


def test_tracked_fields_all_have_a_label() -> None:
    [item] = poll(single_page(page_of("study_NCT04207047_full.json"))).items
    assert set(item.tracked) == set(TRACKED_FIELD_LABELS)


@pytest.mark.parametrize(
    ("value", "shown"),
    [("RECRUITING", "RECRUITING"), (["PHASE1", "PHASE2"], "PHASE1, PHASE2"), (True, "yes"),
     (False, "no"), (120, "120"), (None, "none"), ([], "none")],
)
def test_format_tracked_value(value: Any, shown: str) -> None:
    assert format_tracked_value(value) == shown


# --- the search and its pages ---------------------------------------------------------


PAGE1_PARAMS = {
    "query.term": TERM,
    "filter.advanced": "AREA[LastUpdatePostDate]RANGE[2026-03-05,MAX]",
    "sort": "LastUpdatePostDate:desc",
    "fields": ",".join(STUDY_FIELDS),
    "pageSize": "5",
    "format": "json",
    "countTotal": "true",
}
TOKEN1 = payload("studies_phelan_page1.json")["nextPageToken"]
TOKEN2 = payload("studies_phelan_page2.json")["nextPageToken"]


def three_pages() -> FakeCtgov:
    return FakeCtgov({
        ("query.term", None): [ok(payload("studies_phelan_page1.json"))],
        ("query.term", TOKEN1): [ok(payload("studies_phelan_page2.json"))],
        ("query.term", TOKEN2): [ok(payload("studies_nsclc_egfr_l858r_lastpage.json"))],
    })


def test_follows_page_tokens_repeating_the_first_page_parameters() -> None:
    fake = three_pages()
    result = poll(fake, page_size=5)

    first, second, third = fake.searches
    assert first == PAGE1_PARAMS
    without_count = {k: v for k, v in PAGE1_PARAMS.items() if k != "countTotal"}
    assert second == {**without_count, "pageToken": TOKEN1}
    assert third == {**without_count, "pageToken": TOKEN2}
    assert [i.external_id for i in result.items] == [
        "NCT02710084", "NCT05105685", "NCT01525901", "NCT03493607", "NCT07119606",
        "NCT05187377", "NCT03836300", "NCT07014020", "NCT05025241", "NCT07281079",
        "NCT06382129", "NCT06604689",
    ]


def test_stops_on_the_page_without_token_and_counts_every_request() -> None:
    fake = three_pages()
    result = poll(fake, page_size=5)

    assert len(fake.requests) == 4  # version + 3 pages
    assert result.requests == 4
    assert result.skipped is False


def test_reports_progress_per_page_with_the_first_page_total() -> None:
    calls: list[tuple[str, int, int | None]] = []
    poll(three_pages(), page_size=5, progress=lambda *call: calls.append(call))

    # The last recorded page carries a totalCount of its own query: only page 1's counts.
    assert calls == [("ctgov studies", 5, 21), ("ctgov studies", 10, 21),
                     ("ctgov studies", 12, 21)]


def test_an_empty_page_with_a_token_does_not_end_the_search() -> None:
    fake = FakeCtgov({
        ("query.term", None): [ok({"studies": [], "totalCount": 2, "nextPageToken": "more"})],
        ("query.term", "more"): [ok(payload("studies_nsclc_egfr_l858r_lastpage.json"))],
    })
    result = poll(fake)

    assert [i.external_id for i in result.items] == ["NCT06382129", "NCT06604689"]
    assert result.requests == 3


def test_an_empty_last_page_is_no_studies() -> None:
    result = poll(single_page({"studies": [], "totalCount": 0}))
    assert (list(result.items), result.requests) == ([], 2)


def test_a_repeated_page_token_fails_instead_of_looping() -> None:
    fake = FakeCtgov({
        ("query.term", None): [ok({"studies": [], "nextPageToken": "same"})],
        ("query.term", "same"): [ok({"studies": [], "nextPageToken": "same"})],
    })
    with pytest.raises(SourceError, match="page token 'same' twice"):
        poll(fake)


def test_term_and_intervention_run_as_two_searches_united_by_nct_id() -> None:
    fake = FakeCtgov({
        ("query.term", None): [ok(payload("studies_nsclc_egfr_l858r_lastpage.json"))],
        # NCT06382129 is found by both searches.
        ("query.intr", None): [ok(page_of("study_NCT06382129_fields.json",
                                          "studies_keytruda_page1.json"))],
    })
    calls: list[tuple[str, int, int | None]] = []
    result = poll(fake, BOTH, progress=lambda *call: calls.append(call))

    term_search, intr_search = fake.searches
    assert (term_search["query.term"], "query.intr" not in term_search) == (TERM, True)
    assert (intr_search["query.intr"], "query.term" not in intr_search) == (INTR, True)
    assert {k: v for k, v in term_search.items() if k != "query.term"} == {
        k: v for k, v in intr_search.items() if k != "query.intr"
    }
    assert [i.external_id for i in result.items] == [
        "NCT06382129", "NCT06604689", "NCT05431270", "NCT03590054", "NCT04795661",
    ]
    assert result.requests == 3
    assert calls == [("ctgov studies", 2, 2), ("ctgov studies", 6, 2)]


@pytest.mark.parametrize(
    ("target", "searched"),
    [
        (TargetQuery(slug="t", ctgov_term=TERM), ["query.term"]),
        (TargetQuery(slug="t", ctgov_intr=INTR), ["query.intr"]),
        (TargetQuery(slug="t", ctgov_term="  ", ctgov_intr=INTR), ["query.intr"]),
        (BOTH, ["query.term", "query.intr"]),
    ],
)
def test_only_the_target_queries_that_are_set_are_searched(
    target: TargetQuery, searched: list[str]
) -> None:
    fake = FakeCtgov({(key, None): [ok({"studies": []})] for key in searched})
    poll(fake, target)
    assert [next(k for k in p if k.startswith("query.")) for p in fake.searches] == searched


@pytest.mark.parametrize(
    ("target", "configured"),
    [
        (TargetQuery(slug="t"), False),
        (TargetQuery(slug="t", ctgov_term="", ctgov_intr=" "), False),
        (TargetQuery(slug="t", pubmed_query="HER2[tiab]"), False),
        (TargetQuery(slug="t", ctgov_term=TERM), True),
        (TargetQuery(slug="t", ctgov_intr=INTR), True),
    ],
)
def test_is_configured_for_a_target_with_a_trial_query(
    target: TargetQuery, configured: bool
) -> None:
    source = ClinicalTrialsSource(base_url=BASE, client=UpstreamClient())
    assert source.is_configured_for(target) is configured


# --- window, cursor and the version check ---------------------------------------------


@pytest.mark.parametrize(
    ("cursor", "start"),
    [
        ({}, "2026-03-05"),  # first poll: the `since` date
        ({"window_start": "2026-03-11", "data_timestamp": "older"}, "2026-03-09"),
        ({"window_start": "2026-03-01"}, "2026-02-27"),  # across a month end
        ({"window_start": "not a date"}, "2026-03-05"),  # a damaged cursor falls back
    ],
)
def test_the_window_starts_two_days_before_the_last_poll(
    cursor: dict[str, Any], start: str
) -> None:
    fake = single_page({"studies": []})
    poll(fake, cursor=cursor)
    assert fake.searches[0]["filter.advanced"] == f"AREA[LastUpdatePostDate]RANGE[{start},MAX]"


def test_the_new_cursor_holds_the_poll_date_and_the_data_timestamp() -> None:
    result = poll(single_page({"studies": []}), cursor={"window_start": "2026-03-01"})
    assert result.cursor == {"window_start": "2026-03-12", "data_timestamp": STAMP}


def test_an_unchanged_data_timestamp_skips_the_search_with_one_request() -> None:
    cursor = {"window_start": "2026-03-11", "data_timestamp": STAMP}
    fake = single_page(page_of("study_NCT04207047_full.json"))

    result = poll(fake, cursor=cursor)

    assert result.skipped is True
    assert (list(result.items), result.requests, dict(result.cursor)) == ([], 1, cursor)
    assert [r.url.path for r in fake.requests] == ["/api/v2/version"]


@pytest.mark.parametrize(
    "cursor",
    [
        {"window_start": "2026-03-11", "data_timestamp": "2026-03-11T08:00:00"},  # refreshed
        {"data_timestamp": STAMP},  # no window yet: never searched successfully
    ],
)
def test_the_search_runs_when_the_data_was_refreshed_or_never_searched(
    cursor: dict[str, Any],
) -> None:
    result = poll(single_page(page_of("study_NCT04207047_full.json")), cursor=cursor)
    assert (result.skipped, [i.external_id for i in result.items]) == (False, ["NCT04207047"])


@pytest.mark.parametrize(
    ("version", "version_requests"),
    [
        ([status(500)], MAX_RETRIES + 1),
        ([status(404, "Not found")], 1),
        ([raw(b"<html>maintenance</html>")], 1),
        ([ok({"apiVersion": "2.0.5"})], 1),
        ([timeout], MAX_RETRIES + 1),
    ],
)
def test_a_failing_version_call_does_not_block_the_search(
    version: list[Answer], version_requests: int
) -> None:
    cursor = {"window_start": "2026-03-11", "data_timestamp": None}
    fake = FakeCtgov({("query.term", None): [ok(page_of("study_NCT04207047_full.json"))]},
                     version=version)

    result = poll(fake, cursor=cursor)

    assert result.skipped is False
    assert [i.external_id for i in result.items] == ["NCT04207047"]
    assert result.cursor == {"window_start": "2026-03-12", "data_timestamp": None}
    assert result.requests == version_requests + 1


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (status(400, "Invalid value for filter.advanced: RANGE[x,MAX]"),
         "ctgov studies (query.term): HTTP 400 Invalid value for filter.advanced: RANGE[x,MAX]"),
        (status(404, "Unknown field: Phse"), "HTTP 404 Unknown field: Phse"),
        (raw(b'{"studies": [ '), "ctgov studies (query.term): malformed JSON"),
        (raw(b"\xff\xfe not json"), "malformed JSON"),
        (ok({"totalCount": 3}), "the response has no 'studies' list"),
        (ok({"studies": {"NCT1": {}}}), "the response has no 'studies' list"),
        (ok([{"protocolSection": {}}]), "expected a JSON object, got list"),
        (ok({"studies": ["NCT04207047"]}), "a study is a str, not an object"),
    ],
)
def test_a_bad_answer_is_a_source_error_naming_it(answer: Answer, message: str) -> None:
    fake = answering(answer)

    with pytest.raises(SourceError) as caught:
        poll(fake)

    assert message in str(caught.value)
    assert len(fake.searches) == 1  # a permanent error is not retried


def test_a_bad_second_page_fails_the_whole_poll() -> None:
    fake = FakeCtgov({
        ("query.term", None): [ok(payload("studies_phelan_page1.json"))],
        ("query.term", TOKEN1): [raw(b"not json")],
    })
    with pytest.raises(SourceError, match="malformed JSON"):
        poll(fake)


@pytest.mark.parametrize(
    "first",
    [status(500), status(503), status(429, headers={"Retry-After": "0"}), timeout],
)
def test_a_transient_failure_is_retried_by_the_shared_client(first: Answer) -> None:
    fake = answering(first, ok(page_of("study_NCT04207047_full.json")))

    result = poll(fake)

    assert [i.external_id for i in result.items] == ["NCT04207047"]
    assert result.requests == 3  # version + failed attempt + retry


def test_a_long_retry_after_ends_the_poll_with_retry_later_at_once() -> None:
    fake = answering(status(429, headers={"Retry-After": "3600"}))

    with pytest.raises(RetryLater) as caught:
        poll(fake)

    assert caught.value.seconds == 3600
    assert len(fake.searches) == 1


@pytest.mark.parametrize("answer", [timeout, status(502)])
def test_an_upstream_that_stays_down_ends_in_retry_later(answer: Answer) -> None:
    fake = answering(answer)

    with pytest.raises(RetryLater, match=r"ctgov studies \(query.term\)"):
        poll(fake)

    assert len(fake.searches) == MAX_RETRIES + 1


# --- construction ---------------------------------------------------------------------


def test_from_settings_uses_the_configured_base_url(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "sqlite://", ctgov_base_url="http://mirror.test/api/v2/")
    source = ClinicalTrialsSource.from_settings(settings, UpstreamClient())

    assert (source.name, source.base_url, source.page_size) == (
        SourceName.ctgov, "http://mirror.test/api/v2", 1000)


@pytest.mark.parametrize("page_size", [0, 1001])
def test_page_size_outside_what_the_api_serves_is_refused(page_size: int) -> None:
    with pytest.raises(ValueError, match="page_size"):
        ClinicalTrialsSource(base_url=BASE, client=UpstreamClient(), page_size=page_size)


# --- the catalogue-wide poll -------------------------------------------------------------


def test_the_catalogue_poll_asks_for_every_study_updated_in_the_window_only_the_fields_used(
) -> None:
    fake = three_pages()

    async def run() -> PollResult:
        async with UpstreamClient(transport=httpx.MockTransport(fake), backoff_base=0) as client:
            source = ClinicalTrialsSource(base_url=BASE, client=client)
            return await source.poll_catalogue(
                {"window_start": "2026-03-11", "data_timestamp": "older"}, now=NOW, since=SINCE)

    result = asyncio.run(run())

    first = fake.searches[0]
    window = "AREA[LastUpdatePostDate]RANGE[2026-03-09,MAX]"
    assert (first["query.term"], first["filter.advanced"]) == (window, window)
    assert "query.intr" not in first
    assert (first["pageSize"], first["fields"]) == ("1000", ",".join(STUDY_FIELDS))
    assert len(result.items) == 12 and result.requests == 4  # version + 3 pages
    assert result.cursor == {"window_start": "2026-03-12", "data_timestamp": STAMP}
