"""The pages behind the links in mails: confirm, unsubscribe (RFC 8058 one-click) and
manage. A bad link is a clear page, never a 500."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alerts.subscriptions.tokens import Purpose, make_token, manage_url, unsubscribe_url
from tests.test_subscriptions.harness import Harness, csrf_field, relative

OTHER_SLUG = "egfr-exon20"


def _ids(harness: Harness, email: str) -> list[int]:
    return [a.id for a in harness.alerts(email)]


# --- bad links ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/confirm", "/manage", "/unsubscribe"])
@pytest.mark.parametrize("token", ["", "garbage", "eyJzIjoxfQ.AAAAAA.forged-signature"])
def test_a_broken_link_answers_a_page_not_a_crash(harness: Harness, path: str, token: str) -> None:
    response = harness.client.get(path, params={"token": token} if token else None)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "This link does not work" in response.text


def test_an_expired_confirmation_link_is_410(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.api_subscribe("ann@example.org")
    [alert_id] = _ids(harness, "ann@example.org")
    eight_days_ago = time.time() - 8 * 24 * 3600
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: eight_days_ago)
        token = make_token(harness.settings, Purpose.confirm, {"s": 1, "a": [alert_id]})

    response = harness.client.get("/confirm", params={"token": token})

    assert response.status_code == 410 and "expired" in response.text
    assert harness.statuses("ann@example.org") == ["pending"]


def test_a_link_made_for_another_purpose_is_refused(harness: Harness) -> None:
    harness.verified_subscriber("ann@example.org")
    unsubscribe = unsubscribe_url(harness.settings, _ids(harness, "ann@example.org"))
    token = unsubscribe.split("token=", 1)[1]
    for path in ("/confirm", "/manage"):
        assert harness.client.get(path, params={"token": token}).status_code == 400


# --- unsubscribe ----------------------------------------------------------------------


def test_opening_the_unsubscribe_link_changes_nothing(harness: Harness) -> None:
    harness.verified_subscriber("ann@example.org")
    link = relative(unsubscribe_url(harness.settings, _ids(harness, "ann@example.org")))

    page = harness.client.get(link)

    assert page.status_code == 200
    assert "HER2 (ERBB2) exon 20" in page.text and "ann@example.org" in page.text
    assert '<form method="post"' in page.text and "One-Click" in page.text
    assert harness.statuses("ann@example.org") == ["active"]


def test_one_click_unsubscribe_needs_no_cookie_and_answers_200(harness: Harness) -> None:
    harness.add_target(OTHER_SLUG, "EGFR exon 20")
    harness.verified_subscriber("ann@example.org")
    harness.verified_subscriber("ann@example.org", OTHER_SLUG)
    her2, egfr = _ids(harness, "ann@example.org")
    link = relative(unsubscribe_url(harness.settings, [her2]))
    # A mail client: a bare POST, no cookie, no CSRF token, no redirects followed.
    with TestClient(harness.client.app, base_url="http://alerts.test",
                    follow_redirects=False) as mail_client:
        responses = [
            mail_client.post(link, content=b"List-Unsubscribe=One-Click",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
            for _ in range(2)  # idempotent
        ]

    assert [r.status_code for r in responses] == [200, 200]
    assert all("location" not in r.headers for r in responses)
    assert "You are unsubscribed" in responses[0].text
    assert harness.statuses("ann@example.org") == ["unsubscribed", "active"]
    assert {str(m["Subject"])[:7] for m in harness.mails()} == {"Confirm"}  # nothing else


def test_one_link_ends_every_alert_it_names(harness: Harness) -> None:
    harness.add_target(OTHER_SLUG, "EGFR exon 20")
    harness.verified_subscriber("ann@example.org")
    harness.verified_subscriber("ann@example.org", OTHER_SLUG)
    harness.verified_subscriber("bob@example.org")

    response = harness.client.post(
        relative(unsubscribe_url(harness.settings, _ids(harness, "ann@example.org"))))

    assert response.status_code == 200
    assert harness.statuses("ann@example.org") == ["unsubscribed", "unsubscribed"]
    assert harness.statuses("bob@example.org") == ["active"]
    again = harness.client.get(
        relative(unsubscribe_url(harness.settings, _ids(harness, "ann@example.org"))))
    assert "Already unsubscribed" in again.text


# --- manage ---------------------------------------------------------------------------


def _manage(harness: Harness, email: str) -> tuple[str, str]:
    """The manage link of `email`'s subscriber and the CSRF field of its page."""
    subscriber = harness.subscriber(email)
    assert subscriber is not None
    link = relative(manage_url(harness.settings, subscriber.id))
    page = harness.client.get(link)
    assert page.status_code == 200
    return link, csrf_field(page.text)


