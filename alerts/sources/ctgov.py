"""ClinicalTrials.gov (API v2): the trials registered or updated for a target.

A poll asks `GET version` first: the registry is refreshed about once a weekday, so when
`dataTimestamp` has not moved since the last successful poll nothing can have changed and
the search is skipped (one request). Otherwise it searches `GET studies` for the studies
whose `LastUpdatePostDate` falls in the window, newest first, following `nextPageToken`.

Two searches, not one: a target's `ctgov_term` and `ctgov_intr` mean "term OR
intervention", but the API ANDs query parameters sent together. So each non-empty one runs
as its own search and the studies are united by NCT id (first seen wins; both searches
return the same record for a study).

The window starts two days before the date of the last successful poll (`window_start`
in the cursor): `LastUpdatePostDate` is a calendar date in US Eastern time and the data
lands in daily batches, so the overlap makes sure a study posted late on a boundary day is
not missed. The studies it returns again are recognised by the ingest (same NCT id), which
also compares `FetchedItem.tracked` with the stored copy to make trial-update events; this
module only fetches and parses.

The catalogue-wide poll (`poll_catalogue`) is the same search with no query but the
window itself: every study updated since the window's start, once for all targets, which
match locally. Its requests grow with the studies updated, never with the targets.

Requests per poll, with page size p and n_s studies found by search s (one or two
searches): 1 (`version`) + sum over s of max(1, ceil(n_s / p)), plus one more page for a
search whose last full page still carries a token, plus retries; 1 when skipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from alerts.config import Settings
from alerts.sources.base import (
    FetchedItem,
    ItemKind,
    PollRequest,
    PollResult,
    Progress,
    RetryLater,
    Source,
    SourceError,
    SourceName,
    TargetQuery,
)
from alerts.sources.http import UpstreamClient, counts_requests

log = logging.getLogger(__name__)

STUDY_URL = "https://clinicaltrials.gov/study/{nct_id}"
MAX_PAGE_SIZE = 1000  # the API coerces larger values down to 1,000
#: The largest answer read: a 1,000-study page of the fields asked for is a few MB, so
#: only a broken or hostile upstream comes near it, and it is stopped while downloading.
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
#: A re-posted study is searched again for this long before the last poll's date.
WINDOW_OVERLAP = timedelta(days=2)

#: The pieces of a study the adapter reads. Asking for them (instead of the full record,
#: which with posted results runs to ~100 KB per study) keeps a 1,000-study page small.
#: The response keeps the full record's nesting, so the parser reads both shapes.
STUDY_FIELDS: tuple[str, ...] = (
    "NCTId",
    "BriefTitle",
    "OfficialTitle",
    "BriefSummary",
    "OverallStatus",
    "Phase",
    "StudyType",
    "EnrollmentCount",
    "Condition",
    "Keyword",
    "InterventionName",
    "InterventionOtherName",
    "EligibilityCriteria",
    "LeadSponsorName",
    "StartDate",
    "PrimaryCompletionDate",
    "StudyFirstPostDate",
    "LastUpdatePostDate",
    "HasResults",
    "LocationCountry",
)

class ClinicalTrialsSource(Source):
    """The ClinicalTrials.gov adapter; see the module docstring for the protocol."""

    name: ClassVar[SourceName] = SourceName.ctgov

    def __init__(
        self, base_url: str, client: UpstreamClient, page_size: int = MAX_PAGE_SIZE
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.page_size = page_size

    @classmethod
    def from_settings(cls, settings: Settings, client: UpstreamClient) -> ClinicalTrialsSource:
        return cls(base_url=settings.ctgov_base, client=client)

    def is_configured_for(self, target: TargetQuery) -> bool:
        return bool(_searches(target))

    @counts_requests
    async def _poll(self, request: PollRequest) -> PollResult:
        target, cursor = request.target, request.cursor
        data_timestamp = await self._data_timestamp()
        if (
            data_timestamp is not None
            and data_timestamp == cursor.get("data_timestamp")
            and cursor.get("window_start")
        ):
            log.info("ctgov.skipped target=%s data_timestamp=%s", target.slug, data_timestamp)
            return PollResult(
                items=[],
                cursor=dict(cursor),
                    skipped=True,
            )

        start = _window_start(cursor, request.since)
        studies: dict[str, FetchedItem] = {}
        warnings: list[str] = []
        counter = _ProgressCounter(request.progress)
        for parameter, query in _searches(target):
            async for page in self._search(parameter, query, start, counter):
                for raw in page:
                    item = parse_study(raw)
                    if item is None:
                        warnings.append(f"ctgov {parameter}: skipped a study without an NCT id")
                    else:
                        studies.setdefault(item.external_id, item)

        return PollResult(
            items=list(studies.values()),
            cursor={
                "window_start": _utc(request.now).date().isoformat(),
                "data_timestamp": data_timestamp,
            },
            warnings=warnings,
        )

    async def _poll_catalogue(self, request: PollRequest) -> PollResult:
        """Every study whose last update was posted in the window, for the whole catalogue.

        `poll` with the window as the only term: `AREA[LastUpdatePostDate]RANGE[...]` in
        `query.term` names the studies the window filter keeps anyway, so the skip on an
        unchanged `dataTimestamp`, the paging, the parsing and the cursor are `poll`'s."""
        start = _window_start(request.cursor, request.since)
        window = f"AREA[LastUpdatePostDate]RANGE[{start.isoformat()},MAX]"
        everything = replace(request.target, ctgov_term=window)
        return await self._poll(replace(request, target=everything, known_ids=None))

    async def _data_timestamp(self) -> str | None:
        """`dataTimestamp` from `GET version`, or None when it cannot be had: a failing
        version call only costs the skip, never the poll."""
        what = "ctgov version"
        try:
            response = await self.client.request(
                "GET", f"{self.base_url}/version", what=what, max_bytes=MAX_RESPONSE_BYTES
            )
            stamp = _json_object(response, what).get("dataTimestamp")
        except (SourceError, RetryLater) as exc:
            log.warning("ctgov.version_failed error=%s", exc)
            return None
        return stamp if isinstance(stamp, str) and stamp else None

    async def _search(
        self, parameter: str, query: str, start: date, counter: _ProgressCounter
    ) -> AsyncIterator[list[Any]]:
        """Yield the `studies` list of each page of one search.

        The API requires every later page to repeat the first page's parameters; only
        `pageToken` is added and `countTotal` (answered on the first page only) dropped.
        """
        what = f"ctgov studies ({parameter})"
        params = {
            parameter: query,
            "filter.advanced": f"AREA[LastUpdatePostDate]RANGE[{start.isoformat()},MAX]",
            "sort": "LastUpdatePostDate:desc",
            "fields": ",".join(STUDY_FIELDS),
            "pageSize": str(self.page_size),
            "format": "json",
        }
        page_params = {**params, "countTotal": "true"}
        seen_tokens: set[str] = set()
        while True:
            response = await self.client.request(
                "GET",
                f"{self.base_url}/studies",
                what=what,
                params=page_params,
                max_bytes=MAX_RESPONSE_BYTES,
            )
            body = _json_object(response, what)
            studies = body.get("studies")
            if not isinstance(studies, list):
                raise SourceError(f"{what}: the response has no 'studies' list")
            # Only the first page answers countTotal; a count on a later page is not ours.
            total = body.get("totalCount") if not seen_tokens else None
            counter.page(len(studies), total if isinstance(total, int) else None)
            yield studies
            token = body.get("nextPageToken")
            if not isinstance(token, str) or not token:
                return  # the last page carries no token
            if token in seen_tokens:
                raise SourceError(f"{what}: the API returned page token {token!r} twice")
            seen_tokens.add(token)
            page_params = {**params, "pageToken": token}


