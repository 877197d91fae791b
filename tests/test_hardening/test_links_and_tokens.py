"""A GET changes nothing (the confirmation link shows a button); personal tokens
expire and can be revoked by their owner."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts.subscriptions.tokens import manage_url
from db.clock import utc_now
from db.models import ApiToken
from tests.test_subscriptions.harness import Harness, csrf_field, link_in, relative


def _confirm_link(harness: Harness, email: str) -> str:
    return relative(link_in(harness.only_mail(email), "/confirm?token="))


def test_opening_the_confirmation_link_changes_nothing(harness: Harness) -> None:
    harness.api_subscribe("ann@example.org")
    link = _confirm_link(harness, "ann@example.org")

    for _ in range(2):  # a mail scanner, then the reader
        page = harness.client.get(link)
        assert page.status_code == 200
        assert "HER2 (ERBB2) exon 20" in page.text and "ann@example.org" in page.text
        assert '<form method="post"' in page.text
        assert '<button type="submit">Confirm</button>' in page.text
    assert harness.statuses("ann@example.org") == ["pending"]
    assert harness.subscriber("ann@example.org").verified_at is None  # type: ignore[union-attr]

    confirmed = harness.client.post(link, data={"csrf_token": csrf_field(page.text)})

    assert confirmed.status_code == 200 and "Your alerts are active" in confirmed.text
    assert harness.statuses("ann@example.org") == ["active"]


def test_the_confirm_post_needs_the_pages_csrf_token(harness: Harness) -> None:
    harness.api_subscribe("ann@example.org")
    link = _confirm_link(harness, "ann@example.org")
    harness.client.get(link)

    response = harness.client.post(link, data={"csrf_token": "forged"})

    assert response.status_code == 403
    assert harness.statuses("ann@example.org") == ["pending"]


def _age_tokens(harness: Harness, days: int) -> None:
    with harness.db() as session:
        for token in session.query(ApiToken):
            token.created_at = utc_now() - timedelta(days=days)


@pytest.mark.parametrize(("age_days", "works"), [(89, True), (90, False), (400, False)])
def test_a_personal_token_expires_after_its_ttl(
    harness: Harness, age_days: int, works: bool
) -> None:
    harness.verified_subscriber("ann@example.org")
    token = harness.personal_token("ann@example.org")
    _age_tokens(harness, age_days)

    response = harness.client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {token}"})

    if works:
        assert response.status_code == 200
    else:
        assert response.status_code == 401
        assert response.json()["detail"] == (
            "this token has expired; POST /api/v1/tokens mails a new one")


def test_the_owner_revokes_the_token_of_the_request(harness: Harness) -> None:
    harness.verified_subscriber("ann@example.org")
    kept = harness.personal_token("ann@example.org")
    revoked = harness.personal_token("ann@example.org")

    answer = harness.client.delete("/api/v1/tokens/current",
                                   headers={"Authorization": f"Bearer {revoked}"})

    assert answer.status_code == 204
    for token, code in ((revoked, 401), (kept, 200)):
        assert harness.client.get("/api/v1/alerts", headers={
            "Authorization": f"Bearer {token}"}).status_code == code
    assert harness.client.delete("/api/v1/tokens/current").status_code == 401


def test_the_manage_page_revokes_every_token(harness: Harness) -> None:
    harness.verified_subscriber("ann@example.org")
    tokens = [harness.personal_token("ann@example.org") for _ in range(2)]
    subscriber = harness.subscriber("ann@example.org")
    assert subscriber is not None
    link = relative(manage_url(harness.settings, subscriber.id))
    page = harness.client.get(link)
    assert 'value="revoke-tokens"' in page.text

    done = harness.client.post(link, data={"csrf_token": csrf_field(page.text),
                                           "action": "revoke-tokens"})

    assert done.status_code == 303
    assert "revoked" in harness.client.get(done.headers["location"]).text
    for token in tokens:
        assert harness.client.get("/api/v1/alerts", headers={
            "Authorization": f"Bearer {token}"}).status_code == 401
