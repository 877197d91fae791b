"""On PostgreSQL the item list is read as JSON written by the database
(`alerts.items.json_pages`): it must answer what the generic path answers, page by page
and error by error, never answer a kept page after a write to it, and survive a cut
connection.

These tests commit (the reader has connections of its own, which cannot see a test's
rolled-back transaction), so each runs on a database of its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from alerts.app import create_app
from alerts.items import service
from alerts.items.json_pages import JsonPages
from alerts.items.schemas import ItemPage, page_json
from db.models import ItemEvent, ItemTarget, Target
from db.session import transaction
from tests.conftest import ON_POSTGRES, make_settings
from tests.fakes.adapters import article, entry, trial

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not ON_POSTGRES, reason="needs TEST_DATABASE_URL on PostgreSQL"),
]

T0 = datetime(2026, 6, 1, 8, 0, 0, 123456, tzinfo=UTC)
SLUG = "her2-exon20"
PATH = f"/api/v1/targets/{SLUG}/items"


@pytest.fixture
def stored(isolated: tuple[Engine, sessionmaker[Session]]) -> sessionmaker[Session]:
    """Publications (non-ASCII, quotes, control characters), news and trials with `new`
    and `updated` events, some sharing a moment, some at whole seconds; committed."""
    _engine, factory = isolated
    with transaction(factory) as session:
        target = session.scalars(select(Target).where(Target.slug == SLUG)).one()

        def store(at: datetime, *items: Any) -> None:
            service.ingest(session, source=items[0].source, target_id=target.id,
                           match_terms=target.match_terms, fetched=items, now=at)

        store(T0, trial("NCT01", "RECRUITING", phases=["PHASE1"]),
              trial("NCT02", "RECRUITING"))
        store(T0 + timedelta(hours=1), article("1", "HER2 exon 20 in Ménière’s “quotes” 日本"),
              article("2", 'HER2 exon 20 "a\\b"\ttab\x01', "summary\nwith lines"))
        store(T0.replace(microsecond=0) + timedelta(hours=2), entry("e1", "zongertinib news"))
        store(T0 + timedelta(days=1), trial("NCT01", "COMPLETED", phases=["PHASE1", "PHASE2"]))
        store(T0 + timedelta(days=2), article("3", "HER2 exon 20 again"))
        store(T0 + timedelta(days=2), entry("e2", "zongertinib again"))
    return factory


@pytest.fixture
def client(
    tmp_path: Path, db_url: str, isolated: tuple[Engine, sessionmaker[Session]]
) -> Iterator[TestClient]:
    engine, _factory = isolated
    app = create_app(make_settings(tmp_path, db_url), engine=engine)
    assert isinstance(app.state.item_pages, JsonPages)  # the path under test
    with TestClient(app) as test_client:
        yield test_client


def generic(factory: sessionmaker[Session], **params: Any) -> Any:
    """What the generic path answers for the same query."""
    since = params.get("since")
    with transaction(factory) as session:
        page = service.list_target_items(
            session, params.get("slug", SLUG),
            since=service.parse_since(since) if since else None,
            kind=params.get("kind"), limit=params.get("limit", 50),
            cursor=params.get("cursor"),
        )
    return json.loads(page_json(page))


def walk(client: TestClient, factory: sessionmaker[Session], **params: Any) -> list[str]:
    """Every page of the query, each compared with the generic path's; the ids seen."""
    seen: list[str] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(PATH, params=query)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body == generic(factory, **query)
        ItemPage.model_validate(body)  # and it is the documented model
        seen += [item["external_id"] for item in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


@pytest.mark.parametrize("limit", [1, 2, 3, 50])
def test_every_page_is_what_the_generic_path_answers(
    client: TestClient, stored: sessionmaker[Session], limit: int
) -> None:
    seen = walk(client, stored, limit=limit)
    assert sorted(seen) == ["1", "2", "3", "NCT01", "NCT02", "e1", "e2"]


@pytest.mark.parametrize(
    "params",
    [
        {"kind": "trial"},
        {"kind": "news", "limit": 1},
        {"since": "2026-06-01T10:00:00Z"},
        {"since": "2026-06-02", "kind": "publication", "limit": 1},
        {"since": "2030-01-01"},
    ],
)
def test_filters_answer_what_the_generic_path_answers(
    client: TestClient, stored: sessionmaker[Session], params: dict[str, Any]
) -> None:
    walk(client, stored, **params)


def test_the_datetimes_and_events_are_written_as_the_model_writes_them(
    client: TestClient, stored: sessionmaker[Session]
) -> None:
    data = {item["external_id"]: item for item in client.get(PATH).json()["data"]}
    assert data["e1"]["first_seen_at"] == "2026-06-01T10:00:00Z"  # no .000000
    assert data["1"]["first_seen_at"] == "2026-06-01T09:00:00.123456Z"
    assert data["2"]["title"] == 'HER2 exon 20 "a\\b"\ttab\x01'
    assert data["e1"]["events"] is None
    assert data["NCT01"]["events"] == [
        {"kind": "new", "at": "2026-06-01T08:00:00.123456Z", "changes": None},
        {"kind": "updated", "at": "2026-06-02T08:00:00.123456Z", "changes": [
            {"field": "Overall status", "old": "RECRUITING", "new": "COMPLETED"},
            {"field": "Phases", "old": "PHASE1", "new": "PHASE1, PHASE2"},
        ]},
    ]
    assert data["NCT02"]["events"] == [
        {"kind": "new", "at": "2026-06-01T08:00:00.123456Z", "changes": None}
    ]


def test_odd_stored_values_answer_what_the_generic_path_answers(
    client: TestClient, stored: sessionmaker[Session]
) -> None:
    """A change beyond 64 bits, a change without `old`, an empty change list, a float,
    links from before evidence was recorded."""
    with transaction(stored) as session:
        session.execute(update(ItemEvent).where(ItemEvent.kind == "updated").values(
            changes=[{"field": "Enrollment", "old": 10, "new": 2**70},
                     {"field": "Ratio", "new": 0.5}]))
        session.execute(update(ItemTarget).where(ItemTarget.item_id % 2 == 0)
                        .values(evidence="", evidence_field="", highlights=[]))
    walk(client, stored)
    with transaction(stored) as session:
        session.execute(update(ItemEvent).where(ItemEvent.kind == "updated")
                        .values(changes=[]))
    walk(client, stored)


def test_what_is_stored_is_answered_at_once(
    client: TestClient, stored: sessionmaker[Session]
) -> None:
    assert client.get(PATH).json()["data"][0]["external_id"] == "e2"
    with transaction(stored) as session:
        target = session.scalars(select(Target).where(Target.slug == SLUG)).one()
        service.ingest(session, source=article("9", "x").source, target_id=target.id,
                       match_terms=target.match_terms,
                       fetched=[article("9", "HER2 exon 20 newest")],
                       now=T0 + timedelta(days=3))
    assert client.get(PATH).json()["data"][0]["external_id"] == "9"


@pytest.mark.parametrize(
    ("slug", "params", "status"),
    [
        ("no-such-target", {}, 404),
        ("no-such-target", {"cursor": "not-a-cursor"}, 404),
        (SLUG, {"cursor": "not-a-cursor"}, 422),
        (SLUG, {"since": "yesterday"}, 422),
        ("no-such-target", {"since": "yesterday"}, 422),
        (SLUG, {"limit": 0}, 422),
        (SLUG, {"kind": "poem"}, 422),
    ],
)
def test_errors_are_the_generic_paths(
    client: TestClient, stored: sessionmaker[Session], slug: str, params: dict[str, Any],
    status: int,
) -> None:
    response = client.get(f"/api/v1/targets/{slug}/items", params=params)
    assert response.status_code == status, response.text
    assert "detail" in response.json()


def test_an_empty_target_answers_an_empty_page(
    client: TestClient, isolated: tuple[Engine, sessionmaker[Session]]
) -> None:
    response = client.get(PATH)
    assert response.status_code == 200
    assert response.json() == {"data": [], "next_cursor": None} == generic(isolated[1])


def test_a_cut_connection_is_replaced(
    client: TestClient, stored: sessionmaker[Session], isolated: tuple[Engine, Any]
) -> None:
    engine, _factory = isolated
    assert client.get(PATH).status_code == 200  # the reader now holds a connection
    with engine.connect() as connection:
        cut = connection.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name = ''"
        )).scalars().all()
    assert cut and all(cut)
    response = client.get(PATH)
    assert response.status_code == 200
    assert response.json() == generic(stored)


