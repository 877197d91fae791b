"""A subscriber erases their address and history, from the manage page (after a
confirm step) or the API; afterwards no row in any table holds the address, and no
digest is sent twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from alerts.digests.delivery.send import send_due
from alerts.mail.smtp import SmtpMailer
from alerts.subscriptions.tokens import manage_url
from db.base import Base
from db.clock import utc_now
from db.models import Subscriber
from tests.test_subscriptions.harness import ADMIN_TOKEN, Harness, csrf_field, relative

ANN = "ann@example.org"


def _rows_mentioning(harness: Harness, needle: str) -> list[str]:
    found = []
    with harness.db() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                if needle in repr(tuple(row)).lower():
                    found.append(table.name)
    return found


def _send_digests(harness: Harness, days: int) -> None:
    send_due(harness.session_factory, harness.settings,
             SmtpMailer(host="127.0.0.1", port=harness.smtp.port), owner="test",
             now=utc_now() + timedelta(days=days), render_workers=0)


def _digests(harness: Harness) -> list[str]:
    return [str(m["Subject"]) for m in harness.mails(ANN)
            if not str(m["Subject"]).startswith(("Confirm", "Your Target Alerts API token"))]


def _a_subscriber_with_history(harness: Harness) -> None:
    harness.verified_subscriber(ANN)
    token = harness.personal_token(ANN)
    [alert] = harness.alerts(ANN)
    harness.client.patch(f"/api/v1/alerts/{alert.id}", json={"send_when_empty": True},
                         headers={"Authorization": f"Bearer {token}"})
    _send_digests(harness, 2)
    assert len(_digests(harness)) == 1
    assert set(_rows_mentioning(harness, ANN)) >= {"subscribers", "outbound_mails"}


def _erase_by_manage_page(harness: Harness) -> None:
    subscriber = harness.subscriber(ANN)
    assert subscriber is not None
    link = relative(manage_url(harness.settings, subscriber.id))
    page = harness.client.get(link)
    asked = harness.client.post(link, data={"csrf_token": csrf_field(page.text),
                                            "action": "erase"})
    assert asked.status_code == 200 and "Erase ann@example.org?" in asked.text
    assert harness.subscriber(ANN) is not None  # the first button only asks
    done = harness.client.post(link, data={"csrf_token": csrf_field(asked.text),
                                           "action": "erase-confirmed"})
    assert done.status_code == 200 and "Your address is erased" in done.text
    assert harness.client.get(link).status_code == 400  # the link no longer works


def _erase_by_token(harness: Harness) -> None:
    token = harness.personal_token(ANN)
    response = harness.client.delete("/api/v1/subscriber",
                                     headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 204
    assert harness.client.get("/api/v1/alerts", headers={
        "Authorization": f"Bearer {token}"}).status_code == 401


def _erase_by_admin(harness: Harness) -> None:
    response = harness.client.delete("/api/v1/subscriber", params={"email": ANN},
                                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 204


@pytest.mark.parametrize("erase", [_erase_by_manage_page, _erase_by_token, _erase_by_admin],
                         ids=["manage page", "personal token", "admin"])
def test_after_erasure_no_row_holds_the_address(harness: Harness, erase: object) -> None:
    _a_subscriber_with_history(harness)

    erase(harness)  # type: ignore[operator]

    assert _rows_mentioning(harness, ANN) == []
    with harness.db() as session:
        assert list(session.scalars(select(Subscriber))) == []
    _send_digests(harness, 2)  # the slot already sent is not sent again
    _send_digests(harness, 9)  # nor anything later
    assert len(_digests(harness)) == 1


def test_erasure_needs_a_personal_token_and_admin_names_the_address(harness: Harness) -> None:
    assert harness.client.delete("/api/v1/subscriber").status_code == 401
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert harness.client.delete("/api/v1/subscriber", headers=admin).status_code == 422
    assert harness.client.delete("/api/v1/subscriber", params={"email": "nobody@example.org"},
                                 headers=admin).status_code == 404
