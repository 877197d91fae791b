"""`GET /api/v1/targets/{slug}/items`: newest first, cursor pages, filters, trial events,
and a clear 4xx for every bad input."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.app import create_app
from alerts.config import Settings
from alerts.items.service import encode_cursor, ingest
from alerts.sources.base import FetchedItem, SourceName
from db.models import Target
from tests.fakes.adapters import article, entry, trial

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
SLUG = "her2-exon20"


@pytest.fixture
def client(
    settings: Settings, engine: Engine, session_factory: sessionmaker[Session]
) -> Iterator[TestClient]:
    app = create_app(settings, engine=engine, session_factory=session_factory)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def target(session: Session) -> Target:
    return session.scalars(select(Target).where(Target.slug == SLUG)).one()


def store(session: Session, target: Target, at: datetime, *items: FetchedItem) -> None:
    ingest(session, source=items[0].source, target_id=target.id,
           match_terms=target.match_terms, fetched=items, now=at)


def get_items(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get(f"/api/v1/targets/{SLUG}/items", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def ids(page: dict[str, Any]) -> list[str]:
    return [item["external_id"] for item in page["data"]]


@pytest.fixture
def seven_items(session: Session, target: Target) -> list[str]:
    """Seven items found at five moments; two pairs share a moment. Newest first."""
    store(session, target, T0, article("1", "Zongertinib in HER2 exon 20 a"),
          article("2", "Zongertinib in HER2 exon 20 b"))
    store(session, target, T0 + timedelta(hours=1), trial("NCT03"))
    store(session, target, T0 + timedelta(hours=2), entry("e4", "zongertinib news"))
    store(session, target, T0 + timedelta(days=1), article("5", "Zongertinib in HER2 exon 20 c"),
          article("6", "Zongertinib in HER2 exon 20 d"))
    store(session, target, T0 + timedelta(days=2), article("7", "Zongertinib in HER2 exon 20 e"))
    return ["7", "6", "5", "e4", "NCT03", "2", "1"]


def test_the_catalogue_lists_the_seeded_target(client: TestClient) -> None:
    body = client.get("/api/v1/targets").json()
    assert body["next_cursor"] is None
    [seeded] = [t for t in body["data"] if t["slug"] == SLUG]
    assert seeded["name"] == "HER2 (ERBB2) exon 20"
    assert set(seeded) == {"slug", "name", "description", "matched_on"}
    assert seeded["matched_on"] == []


def test_items_come_newest_first_with_their_fields(
    client: TestClient, seven_items: list[str]
) -> None:
    page = get_items(client)
    assert ids(page) == seven_items and page["next_cursor"] is None
    newest = page["data"][0]
    assert newest["source"] == "pubmed" and newest["kind"] == "publication"
    assert newest["url"] == "https://pubmed.ncbi.nlm.nih.gov/7/"
    assert newest["first_seen_at"] == "2026-06-03T08:00:00Z"
    # The terms and the evidence the target's rule decided on, next to each other.
    assert "zongertinib" in [term.lower() for term in newest["matched_terms"]]
    assert newest["evidence_field"] == "title"
    assert newest["evidence"] == "Zongertinib in HER2 exon 20 e"
    start, end = newest["highlights"][0]
    assert newest["evidence"][start:end].lower() in {"zongertinib", "her2"}
    assert newest["data"] == {"journal": "J Test"}
    assert newest["events"] is None  # events are shown for trials


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
def test_pages_cover_everything_once_without_overlap_or_gap(
    client: TestClient, seven_items: list[str], limit: int
) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = get_items(client, limit=limit, **({"cursor": cursor} if cursor else {}))
        assert len(page["data"]) <= limit
        seen += ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == seven_items


def test_an_item_found_after_the_first_page_does_not_shift_the_next(
    client: TestClient, session: Session, target: Target, seven_items: list[str]
) -> None:
    first = get_items(client, limit=3)
    store(session, target, T0 + timedelta(days=3),
          article("8", "Zongertinib in HER2 exon 20 new"))
    second = get_items(client, limit=3, cursor=first["next_cursor"])
    assert ids(first) + ids(second) == seven_items[:6]


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("2026-06-02", ["7", "6", "5"]),
        ("2026-06-01T09:00:00Z", ["7", "6", "5", "e4", "NCT03"]),
        ("2026-06-01T11:00:00+02:00", ["7", "6", "5", "e4", "NCT03"]),
        ("2026-06-01T09:00:00", ["7", "6", "5", "e4", "NCT03"]),  # naive: UTC
        ("2026-06-04", []),
    ],
)
def test_since_keeps_items_found_from_that_moment(
    client: TestClient, seven_items: list[str], since: str, expected: list[str]
) -> None:
    assert ids(get_items(client, since=since)) == expected


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("publication", ["7", "6", "5", "2", "1"]), ("trial", ["NCT03"]), ("news", ["e4"])],
)
def test_kind_filters(
    client: TestClient, seven_items: list[str], kind: str, expected: list[str]
) -> None:
    assert ids(get_items(client, kind=kind)) == expected


def test_a_trial_shows_its_new_and_updated_events(
    client: TestClient, session: Session, target: Target
) -> None:
    store(session, target, T0, trial("NCT01", "RECRUITING", phases=["PHASE1"]))
    store(session, target, T0 + timedelta(days=1),
          trial("NCT01", "COMPLETED", phases=["PHASE1", "PHASE2"]))
    [item] = get_items(client)["data"]
    assert item["url"] == "https://clinicaltrials.gov/study/NCT01"
    assert item["events"] == [
        {"kind": "new", "at": "2026-06-01T08:00:00Z", "changes": None},
        {"kind": "updated", "at": "2026-06-02T08:00:00Z", "changes": [
            {"field": "Overall status", "old": "RECRUITING", "new": "COMPLETED"},
            {"field": "Phases", "old": "PHASE1", "new": "PHASE1, PHASE2"},
        ]},
    ]


def test_a_page_of_trials_costs_the_same_queries_whatever_its_size(
    client: TestClient, session: Session, target: Target, engine: Engine
) -> None:
    def selects_for_one_page() -> int:
        statements: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT"):
                statements.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        try:
            get_items(client, kind="trial")
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(statements)

    store(session, target, T0, trial("NCT01"), trial("NCT02"))
    two = selects_for_one_page()
    store(session, target, T0, *(trial(f"NCT1{i}") for i in range(6)))
    assert selects_for_one_page() == two


@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        ("/api/v1/targets/nope/items", {}, 404, None),
        (f"/api/v1/targets/{SLUG}/items", {"kind": "podcast"}, 422, "kind"),
        (f"/api/v1/targets/{SLUG}/items", {"limit": "201"}, 422, "limit"),
        (f"/api/v1/targets/{SLUG}/items", {"limit": "0"}, 422, "limit"),
        (f"/api/v1/targets/{SLUG}/items", {"limit": "many"}, 422, "limit"),
        (f"/api/v1/targets/{SLUG}/items", {"cursor": "not-a-cursor"}, 422, "cursor"),
        (f"/api/v1/targets/{SLUG}/items", {"cursor": "W10"}, 422, "cursor"),  # base64 "[]"
        (f"/api/v1/targets/{SLUG}/items", {"cursor": encode_cursor(T0, 1)[:-3] + "@@@"}, 422,
         "cursor"),
        (f"/api/v1/targets/{SLUG}/items", {"since": "yesterday"}, 422, "since"),
        (f"/api/v1/targets/{SLUG}/items", {"since": "2026-13-01"}, 422, "since"),
    ],
)
def test_bad_requests_get_a_clear_4xx(
    client: TestClient, path: str, params: dict[str, str], status: int, field: str | None
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == status
    detail = response.json()["detail"]
    if field is None:
        assert detail == "unknown target 'nope'"
    else:
        assert detail[0]["loc"] == ["query", field]
        assert detail[0]["msg"]


def test_a_cursor_survives_a_round_trip_through_the_url(
    client: TestClient, seven_items: list[str]
) -> None:
    cursor = get_items(client, limit=1)["next_cursor"]
    assert cursor and all(ch.isalnum() or ch in "-_" for ch in cursor)
    assert ids(get_items(client, limit=1, cursor=cursor)) == ["6"]


def test_items_of_another_target_are_not_listed(
    client: TestClient, session: Session, target: Target
) -> None:
    other = Target(slug="kras-g12c", name="KRAS G12C", description="",
                   match_terms={"genes": ["KRAS"], "mutations": ["G12C"], "drugs": []})
    session.add(other)
    session.flush()
    ingest(session, source=SourceName.pubmed, target_id=other.id,
           match_terms=other.match_terms, fetched=[article("9", "KRAS G12C")], now=T0)
    assert get_items(client)["data"] == []
