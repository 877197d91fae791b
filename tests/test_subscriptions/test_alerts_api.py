"""The alerts API (/api/v1/alerts): who may create what in which status, every error
answer, ownership, pagination. Mail goes through a real SMTP server."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from alerts.app import create_app
from alerts.digests.delivery.send import send_due
from alerts.mail.smtp import SmtpMailer
from db.clock import utc_now
from db.models import Alert
from tests.conftest import make_settings
from tests.test_subscriptions.harness import (
    ADMIN_TOKEN,
    SLUG,
    Harness,
    html_of,
    link_in,
    text_of,
)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
OTHER_SLUG = "egfr-exon20"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def accepted(email: str, target: str = SLUG) -> dict[str, str]:
    """The one anonymous answer to POST /api/v1/alerts, whatever the address's state."""
    return {"detail": "Check the inbox of this address: the subscription waits for the "
            "click on the link we mail to it.", "email": email, "target": target}


# --- creating -------------------------------------------------------------------------


def test_anonymous_subscription_is_pending_and_mails_one_confirmation(harness: Harness) -> None:
    response = harness.api_subscribe("  Ann@Example.ORG ", frequency="weekly", weekday="friday",
                                     send_hour=18, timezone="Europe/Paris", max_items=20,
                                     send_when_empty=True)

    assert response.status_code == 202
    assert response.json() == accepted("ann@example.org")
    [alert] = harness.alerts("ann@example.org")
    assert (alert.frequency, alert.weekday, alert.send_hour, alert.timezone, alert.max_items,
            alert.send_when_empty, alert.status, alert.activated_at) == (
        "weekly", "friday", 18, "Europe/Paris", 20, True, "pending", None)
    mail = harness.only_mail("ann@example.org")
    assert str(mail["Subject"]).startswith("Confirm")
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    link = link_in(mail, "/confirm?token=")
    assert link.startswith("http://alerts.test/confirm?token=")
    assert "HER2 (ERBB2) exon 20" in text_of(mail)
    assert link.replace("&", "&amp;") in html_of(mail)
    assert mail["Message-ID"] and mail["Date"]


def test_defaults_fill_what_the_body_leaves_out(harness: Harness) -> None:
    body = harness.api_subscribe("ann@example.org", token=ADMIN_TOKEN).json()
    assert (body["weekday"], body["send_hour"], body["timezone"], body["max_items"],
            body["send_when_empty"]) == ("monday", 8, "UTC", 50, False)


def test_confirmation_click_activates_and_mails_nothing_else(harness: Harness) -> None:
    harness.api_subscribe("ann@example.org")
    [pending] = harness.alerts("ann@example.org")
    alert_id = pending.id

    assert harness.confirm_by_mail("ann@example.org").status_code == 200

    [alert] = harness.alerts("ann@example.org")
    assert (alert.id, alert.status) == (alert_id, "active")
    assert alert.activated_at is not None
    assert harness.subscriber("ann@example.org").verified_at is not None  # type: ignore[union-attr]
    assert len(harness.mails()) == 1


def test_anonymous_subscription_of_a_verified_address_still_waits_for_a_click(
    harness: Harness,
) -> None:
    harness.add_target(OTHER_SLUG, "EGFR exon 20")
    harness.verified_subscriber("ann@example.org")

    response = harness.api_subscribe("ann@example.org", OTHER_SLUG)

    assert response.status_code == 202
    assert harness.statuses("ann@example.org") == ["active", "pending"]
    subjects = [str(m["Subject"]) for m in harness.mails("ann@example.org")]
    assert len(subjects) == 2 and all(s.startswith("Confirm") for s in subjects)


def test_the_addresss_own_token_activates_at_once_without_mail(harness: Harness) -> None:
    harness.add_target(OTHER_SLUG, "EGFR exon 20")
    harness.verified_subscriber("ann@example.org")
    token = harness.personal_token("ann@example.org")
    mails_before = len(harness.mails())

    response = harness.api_subscribe("ann@example.org", OTHER_SLUG, token=token)

    assert response.status_code == 201
    assert response.json()["status"] == "active"
    assert response.json()["activated_at"] is not None
    assert len(harness.mails()) == mails_before


