"""The item list's fast path says what the documented model says: pre-serialised JSON
equal to `ItemPage`'s own (the match evidence included), one statement per page, the
model still in OpenAPI, and the single-statement read on PostgreSQL without a
transaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select, update
from sqlalchemy.orm import Session, sessionmaker

from alerts.items import service
from alerts.items.schemas import ItemPage, page_json, parsed
from db.models import ItemEvent, ItemTarget, Target
from db.session import single_statement_read
from tests.conftest import ON_POSTGRES
from tests.fakes.adapters import article, entry, trial

T0 = datetime(2026, 6, 1, 8, 0, 0, 123456, tzinfo=UTC)
SLUG = "her2-exon20"
PATH = f"/api/v1/targets/{SLUG}/items"


@pytest.fixture
def mixed(session: Session, target: Target) -> None:
    """A publication with non-ASCII text, a news entry, and a trial with a `new` and an
    `updated` event, found at moments with microseconds."""
    def store(at: datetime, *items: Any) -> None:
        service.ingest(session, source=items[0].source, target_id=target.id,
                       match_terms=target.match_terms, fetched=items, now=at)

    store(T0, trial("NCT01", "RECRUITING", phases=["PHASE1"]))
    store(T0 + timedelta(hours=1), article("1", "HER2 exon 20 in Ménière’s “quotes” 日本"))
    store(T0 + timedelta(hours=2), entry("e1", "zongertinib news"))
    store(T0 + timedelta(days=1), trial("NCT01", "COMPLETED", phases=["PHASE1", "PHASE2"]))


def _model_json(page: dict[str, Any]) -> Any:
    """What the documented model writes for the same page."""
    return json.loads(ItemPage.model_validate(parsed(page)).model_dump_json())


@pytest.mark.usefixtures("mixed")
@pytest.mark.parametrize("limit", [1, 2, 3, 50])
def test_the_page_json_is_what_the_documented_model_writes(
    session: Session, limit: int
) -> None:
    page = service.list_target_items(session, SLUG, limit=limit)
    written = json.loads(page_json(page))
    assert written == _model_json(page)
    # The comparison covers the match decision's fields with real values in each item.
    assert all(item["evidence"] and item["evidence_field"] and item["highlights"]
               for item in written["data"])


@pytest.mark.usefixtures("mixed")
def test_a_link_from_before_evidence_was_recorded_is_written_as_the_model_writes_it(
    session: Session,
) -> None:
    session.execute(update(ItemTarget).values(evidence="", evidence_field="", highlights=[]))
    page = service.list_target_items(session, SLUG)
    written = json.loads(page_json(page))
    assert written == _model_json(page)
    assert {(i["evidence"], i["evidence_field"], str(i["highlights"]))
            for i in written["data"]} == {("", "", "[]")}


@pytest.mark.usefixtures("mixed")
def test_the_answer_keeps_its_shape(client: TestClient) -> None:
    response = client.get(PATH)
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert [item["external_id"] for item in body["data"]] == ["e1", "1", "NCT01"]
    news, publication, study = body["data"]
    assert publication["title"] == "HER2 exon 20 in Ménière’s “quotes” 日本"
    assert publication["first_seen_at"] == "2026-06-01T09:00:00.123456Z"
    assert publication["evidence_field"] == "title"
    assert publication["evidence"] == publication["title"]
    assert [publication["evidence"][start:end] for start, end in publication["highlights"]] == [
        "HER2", "exon 20"]
    assert news["events"] is None and publication["events"] is None
    assert study["events"] == [
        {"kind": "new", "at": "2026-06-01T08:00:00.123456Z", "changes": None},
        {"kind": "updated", "at": "2026-06-02T08:00:00.123456Z", "changes": [
            {"field": "Overall status", "old": "RECRUITING", "new": "COMPLETED"},
            {"field": "Phases", "old": "PHASE1", "new": "PHASE1, PHASE2"},
        ]},
    ]


@pytest.mark.usefixtures("mixed")
def test_a_changed_value_beyond_64_bits_is_still_written(
    client: TestClient, session: Session
) -> None:
    huge = 2**70
    session.execute(
        update(ItemEvent).where(ItemEvent.kind == "updated")
        .values(changes=[{"field": "Enrollment", "old": 10, "new": huge}])
    )
    response = client.get(PATH)
    assert response.status_code == 200
    [updated] = [e for e in response.json()["data"][2]["events"] if e["kind"] == "updated"]
    assert updated["changes"] == [{"field": "Enrollment", "old": 10, "new": huge}]


@pytest.mark.usefixtures("mixed")
def test_a_page_is_one_statement_without_count_or_offset(
    client: TestClient, engine: Engine
) -> None:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement.upper())

    event.listen(engine, "before_cursor_execute", record)
    try:
        first = client.get(PATH, params={"limit": 2}).json()
        client.get(PATH, params={"limit": 2, "cursor": first["next_cursor"]})
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(statements) == 2  # one per page, trials' events included
    assert not any("COUNT(" in s for s in statements)
    if ON_POSTGRES:  # (SQLite's dialect writes a constant OFFSET 0 after every LIMIT)
        assert not any("OFFSET" in s for s in statements)


def test_openapi_still_documents_the_item_page(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    answer = spec["paths"][PATH.replace(SLUG, "{slug}")]["get"]["responses"]["200"]
    assert answer["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ItemPage"
    }


def test_a_single_statement_read_on_a_connection_is_an_ordinary_transaction(
    session_factory: sessionmaker[Session],
) -> None:
    with single_statement_read(session_factory) as session:
        assert session.in_transaction() is False
        session.execute(select(Target.id)).all()
        assert session.connection().get_isolation_level() != "AUTOCOMMIT"


@pytest.mark.postgres
@pytest.mark.skipif(not ON_POSTGRES, reason="needs TEST_DATABASE_URL on PostgreSQL")
def test_a_single_statement_read_on_postgres_sends_no_begin(engine: Engine) -> None:
    factory = sessionmaker(engine)
    with single_statement_read(factory) as session:
        session.execute(select(Target.id)).all()
        dbapi = session.connection().connection.dbapi_connection
        assert dbapi is not None and dbapi.autocommit is True
        assert dbapi.info.transaction_status.name == "IDLE"  # no BEGIN was sent
    with engine.connect() as connection:  # the pooled connection is back to normal
        assert connection.connection.dbapi_connection.autocommit is False  # type: ignore[union-attr]
