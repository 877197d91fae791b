"""`GET /api/v1/sources`: each source's health per target, as operators see it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.app import create_app
from alerts.config import Settings
from alerts.sources.base import SourceError, SourceName
from tests.fakes.adapters import FakeSource, install, result
from tests.test_polling.conftest import SLUG, Run


@pytest.mark.parametrize("failures", [1, 2, 3])
def test_sources_show_success_errors_and_when_they_fail_for_real(
    run: Run, monkeypatch: pytest.MonkeyPatch, settings: Settings, engine: Engine,
    session_factory: sessionmaker[Session], failures: int,
) -> None:
    install(
        monkeypatch,
        FakeSource(SourceName.pubmed, {SLUG: [SourceError("pubmed esearch: HTTP 400")]}),
        FakeSource(SourceName.ctgov, {SLUG: [result(warnings=["a warning"])]}),
    )
    for _ in range(failures):
        run()

    app = create_app(settings, engine=engine, session_factory=session_factory)
    with TestClient(app) as client:
        body = client.get("/api/v1/sources").json()

    assert body["next_cursor"] is None
    ctgov, pubmed = body["data"]  # by source name
    assert ctgov == {
        "source": "ctgov", "target": SLUG, "last_success_at": "2026-06-01T08:00:00Z",
        "last_error": None, "last_error_at": None, "consecutive_failures": 0,
        "next_poll_at": "2026-06-01T09:00:00Z", "warnings": ["a warning"], "failing": False,
    }
    assert pubmed["last_error"] == "pubmed esearch: HTTP 400"
    assert pubmed["last_success_at"] is None
    assert pubmed["consecutive_failures"] == failures
    # ALERTS_FAILURE_ALERT_THRESHOLD defaults to 3.
    assert pubmed["failing"] is (failures >= settings.failure_alert_threshold)
