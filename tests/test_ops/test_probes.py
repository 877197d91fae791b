"""/healthz answers while the process is up; /readyz only when the database answers and
its migrations are current (a load balancer sends no traffic before that)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from alerts.app import create_app
from db.session import make_engine
from tests.conftest import make_settings


@pytest.fixture
def own_engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def _client(tmp_path: Path, engine: Engine) -> TestClient:
    url = engine.url.render_as_string(hide_password=False)
    return TestClient(create_app(make_settings(tmp_path, url), engine=engine))


def test_a_migrated_database_is_ready(tmp_path: Path, own_engine: Engine) -> None:
    client = _client(tmp_path, own_engine)
    assert client.get("/healthz").json() == {"status": "ok"}
    response = client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_pending_migrations_answer_503(tmp_path: Path, own_engine: Engine) -> None:
    # The code is newer than the database: as after deploying before `alerts db upgrade`.
    with own_engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    client = _client(tmp_path, own_engine)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "detail": "migrations pending"}
    assert client.get("/healthz").status_code == 200  # alive, just not ready


def test_a_never_migrated_database_answers_503(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        response = _client(tmp_path, engine).get("/readyz")
        assert (response.status_code, response.json()["detail"]) == (503, "migrations pending")
    finally:
        engine.dispose()


def test_an_unreachable_database_answers_503(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'alerts.db'}")
    try:
        response = _client(tmp_path, engine).get("/readyz")
        assert response.status_code == 503
        assert response.json()["detail"].startswith("database: ")
    finally:
        engine.dispose()