def test_another_addresss_token_does_not_skip_the_confirmation(harness: Harness) -> None:
    harness.verified_subscriber("ann@example.org")
    token = harness.personal_token("ann@example.org")

    response = harness.api_subscribe("bob@example.org", token=token)

    assert (response.status_code, response.json()) == (202, accepted("bob@example.org"))
    assert harness.statuses("bob@example.org") == ["pending"]
    assert len(harness.mails("bob@example.org")) == 1


@pytest.mark.parametrize(
    ("confirmed", "status", "mails"), [(True, "active", 0), (False, "pending", 1)]
)
def test_admin_activates_only_with_confirmed_true(
    harness: Harness, confirmed: bool, status: str, mails: int
) -> None:
    response = harness.api_subscribe("ann@example.org", token=ADMIN_TOKEN, confirmed=confirmed)

    assert response.status_code == 201
    assert response.json()["status"] == status
    assert len(harness.mails()) == mails


def test_confirmed_true_from_an_anonymous_caller_is_ignored(harness: Harness) -> None:
    response = harness.api_subscribe("ann@example.org", confirmed=True)
    assert response.status_code == 202
    assert harness.statuses("ann@example.org") == ["pending"]
    assert len(harness.mails("ann@example.org")) == 1


@pytest.mark.parametrize("state", ["new", "pending", "active", "paused", "unsubscribed"])
def test_the_anonymous_answer_says_nothing_about_the_address(
    harness: Harness, state: str
) -> None:
    if state != "new":
        harness.api_subscribe("ann@example.org")
        with harness.db() as session:
            [alert] = session.scalars(select(Alert))
            alert.status = state

    response = harness.api_subscribe("ANN@example.org", frequency="weekly")

    assert (response.status_code, response.json()) == (202, accepted("ann@example.org"))
    assert len(harness.alerts("ann@example.org")) == 1
    latest = harness.mails("ann@example.org")[-1]
    if state in ("active", "paused"):  # left alone; the mail names it with a manage link
        assert harness.statuses("ann@example.org") == [state]
        assert "/manage?token=" in text_of(latest)
    else:
        assert harness.statuses("ann@example.org") == ["pending"]
        assert "/confirm?token=" in text_of(latest)


@pytest.mark.parametrize("who", ["admin", "owner"])
def test_the_owner_or_admin_learns_of_the_existing_alert_by_409(
    harness: Harness, who: str
) -> None:
    harness.verified_subscriber("ann@example.org")
    token = ADMIN_TOKEN if who == "admin" else harness.personal_token("ann@example.org")
    [alert] = harness.alerts("ann@example.org")

    response = harness.api_subscribe("ANN@example.org", frequency="weekly", token=token)

    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"ann@example.org already has an alert on {SLUG} (id {alert.id}, active)")
    assert harness.statuses("ann@example.org") == ["active"]


def test_subscribing_again_after_unsubscribing_reuses_the_row(harness: Harness) -> None:
    harness.verified_subscriber("ann@example.org")
    [first] = harness.alerts("ann@example.org")
    token = harness.personal_token("ann@example.org")
    assert harness.client.delete(f"/api/v1/alerts/{first.id}",
                                 headers=bearer(token)).status_code == 204

    again = harness.api_subscribe("ann@example.org", frequency="weekly")
    assert again.status_code == 202
    [pending] = harness.alerts("ann@example.org")
    assert (pending.id, pending.status, pending.activated_at) == (first.id, "pending", None)
    harness.confirm_by_mail("ann@example.org")

    [alert] = harness.alerts("ann@example.org")
    assert (alert.status, alert.frequency) == ("active", "weekly")
    assert alert.activated_at is not None and first.activated_at is not None
    assert alert.activated_at > first.activated_at


# --- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("email", "not-an-address", "email"),
        ("email", "", "required"),
        ("target", "no-such-target", "unknown target"),
        ("timezone", "Mars/Olympus_Mons", "unknown time zone"),
        ("timezone", "../../etc/passwd", "unknown time zone"),
        ("send_hour", 24, "less than or equal to 23"),
        ("send_hour", -1, "greater than or equal to 0"),
        ("weekday", "funday", "monday"),
        ("frequency", "hourly", "daily"),
        ("max_items", 0, "greater than or equal to 1"),
        ("max_items", 201, "less than or equal to 200"),
        ("send_when_empty", "perhaps", "boolean"),
    ],
)
def test_each_bad_field_is_422_naming_it_and_nothing_is_kept(
    harness: Harness, field: str, value: Any, message: str
) -> None:
    body = {"email": "ann@example.org", "target": SLUG, "frequency": "daily", field: value}
    response = harness.client.post("/api/v1/alerts", json=body)

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail[0]["loc"] == ["body", field]
    assert message in detail[0]["msg"]
    assert detail[0]["type"]
    assert harness.subscriber("ann@example.org") is None
    assert harness.outbound() == [] and harness.mails() == []


