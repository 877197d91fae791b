"""The digest routes: an alert's preview (owner or admin), the operator's list of
digests (admin only) and the public page behind a digest's "N more" link."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.app import create_app
from alerts.config import Settings
from alerts.subscriptions.auth import hash_token
from db.models import ApiToken, Digest, DigestAlert, Subscriber
from tests.conftest import make_settings
from tests.test_digests.factories import T0, Factory

ADMIN = "admin-token-for-digest-api-tests"


@pytest.fixture
def client(
    tmp_path: Path, template_url: str, engine: Engine, session_factory: sessionmaker[Session]
) -> Iterator[TestClient]:
    settings: Settings = make_settings(tmp_path, template_url, admin_token=ADMIN)
    app = create_app(settings, engine=engine, session_factory=session_factory)
    with TestClient(app) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def personal_token(factory: Factory, subscriber: Subscriber, token: str) -> dict[str, str]:
    factory.session.add(ApiToken(subscriber_id=subscriber.id, token_hash=hash_token(token)))
    factory.session.flush()
    return bearer(token)


def test_preview_lists_what_the_next_digest_would_hold(
    client: TestClient, factory: Factory
) -> None:
    target = factory.target()
    owner = factory.subscriber()
    alert = factory.alert(owner, target, max_items=2)
    factory.event(factory.item("trial", external_id="NCT00000001"), target,
                  at=T0 + timedelta(hours=1),
                  evidence=("conditions", "HER2 Exon 20 Insertion NSCLC", [[0, 17]]))
    factory.event(factory.item("trial", external_id="NCT00000002"), target,
                  at=T0 + timedelta(hours=2), kind="updated",
                  changes=[{"field": "overall_status", "old": "RECRUITING",
                            "new": "COMPLETED"}])
    factory.event(factory.item("publication", external_id="40000099"), target,
                  at=T0 + timedelta(hours=3))
    headers = personal_token(factory, owner, "owner-token")

    response = client.get(f"/api/v1/alerts/{alert.id}/preview", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["more"] == 1
    assert [(i["external_id"], i["section"], i["event"]) for i in body["data"]] == [
        ("NCT00000001", "new_trials", "new"),
        ("NCT00000002", "trial_updates", "updated"),
    ]
    assert body["data"][1]["changes"] == [
        {"field": "overall_status", "old": "RECRUITING", "new": "COMPLETED"}
    ]
    assert body["data"][0]["matched_terms"] == ["HER2", "exon 20"]
    assert (body["data"][0]["evidence"], body["data"][0]["evidence_field"],
            body["data"][0]["highlights"]) == ("HER2 Exon 20 Insertion NSCLC", "conditions",
                                               [[0, 17]])
    # The admin sees it too; nothing was recorded by looking.
    assert client.get(f"/api/v1/alerts/{alert.id}/preview",
                      headers=bearer(ADMIN)).json() == body
    assert factory.session.query(Digest).count() == 0


def test_preview_of_someone_elses_alert_is_not_found(client: TestClient, factory: Factory) -> None:
    target = factory.target()
    alert = factory.alert(factory.subscriber(), target)
    stranger = personal_token(factory, factory.subscriber(), "stranger-token")
    assert client.get(f"/api/v1/alerts/{alert.id}/preview", headers=stranger).status_code == 404
    assert client.get("/api/v1/alerts/999999/preview", headers=bearer(ADMIN)).status_code == 404
    anonymous = client.get(f"/api/v1/alerts/{alert.id}/preview")
    assert anonymous.status_code == 401
    assert "detail" in anonymous.json()


def add_digest(factory: Factory, subscriber: Subscriber, alert_id: int, n: int,
               status: str) -> int:
    slot = datetime(2026, 5, 1, 8, tzinfo=UTC) + timedelta(days=n)
    digest = Digest(key=f"{subscriber.id}:daily:{slot:%Y-%m-%dT%H:%MZ}",
                    subscriber_id=subscriber.id, frequency="daily", slot_at=slot,
                    status=status, message_id=f"<m{n}@alerts.test>",
                    last_error="SMTP 550 no such user" if status == "failed" else None)
    factory.session.add(digest)
    factory.session.flush()
    factory.session.add(DigestAlert(digest_id=digest.id, alert_id=alert_id))
    factory.session.flush()
    return digest.id


def test_the_admin_lists_failed_digests_page_by_page(client: TestClient, factory: Factory) -> None:
    subscriber = factory.subscriber("gone@example.org", mail_status="bounced")
    alert = factory.alert(subscriber, factory.target())
    failed = [add_digest(factory, subscriber, alert.id, n, "failed") for n in range(3)]
    add_digest(factory, subscriber, alert.id, 9, "sent")

    first = client.get("/api/v1/digests", params={"status": "failed", "limit": 2},
                       headers=bearer(ADMIN))
    assert first.status_code == 200, first.text
    page = first.json()
    assert [d["id"] for d in page["data"]] == [failed[2], failed[1]]
    assert page["data"][0]["alert_ids"] == [alert.id]
    assert page["data"][0]["mail_status"] == "bounced"
    second = client.get("/api/v1/digests", headers=bearer(ADMIN),
                        params={"status": "failed", "limit": 2, "cursor": page["next_cursor"]})
    assert [d["id"] for d in second.json()["data"]] == [failed[0]]
    assert second.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "status"),
    [({"status": "lost"}, 422), ({"cursor": "not-a-cursor"}, 422), ({"limit": 0}, 422)],
)
def test_bad_list_parameters_are_422(
    client: TestClient, params: dict[str, object], status: int
) -> None:
    response = client.get("/api/v1/digests", params=params, headers=bearer(ADMIN))
    assert response.status_code == status
    assert "detail" in response.json()


def test_only_the_admin_lists_digests(client: TestClient, factory: Factory) -> None:
    subscriber = personal_token(factory, factory.subscriber(), "reader-token")
    assert client.get("/api/v1/digests", headers=subscriber).status_code == 403
    assert client.get("/api/v1/digests").status_code == 401


def test_the_more_page_lists_the_targets_items_since_escaped(
    client: TestClient, factory: Factory
) -> None:
    target = factory.target("her2-more", "HER2 <exon> 20")
    factory.event(factory.item("news", title="Old <b>news</b>"), target, at=T0)
    factory.event(factory.item("news", title="Fresh <script>x()</script> & news"), target,
                  at=T0 + timedelta(days=2))
    factory.event(factory.item("trial", title="A trial"), target, at=T0 + timedelta(days=3))
    response = client.get("/targets/her2-more/items",
                          params={"since": (T0 + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "HER2 &lt;exon&gt; 20" in page
    assert "Fresh &lt;script&gt;x()&lt;/script&gt; &amp; news" in page
    assert "<script>" not in page
    assert "Old" not in page
    assert page.index("A trial") < page.index("Fresh")  # new trials come first


@pytest.mark.parametrize(
    ("path", "status"),
    [("/targets/no-such-target/items?since=2026-05-01T00:00:00Z", 404),
     ("/targets/her2-exon20/items?since=yesterday", 400)],
)
def test_the_more_page_explains_a_bad_link(client: TestClient, path: str, status: int) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
