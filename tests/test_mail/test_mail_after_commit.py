"""Mail sent right after a request's commit never holds a second database connection:
a pool of ONE serves a request that mails, and many concurrent requests that mail
share a pool of two without a pool timeout; every mail arrives once.

(Before, the after-commit hook opened sessions while its request still held its own
connection: 16 concurrent form posts stalled for the pool's timeout and answered 500.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from alerts.app import create_app
from alerts.mail.smtp import SmtpMailer
from db.models import OutboundMail
from db.session import make_engine, make_sessionmaker, transaction
from tests.conftest import make_settings
from tests.fakes.smtp import SmtpServer

SLUG = "her2-exon20"  # in the catalogue the migrations seed


@pytest.fixture
def small_pool(request: pytest.FixtureRequest, db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url, pool_size=request.param, max_overflow=0, pool_timeout=3)
    yield engine
    engine.dispose()


def _client(engine: Engine, smtp: SmtpServer, tmp_path: Path, db_url: str) -> TestClient:
    # One test client is one client address: the per-client mail throttle is lifted so
    # that the pool, not the throttle, is what these tests measure.
    settings = make_settings(tmp_path, db_url, mail_throttle_per_client=1000)
    app = create_app(
        settings, engine=engine, session_factory=make_sessionmaker(engine),
        mailer=SmtpMailer(host="127.0.0.1", port=smtp.port, timeout=5),
    )
    return TestClient(app, base_url="http://alerts.test", raise_server_exceptions=False)


def _csrf(client: TestClient) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text)
    assert match
    return match.group(1)


def _form(email: str, csrf: str) -> dict[str, str]:
    return {"email": email, "target": SLUG, "frequency": "daily", "send_hour": "8",
            "timezone": "UTC", "max_items": "50", "csrf_token": csrf}


@pytest.mark.parametrize("small_pool", [1], indirect=True)
def test_a_pool_of_one_connection_serves_a_request_that_mails(
    small_pool: Engine, smtp_server: SmtpServer, tmp_path: Path, db_url: str
) -> None:
    with _client(small_pool, smtp_server, tmp_path, db_url) as client:
        csrf = _csrf(client)
        form = client.post("/subscribe", data=_form("ann@example.org", csrf))
        api = client.post("/api/v1/alerts", json={"email": "bob@example.org", "target": SLUG,
                                                  "frequency": "daily"})
    assert (form.status_code, api.status_code) == (200, 202)
    for address in ("ann@example.org", "bob@example.org"):
        [mail] = smtp_server.handler.to(address)
        assert str(mail["Subject"]).startswith("Confirm")


@pytest.mark.parametrize("small_pool", [2], indirect=True)
def test_concurrent_requests_that_mail_share_a_small_pool(
    small_pool: Engine, smtp_server: SmtpServer, tmp_path: Path, db_url: str
) -> None:
    addresses = [f"reader{n:02d}@example.org" for n in range(24)]
    with _client(small_pool, smtp_server, tmp_path, db_url) as client:
        csrf = _csrf(client)
        with ThreadPoolExecutor(max_workers=len(addresses)) as threads:
            statuses = list(threads.map(
                lambda address: client.post("/subscribe", data=_form(address, csrf)).status_code,
                addresses,
            ))
    assert statuses == [200] * len(addresses)
    assert sorted(str(m["To"]) for m in smtp_server.handler.messages()) == addresses
    with transaction(make_sessionmaker(small_pool)) as session:
        assert set(session.scalars(select(OutboundMail.status))) == {"sent"}