class _ProgressCounter:
    """Progress over all searches of a poll: studies received so far (duplicates between
    the searches included) out of the sum of the totals the searches announced."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.fetched = 0
        self.total: int | None = None

    def page(self, received: int, announced_total: int | None) -> None:
        self.fetched += received
        if announced_total is not None:
            self.total = (self.total or 0) + announced_total
        if self.progress is not None:
            self.progress("ctgov studies", self.fetched, self.total)


def _searches(target: TargetQuery) -> list[tuple[str, str]]:
    """(query parameter, query) per search to run; see the module docstring for why the
    term and the intervention are never sent together."""
    searches = []
    if target.ctgov_term and target.ctgov_term.strip():
        searches.append(("query.term", target.ctgov_term.strip()))
    if target.ctgov_intr and target.ctgov_intr.strip():
        searches.append(("query.intr", target.ctgov_intr.strip()))
    return searches


def _window_start(cursor: Mapping[str, Any], since: datetime) -> date:
    raw = cursor.get("window_start")
    if raw:
        try:
            return date.fromisoformat(str(raw)) - WINDOW_OVERLAP
        except ValueError:
            log.warning("ctgov.bad_cursor window_start=%r; searching from since", raw)
    return _utc(since).date()


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise SourceError(f"{what}: malformed JSON ({exc})") from None
    except RecursionError:  # "[[[[…" nested past the interpreter's stack
        raise SourceError(f"{what}: malformed JSON (nested too deeply)") from None
    if not isinstance(body, dict):
        raise SourceError(f"{what}: expected a JSON object, got {type(body).__name__}")
    return body


# --- parsing ---------------------------------------------------------------------------


def parse_study(study: Any) -> FetchedItem | None:
    """One study of a `studies` page (full record or `fields=` projection) as an item;
    None when it has no NCT id. Missing modules give empty values, never an error."""
    if not isinstance(study, Mapping):
        raise SourceError(f"ctgov studies: a study is a {type(study).__name__}, not an object")
    protocol = _section(study, "protocolSection")
    ident = _section(protocol, "identificationModule")
    status = _section(protocol, "statusModule")
    design = _section(protocol, "designModule")
    nct_id = _text(ident.get("nctId"))
    if nct_id is None:
        return None

    official_title = _text(ident.get("officialTitle"))
    phases = _texts(design.get("phases"))
    enrollment = _count(_section(design, "enrollmentInfo").get("count"))
    primary_completion = _struct_date(status, "primaryCompletionDateStruct")
    first_post = _struct_date(status, "studyFirstPostDateStruct")
    locations = _objects(_section(protocol, "contactsLocationsModule").get("locations"))
    countries = sorted({c for loc in locations if (c := _text(loc.get("country")))})
    has_results = study.get("hasResults") is True
    overall_status = _text(status.get("overallStatus"))
    interventions = _objects(_section(protocol, "armsInterventionsModule").get("interventions"))
    intervention_names = [name for entry in interventions if (name := _text(entry.get("name")))]
    other_names = list(dict.fromkeys(
        name for entry in interventions for name in _texts(entry.get("otherNames"))
    ))
    conditions = _section(protocol, "conditionsModule")
    sponsor = _section(_section(protocol, "sponsorCollaboratorsModule"), "leadSponsor")

    return FetchedItem(
        source=SourceName.ctgov,
        external_id=nct_id,
        kind=ItemKind.trial,
        title=_text(ident.get("briefTitle")) or official_title or nct_id,
        # Quoted: the id comes from the body, and the link is printed in the text part.
        url=STUDY_URL.format(nct_id=quote(nct_id, safe="")),
        summary=_text(_section(protocol, "descriptionModule").get("briefSummary")) or "",
        published_at=_as_datetime(first_post),
        data={
            "official_title": official_title,
            "overall_status": overall_status,
            "phases": phases,
            "study_type": _text(design.get("studyType")),
            "enrollment": enrollment,
            "conditions": _texts(conditions.get("conditions")),
            "keywords": _texts(conditions.get("keywords")),
            "interventions": intervention_names,
            "intervention_other_names": other_names,
            # The whole text; the match rule reads its inclusion part.
            "eligibility": _text(_section(protocol, "eligibilityModule").get(
                "eligibilityCriteria")) or "",
            "lead_sponsor": _text(sponsor.get("name")),
            "start_date": _struct_date(status, "startDateStruct"),
            "primary_completion_date": primary_completion,
            "first_post_date": first_post,
            "last_update_post_date": _struct_date(status, "lastUpdatePostDateStruct"),
            "has_results": has_results,
            "locations_count": len(locations),
            "countries": countries,
        },
        # Plain JSON values (str, list, bool, int, None) so the stored copy compares
        # equal to a fresh parse of an unchanged study. Keys: trial_fields.TRACKED_FIELD_LABELS.
        tracked={
            "overall_status": overall_status,
            "phases": phases,
            "has_results": has_results,
            "enrollment": enrollment,
            "primary_completion_date": primary_completion,
            "countries": countries,
        },
    )


def _section(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, Mapping) else {}


def _objects(value: Any) -> list[Mapping[str, Any]]:
    """The objects of a JSON list (locations, interventions); anything else is empty."""
    if not isinstance(value, list):
        return []
    return [entry for entry in value if isinstance(entry, Mapping)]


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _texts(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [text for part in value if (text := _text(part))]


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _struct_date(status: Mapping[str, Any], key: str) -> str | None:
    """The `date` of a `...DateStruct`, as the API wrote it ("2024-05-17" or "2026-12")."""
    return _text(_section(status, key).get("date"))


def _as_datetime(value: str | None) -> datetime | None:
    """A CT.gov date ("2024-05-17", "2024-05" or "2024") as midnight UTC of its first day."""
    if value is None:
        return None
    parts = value.split("-")
    try:
        numbers = [int(part) for part in parts]
        year, month, day = (numbers + [1, 1])[:3]
        return datetime(year, month, day, tzinfo=UTC)
    except (ValueError, TypeError):
        return None