@pytest.mark.parametrize("missing", ["email", "target", "frequency"])
def test_a_missing_required_field_is_422(harness: Harness, missing: str) -> None:
    body = {"email": "ann@example.org", "target": SLUG, "frequency": "daily"}
    del body[missing]
    response = harness.client.post("/api/v1/alerts", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", missing]


def test_an_unknown_field_is_422(harness: Harness) -> None:
    response = harness.api_subscribe("ann@example.org", frequence="daily")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "frequence"]


def test_a_body_over_1_mb_is_413(harness: Harness) -> None:
    body = json.dumps({"email": "ann@example.org", "target": SLUG, "frequency": "daily",
                       "padding": "x" * 1_100_000})
    response = harness.client.post("/api/v1/alerts", content=body,
                                   headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "detail" in response.json()
    assert harness.subscriber("ann@example.org") is None


# --- authentication and ownership -----------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/v1/alerts"), ("GET", "/api/v1/alerts/1"), ("PATCH", "/api/v1/alerts/1"),
     ("DELETE", "/api/v1/alerts/1")],
)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer not-a-token", "Basic YW5uOnNlY3JldA==", "Bearer "],
)
def test_reading_or_changing_alerts_needs_a_valid_token(
    harness: Harness, method: str, path: str, authorization: str | None
) -> None:
    harness.api_subscribe("ann@example.org")
    headers = {"Authorization": authorization} if authorization else {}

    response = harness.client.request(method, path, headers=headers,
                                       json={"status": "paused"} if method == "PATCH" else None)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "detail" in response.json()
    assert harness.statuses("ann@example.org") == ["pending"]


def test_a_wrong_token_on_an_open_endpoint_is_401_not_anonymous(harness: Harness) -> None:
    response = harness.api_subscribe("ann@example.org", token="forged")
    assert response.status_code == 401
    assert harness.subscriber("ann@example.org") is None


def test_admin_api_is_off_without_an_admin_token(harness: Harness, tmp_path: Any) -> None:
    settings = make_settings(tmp_path, harness.settings.database_url)  # no admin token
    app = create_app(settings, engine=harness.engine, session_factory=harness.session_factory,
                     mailer=SmtpMailer(host="127.0.0.1", port=harness.smtp.port))
    with TestClient(app) as client:
        assert client.get("/api/v1/alerts", headers=ADMIN).status_code == 401


def test_a_personal_token_sees_only_its_own_alerts(harness: Harness) -> None:
    harness.verified_subscriber("ann@example.org")
    harness.verified_subscriber("bob@example.org")
    [bobs] = harness.alerts("bob@example.org")
    token = harness.personal_token("ann@example.org")

    listed = harness.client.get("/api/v1/alerts", headers=bearer(token)).json()
    assert [a["email"] for a in listed["data"]] == ["ann@example.org"]
    assert listed["next_cursor"] is None
    filtered = harness.client.get("/api/v1/alerts", params={"email": "bob@example.org"},
                                  headers=bearer(token))
    assert filtered.json()["data"] == []

    for method, body in (("GET", None), ("PATCH", {"status": "paused"}), ("DELETE", None)):
        response = harness.client.request(method, f"/api/v1/alerts/{bobs.id}",
                                          headers=bearer(token), json=body)
        assert response.status_code == 404, method
        assert response.json() == harness.client.get(
            "/api/v1/alerts/999999", headers=bearer(token)).json() | {
            "detail": f"alert {bobs.id} not found"}
    assert harness.statuses("bob@example.org") == ["active"]