@pytest.fixture
def generic_client(
    tmp_path: Path, db_url: str, isolated: tuple[Engine, sessionmaker[Session]]
) -> Iterator[TestClient]:
    """The app with injected sessions: the generic route only, no reader, no fast path."""
    engine, factory = isolated
    app = create_app(make_settings(tmp_path, db_url), engine=engine, session_factory=factory)
    assert app.state.item_pages is None
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "target",
    [
        PATH, f"{PATH}?limit=2", f"{PATH}?limit=200", f"{PATH}?kind=trial&limit=1",
        f"{PATH}?since=2026-06-01T10:00:00%2B01:00", f"{PATH}?since=2026-06-02",
        # odd forms and bad values, which the fast path leaves to the route
        f"{PATH}?limit=050", f"{PATH}?limit=%2B5", f"{PATH}?limit=5.0", f"{PATH}?limit=201",
        f"{PATH}?limit=0", f"{PATH}?limit=", f"{PATH}?limit=2&limit=3", f"{PATH}?kind=",
        f"{PATH}?kind=poem", f"{PATH}?since=", f"{PATH}?since={'2' * 65}", f"{PATH}?cursor=",
        f"{PATH}?cursor=bad", f"{PATH}?cursor={'A' * 201}", f"{PATH}?foo=bar",
        f"{PATH}?limit=2&foo", "/api/v1/targets/her2%2Dexon20/items",
        "/api/v1/targets/no-such-target/items", "/api/v1/targets/no-such-target/items?limit=1",
        f"{PATH}/", "/api/v1/targets//items",
    ],
)
def test_the_fast_path_answers_what_the_route_answers(
    client: TestClient, generic_client: TestClient, stored: sessionmaker[Session],
    target: str,
) -> None:
    fast, route = client.get(target), generic_client.get(target)
    assert (fast.status_code, fast.headers.get("content-type")) == (
        route.status_code, route.headers.get("content-type"))
    if fast.headers.get("content-type") == "application/json":
        assert fast.json() == route.json()
    for header in ("content-security-policy", "x-frame-options", "x-content-type-options"):
        assert fast.headers[header] == route.headers[header]


