"""The target page's subscribe box is the subscribe form for that one target."""

from __future__ import annotations

from tests.test_subscriptions.harness import SLUG, Harness
from tests.test_web.test_subscribe_form import csrf_field


def test_subscribing_from_the_target_page_mails_a_confirmation(harness: Harness) -> None:
    page = harness.client.get(f"/targets/{SLUG}")

    response = harness.client.post("/subscribe", data={
        "csrf_token": csrf_field(page.text), "target": SLUG, "email": "ann@example.org",
        "frequency": "weekly",
    })

    assert response.status_code == 200, response.text
    assert harness.statuses("ann@example.org") == ["pending"]
    assert str(harness.only_mail("ann@example.org")["Subject"]).startswith("Confirm")