def _act(harness: Harness, link: str, field: str, **data: Any) -> Any:
    return harness.client.post(link, data={"csrf_token": field, **data})


def test_the_manage_page_lists_the_alerts(harness: Harness) -> None:
    harness.add_target(OTHER_SLUG, "EGFR <exon 20>")
    harness.verified_subscriber("ann@example.org")

    link, _field = _manage(harness, "ann@example.org")
    page = harness.client.get(link)

    assert "Alerts for ann@example.org" in page.text
    assert "HER2 (ERBB2) exon 20" in page.text
    assert "EGFR &lt;exon 20&gt;" in page.text  # offered in "Add a target", escaped


def test_saving_changes_the_schedule(harness: Harness) -> None:
    harness.verified_subscriber("ann@example.org")
    [alert_id] = _ids(harness, "ann@example.org")
    link, field = _manage(harness, "ann@example.org")

    response = _act(harness, link, field, action="save", alert_id=alert_id, frequency="weekly",
                    weekday="friday", send_hour="18", timezone="America/New_York",
                    max_items="10", send_when_empty="on")

    assert response.status_code == 303
    assert "done=saved" in response.headers["location"]
    [alert] = harness.alerts("ann@example.org")
    assert (alert.frequency, alert.weekday, alert.send_hour, alert.timezone, alert.max_items,
            alert.send_when_empty, alert.status) == (
        "weekly", "friday", 18, "America/New_York", 10, True, "active")
    assert "Your changes are saved." in harness.client.get(response.headers["location"]).text


@pytest.mark.parametrize(
    ("actions", "status"),
    [(["pause"], "paused"), (["pause", "resume"], "active"), (["remove"], "unsubscribed")],
)
def test_pause_resume_and_remove(harness: Harness, actions: list[str], status: str) -> None:
    harness.verified_subscriber("ann@example.org")
    [alert_id] = _ids(harness, "ann@example.org")
    link, field = _manage(harness, "ann@example.org")

    for action in actions:
        response = _act(harness, link, field, action=action, alert_id=alert_id,
                        frequency="daily")
        assert response.status_code == 303

    assert harness.statuses("ann@example.org") == [status]


def test_adding_a_target_is_active_at_once_for_a_verified_address(harness: Harness) -> None:
    harness.add_target(OTHER_SLUG, "EGFR exon 20")
    harness.verified_subscriber("ann@example.org")
    mails_before = len(harness.mails())
    link, field = _manage(harness, "ann@example.org")

    response = _act(harness, link, field, action="add", target=OTHER_SLUG, frequency="daily",
                    send_hour="6", timezone="UTC", max_items="50")

    assert response.status_code == 303
    assert harness.statuses("ann@example.org") == ["active", "active"]
    assert len(harness.mails()) == mails_before


@pytest.mark.parametrize(
    ("data", "code", "message"),
    [
        ({"action": "save", "frequency": "daily", "timezone": "Atlantis/Capital"}, 422,
         "unknown time zone"),
        ({"action": "pause", "alert_id": "../1"}, 422, "That alert does not exist."),
        ({"action": "pause", "alert_id": "999999"}, 404, "not found"),
        ({"action": "explode"}, 422, "That button does not exist."),
        ({"action": "add", "target": "her2-exon20", "frequency": "daily"}, 409,
         "already have an alert"),
    ],
)
def test_a_refused_change_shows_why_and_changes_nothing(
    harness: Harness, data: dict[str, str], code: int, message: str
) -> None:
    harness.verified_subscriber("ann@example.org")
    [alert_id] = _ids(harness, "ann@example.org")
    link, field = _manage(harness, "ann@example.org")

    response = _act(harness, link, field, **{"alert_id": str(alert_id), **data})

    assert response.status_code == code
    assert message in response.text
    [alert] = harness.alerts("ann@example.org")
    assert (alert.status, alert.timezone) == ("active", "UTC")


def test_a_manage_post_needs_the_csrf_token(harness: Harness) -> None:
    harness.verified_subscriber("ann@example.org")
    [alert_id] = _ids(harness, "ann@example.org")
    link, _field = _manage(harness, "ann@example.org")

    response = harness.client.post(link, data={"action": "remove", "alert_id": alert_id})

    assert response.status_code == 403
    assert harness.statuses("ann@example.org") == ["active"]


def test_a_manage_link_cannot_touch_another_subscribers_alert(harness: Harness) -> None:
    harness.verified_subscriber("ann@example.org")
    harness.verified_subscriber("bob@example.org")
    [bobs] = _ids(harness, "bob@example.org")
    link, field = _manage(harness, "ann@example.org")

    response = _act(harness, link, field, action="remove", alert_id=bobs)

    assert response.status_code == 404
    assert harness.statuses("bob@example.org") == ["active"]