def test_a_cursor_page_is_served_by_the_fast_path_and_the_route_alike(
    client: TestClient, generic_client: TestClient, stored: sessionmaker[Session]
) -> None:
    cursor = client.get(PATH, params={"limit": 2}).json()["next_cursor"]
    for params in ({"limit": 2, "cursor": cursor}, {"cursor": cursor, "kind": "news"}):
        assert client.get(PATH, params=params).json() == generic_client.get(
            PATH, params=params).json()


def test_plain_requests_take_the_fast_path_and_the_rest_the_route(
    client: TestClient, stored: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = client.app.state.item_pages  # type: ignore[attr-defined]
    calls: list[bool] = []
    page = pages.page

    async def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("missing_ok", False))
        return await page(*args, **kwargs)

    monkeypatch.setattr(pages, "page", spy)
    client.get(PATH, params={"limit": 3})
    client.get(PATH, params={"limit": "03"})  # valid, not plain: the route's own read
    assert client.get("/api/v1/targets/nope/items").status_code == 404
    # the fast path, then the route; for the unknown target the fast path then the route
    assert calls == [True, False, True, False]


WRITES = {
    "an item's title": "UPDATE items SET title = title || ' (revised)' WHERE external_id = '1'",
    "a trial's data": "UPDATE items SET data = jsonb_set(data, '{x}', '1') "
                      "WHERE external_id = 'NCT02'",
    "a link's evidence": "UPDATE item_targets SET evidence = 'other' "
                         "WHERE item_id = (SELECT id FROM items WHERE external_id = 'e1')",
    "a new event": "INSERT INTO item_events (item_id, target_id, kind, changes, created_at) "
                   "SELECT item_id, target_id, 'updated', '[]', now() FROM item_events "
                   "WHERE kind = 'new' AND item_id = "
                   "(SELECT id FROM items WHERE external_id = 'NCT02')",
    "an event removed": "DELETE FROM item_events WHERE kind = 'updated'",
    "an event's changes": "UPDATE item_events SET changes = '[{\"field\": \"f\"}]' "
                          "WHERE kind = 'updated'",
    "a link removed": "DELETE FROM item_targets "
                      "WHERE item_id = (SELECT id FROM items WHERE external_id = '2')",
    "a link moved into the page": "UPDATE item_targets SET created_at = created_at "
                                  "+ interval '1 minute' "
                                  "WHERE item_id = (SELECT id FROM items WHERE external_id = '1')",
    "the same value written again": "UPDATE items SET title = title "
                                    "WHERE external_id = 'e1'",
}


@pytest.mark.parametrize("write", list(WRITES), ids=list(WRITES))
@pytest.mark.parametrize("params", [{}, {"limit": 3}, {"kind": "trial"}])
def test_a_kept_page_is_never_answered_after_a_write_to_it(
    client: TestClient, stored: sessionmaker[Session], write: str, params: dict[str, Any]
) -> None:
    for _ in range(2):  # written, then kept and answered again
        assert client.get(PATH, params=params).json() == generic(stored, **params)
    with transaction(stored) as session:
        session.execute(text(WRITES[write]))
    assert client.get(PATH, params=params).json() == generic(stored, **params)


def test_a_renamed_target_is_not_answered_from_a_kept_page(
    client: TestClient, stored: sessionmaker[Session]
) -> None:
    assert client.get(PATH).status_code == 200
    with transaction(stored) as session:
        session.execute(text("UPDATE targets SET slug = 'renamed' WHERE slug = :s"), {"s": SLUG})
    assert client.get(PATH).status_code == 404
    assert client.get("/api/v1/targets/renamed/items").json() == generic(stored, slug="renamed")


def test_a_kept_page_costs_only_its_fingerprint(
    client: TestClient, stored: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = client.app.state.item_pages  # type: ignore[attr-defined]
    statements: list[str] = []
    one = pages._one

    async def spy(sql: str, params: dict[str, Any], **kwargs: Any) -> Any:
        statements.append("page" if "json_agg" in sql else "fingerprint")
        return await one(sql, params, **kwargs)

    monkeypatch.setattr(pages, "_one", spy)
    first = client.get(PATH, params={"limit": 2}).content
    assert client.get(PATH, params={"limit": 2}).content == first
    assert statements == ["page", "fingerprint"]
    with transaction(stored) as session:
        session.execute(text("UPDATE items SET title = 'x' WHERE external_id = '3'"))
    assert client.get(PATH, params={"limit": 2}).json()["data"][1]["title"] == "x"
    assert statements == ["page", "fingerprint", "fingerprint", "page"]
