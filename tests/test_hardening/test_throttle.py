"""Every route that sends mail is throttled per client address and for everyone
together, counted in the database so that several API processes share the count."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.requests import Request

from alerts.app import create_app
from alerts.mail.smtp import SmtpMailer
from alerts.subscriptions import throttle
from db.clock import utc_now
from db.models import MailRequest
from tests.conftest import make_settings
from tests.test_subscriptions.harness import ADMIN_TOKEN, SLUG, Harness, csrf_field


def _app_client(harness: Harness, tmp_path: Path, client: tuple[str, int] = ("198.51.100.7", 1),
                **settings: Any) -> TestClient:
    """Another API process over the same database, seen from `client`."""
    app = create_app(
        make_settings(tmp_path, harness.settings.database_url, admin_token=ADMIN_TOKEN,
                      **settings),
        engine=harness.engine, session_factory=harness.session_factory,
        mailer=SmtpMailer(host="127.0.0.1", port=harness.smtp.port, timeout=5),
    )
    return TestClient(app, base_url="http://alerts.test", client=client)


def _api_alert(client: TestClient, n: int) -> Any:
    return client.post("/api/v1/alerts", json={"email": f"stranger{n}@example.org",
                                               "target": SLUG, "frequency": "daily"})


def _token(client: TestClient, n: int) -> Any:
    return client.post("/api/v1/tokens", json={"email": f"stranger{n}@example.org"})


def _form(client: TestClient, n: int) -> Any:
    page = client.get("/")
    return client.post("/subscribe", data={
        "email": f"stranger{n}@example.org", "target": SLUG, "frequency": "daily",
        "csrf_token": csrf_field(page.text)})


ROUTES: dict[str, Callable[[TestClient, int], Any]] = {
    "POST /api/v1/alerts": _api_alert, "POST /api/v1/tokens": _token, "POST /subscribe": _form,
}


@pytest.mark.parametrize("send", ROUTES.values(), ids=ROUTES.keys())
def test_one_client_is_stopped_after_its_limit_with_retry_after(
    harness: Harness, tmp_path: Path, send: Callable[[TestClient, int], Any]
) -> None:
    with _app_client(harness, tmp_path, mail_throttle_per_client=3) as client:
        answers = [send(client, n) for n in range(5)]

    assert [a.status_code < 300 for a in answers] == [True, True, True, False, False]
    refused = answers[3]
    assert refused.status_code == 429
    assert 3500 <= int(refused.headers["Retry-After"]) <= 3600
    if refused.headers["content-type"].startswith("application/json"):
        assert "too many requests" in refused.json()["detail"]
    else:
        assert "Please wait a little" in refused.text and "Try again in" in refused.text
    assert len(harness.mails()) <= 3


def test_a_hundred_strangers_from_many_addresses_meet_the_overall_limit(
    harness: Harness, tmp_path: Path
) -> None:
    codes = []
    for n in range(12):  # a botnet: every request from another address
        with _app_client(harness, tmp_path, client=(f"203.0.113.{n}", 1),
                         mail_throttle_overall=10) as client:
            codes.append(_api_alert(client, n).status_code)

    assert codes == [202] * 10 + [429] * 2
    assert len(harness.mails()) == 10


def test_the_count_is_shared_by_every_process_and_the_window_passes(
    harness: Harness, tmp_path: Path
) -> None:
    with _app_client(harness, tmp_path / "a", mail_throttle_per_client=2) as first, \
         _app_client(harness, tmp_path / "b", mail_throttle_per_client=2) as second:
        assert _api_alert(first, 1).status_code == 202
        assert _api_alert(second, 2).status_code == 202
        assert _api_alert(first, 3).status_code == 429
        assert _api_alert(second, 4).status_code == 429
    # An hour later the old requests no longer count, and are pruned.
    request = Request({"type": "http", "client": ("198.51.100.7", 1), "headers": []})
    client = throttle.client_key(harness.settings, request)
    throttle.hit(harness.session_factory, harness.settings, client,
                 now=utc_now() + timedelta(hours=1, seconds=1))
    with harness.db() as session:
        assert len(list(session.scalars(select(MailRequest)))) == 1


def test_the_admin_is_not_throttled_and_stored_clients_are_hashed(
    harness: Harness, tmp_path: Path
) -> None:
    with _app_client(harness, tmp_path, mail_throttle_per_client=1) as client:
        assert _api_alert(client, 1).status_code == 202
        for n in range(3):
            response = client.post("/api/v1/alerts", headers={
                "Authorization": f"Bearer {ADMIN_TOKEN}"}, json={
                "email": f"admin{n}@example.org", "target": SLUG, "frequency": "daily"})
            assert response.status_code == 201
    with harness.db() as session:
        [stored] = session.scalars(select(MailRequest.client))
    assert "198.51.100.7" not in stored and len(stored) == 64


def test_concurrent_requests_get_answers_never_errors(
    isolated_harness: Harness, tmp_path: Path
) -> None:
    harness = isolated_harness
    with _app_client(harness, tmp_path, mail_throttle_per_client=5) as client, \
         ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda n: _token(client, n).status_code, range(24)))

    assert set(codes) <= {202, 429} and codes.count(202) >= 5