def test_admin_sees_everyone_and_filters_by_email(harness: Harness) -> None:
    for email in ("ann@example.org", "bob@example.org"):
        harness.api_subscribe(email, token=ADMIN_TOKEN, confirmed=True)

    everyone = harness.client.get("/api/v1/alerts", headers=ADMIN).json()["data"]
    only_bob = harness.client.get("/api/v1/alerts", params={"email": " Bob@Example.org"},
                                  headers=ADMIN).json()["data"]

    assert [a["email"] for a in everyone] == ["ann@example.org", "bob@example.org"]
    assert [a["email"] for a in only_bob] == ["bob@example.org"]
    ann_id = everyone[0]["id"]
    assert harness.client.get(f"/api/v1/alerts/{ann_id}", headers=ADMIN).status_code == 200


def test_pages_follow_the_cursor_to_the_end(harness: Harness) -> None:
    ids = [
        harness.api_subscribe(f"reader{n}@example.org", token=ADMIN_TOKEN,
                              confirmed=True).json()["id"]
        for n in range(5)
    ]
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = harness.client.get("/api/v1/alerts", params=params, headers=ADMIN).json()
        seen += [a["id"] for a in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert (seen, pages) == (ids, 3)


@pytest.mark.parametrize(
    ("params", "field"),
    [({"cursor": "garbage!"}, "cursor"), ({"cursor": "eyJhZnRlciI6LTF9"}, "cursor"),
     ({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"email": "nope"}, "email")],
)
def test_bad_list_parameters_are_422(harness: Harness, params: dict[str, Any], field: str) -> None:
    response = harness.client.get("/api/v1/alerts", params=params, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", field]


# --- changing and ending --------------------------------------------------------------


def _active_alert_with_token(harness: Harness) -> tuple[int, str]:
    harness.verified_subscriber("ann@example.org")
    [alert] = harness.alerts("ann@example.org")
    return alert.id, harness.personal_token("ann@example.org")


def test_patch_changes_only_the_given_fields(harness: Harness) -> None:
    alert_id, token = _active_alert_with_token(harness)

    response = harness.client.patch(
        f"/api/v1/alerts/{alert_id}", headers=bearer(token),
        json={"frequency": "weekly", "weekday": "sunday", "timezone": "Asia/Tokyo"},
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["frequency"], body["weekday"], body["timezone"]) == (
        "weekly", "sunday", "Asia/Tokyo")
    assert (body["send_hour"], body["max_items"], body["status"]) == (8, 50, "active")


@pytest.mark.parametrize(
    ("field", "value"),
    [("timezone", "Nowhere/Special"), ("send_hour", 25), ("status", "pending"),
     ("max_items", 500), ("weekday", "someday")],
)
def test_patch_refuses_bad_fields_and_keeps_the_alert(
    harness: Harness, field: str, value: Any
) -> None:
    alert_id, token = _active_alert_with_token(harness)
    response = harness.client.patch(f"/api/v1/alerts/{alert_id}", headers=bearer(token),
                                    json={field: value})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]
    assert harness.statuses("ann@example.org") == ["active"]


@pytest.mark.parametrize(
    ("start", "requested", "admin", "code", "end"),
    [
        ("active", "paused", False, 200, "paused"),
        ("paused", "active", False, 200, "active"),
        ("active", "unsubscribed", False, 200, "unsubscribed"),
        ("paused", "unsubscribed", False, 200, "unsubscribed"),
        ("pending", "active", False, 409, "pending"),
        ("pending", "paused", False, 409, "pending"),
        ("pending", "active", True, 200, "active"),
        ("unsubscribed", "active", False, 409, "unsubscribed"),
        ("unsubscribed", "paused", True, 409, "unsubscribed"),
    ],
)
def test_status_moves(
    harness: Harness, start: str, requested: str, admin: bool, code: int, end: str
) -> None:
    # The owner's token exists before the alert under test is created.
    harness.add_target(OTHER_SLUG, "EGFR exon 20")
    harness.verified_subscriber("ann@example.org", OTHER_SLUG)
    token = ADMIN_TOKEN if admin else harness.personal_token("ann@example.org")
    harness.api_subscribe("ann@example.org")  # anonymous: pending
    alert_id = max(a.id for a in harness.alerts("ann@example.org"))
    with harness.db() as session:
        session.get(Alert, alert_id).status = start  # type: ignore[union-attr]

    response = harness.client.patch(f"/api/v1/alerts/{alert_id}", headers=bearer(token),
                                     json={"status": requested})

    assert response.status_code == code, response.json()
    assert [a.status for a in harness.alerts("ann@example.org") if a.id == alert_id] == [end]
    if code == 200 and end == "active":
        assert response.json()["activated_at"] is not None


def test_resuming_starts_the_alert_afresh(harness: Harness) -> None:
    alert_id, token = _active_alert_with_token(harness)
    [before] = harness.alerts("ann@example.org")
    url = f"/api/v1/alerts/{alert_id}"
    harness.client.patch(url, headers=bearer(token), json={"status": "paused"})
    harness.client.patch(url, headers=bearer(token), json={"status": "active"})
    [after] = harness.alerts("ann@example.org")
    assert after.activated_at is not None and before.activated_at is not None
    assert after.activated_at > before.activated_at


@pytest.mark.parametrize("who", ["owner", "admin"])
def test_a_deleted_alert_is_gone_for_its_owner_and_mailed_no_more(
    harness: Harness, who: str
) -> None:
    alert_id, token = _active_alert_with_token(harness)
    harness.add_item("Zongertinib in HER2 exon 20", external_id="1", url="https://x.test/1")
    url = f"/api/v1/alerts/{alert_id}"

    first = harness.client.delete(url, headers=bearer(token if who == "owner" else ADMIN_TOKEN))

    assert (first.status_code, first.content) == (204, b"")
    for headers in (bearer(token), ADMIN):
        assert harness.client.get(url, headers=headers).status_code == 404
        assert harness.client.delete(url, headers=headers).status_code == 404
        assert harness.client.patch(url, headers=headers,
                                    json={"status": "active"}).status_code == 404
        assert harness.client.get("/api/v1/alerts", headers=headers).json()["data"] == []
    assert harness.statuses("ann@example.org") == ["deleted"]  # the record stays
    mails_before = len(harness.mails("ann@example.org"))
    send_due(harness.session_factory, harness.settings,
             SmtpMailer(host="127.0.0.1", port=harness.smtp.port), owner="test",
             now=utc_now() + timedelta(days=2), render_workers=0)
    assert len(harness.mails("ann@example.org")) == mails_before


def test_an_alert_ended_by_unsubscribing_is_still_shown_to_its_owner(harness: Harness) -> None:
    alert_id, token = _active_alert_with_token(harness)
    url = f"/api/v1/alerts/{alert_id}"
    harness.client.patch(url, headers=bearer(token), json={"status": "unsubscribed"})
    assert harness.client.get(url, headers=bearer(token)).json()["status"] == "unsubscribed"


def test_the_api_is_documented(harness: Harness) -> None:
    paths = harness.client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/alerts", "/api/v1/alerts/{alert_id}", "/api/v1/tokens"} <= set(paths)
    assert {"get", "patch", "delete"} <= set(paths["/api/v1/alerts/{alert_id}"])
    assert "/" not in paths and "/subscribe" not in paths  # pages are not API


@pytest.mark.parametrize(
    ("method", "path", "codes"),
    [
        ("post", "/api/v1/alerts", {"201", "202", "400", "401", "409", "413", "422", "429"}),
        ("get", "/api/v1/alerts", {"200", "401", "422"}),
        ("get", "/api/v1/alerts/{alert_id}", {"200", "401", "404", "422"}),
        ("patch", "/api/v1/alerts/{alert_id}",
         {"200", "400", "401", "404", "409", "413", "422"}),
        ("delete", "/api/v1/alerts/{alert_id}", {"204", "401", "404", "422"}),
        ("post", "/api/v1/tokens", {"202", "400", "413", "422", "429"}),
        ("delete", "/api/v1/tokens/current", {"204", "401", "409"}),
        ("delete", "/api/v1/subscriber", {"204", "401", "404", "422"}),
    ],
)
def test_each_route_documents_its_error_answers(
    harness: Harness, method: str, path: str, codes: set[str]
) -> None:
    responses = harness.client.get("/openapi.json").json()["paths"][path][method]["responses"]
    assert set(responses) == codes
    for code in codes - {"200", "201", "202", "204"}:
        schema = responses[code]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorOut"}
    if "429" in codes:
        assert "Retry-After" in responses["429"]["headers"]
