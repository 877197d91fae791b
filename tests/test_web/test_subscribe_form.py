"""The subscribe form and the double opt-in: CSRF, validation, one confirmation mail,
the same answer for every address, activation by the click."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from alerts.digests.delivery.send import send_due
from alerts.mail.smtp import SmtpMailer
from alerts.subscriptions import service
from db.clock import utc_now
from tests.test_subscriptions.harness import (
    SLUG,
    Harness,
    csrf_field,
    html_of,
    link_in,
    relative,
    text_of,
)

FORM = {"email": "ann@example.org", "target": SLUG, "frequency": "weekly",
        "weekday": "friday", "send_hour": "7", "timezone": "Europe/Berlin", "max_items": "25"}


def submit(harness: Harness, **overrides: Any) -> Any:
    """GET the form (for its cookie and token), then POST it."""
    page = harness.client.get("/")
    data = {**FORM, "csrf_token": csrf_field(page.text), **overrides}
    return harness.client.post("/subscribe", data={k: v for k, v in data.items()
                                                   if v is not None})


def test_the_form_lists_the_catalogue_with_a_csrf_token(harness: Harness) -> None:
    harness.add_target("evil", "Evil <b>target</b>", "<script>alert(1)</script> & more")

    page = harness.client.get("/")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "alerts_csrf" in page.cookies
    assert csrf_field(page.text)
    assert 'value="her2-exon20"' in page.text and "HER2 (ERBB2) exon 20" in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page.text
    assert "Evil &lt;b&gt;target&lt;/b&gt;" in page.text
    assert "<script>alert(1)" not in page.text
    for name in ("email", "frequency", "weekday", "send_hour", "timezone"):
        assert f'name="{name}"' in page.text
    assert 'value="UTC"' in page.text and '<script src="/static/timezone.js">' in page.text
    script = harness.client.get("/static/timezone.js")
    assert script.status_code == 200 and "resolvedOptions().timeZone" in script.text


def test_a_submitted_form_mails_one_confirmation_and_nothing_else(harness: Harness) -> None:
    response = submit(harness)

    assert response.status_code == 200
    assert "Check your inbox" in response.text
    mail = harness.only_mail("ann@example.org")
    assert str(mail["Subject"]).startswith("Confirm")
    assert "HER2 (ERBB2) exon 20" in text_of(mail)
    assert link_in(mail, "/confirm?token=").startswith("http://alerts.test/confirm?token=")
    [alert] = harness.alerts("ann@example.org")
    assert (alert.status, alert.frequency, alert.weekday, alert.send_hour, alert.timezone,
            alert.max_items) == ("pending", "weekly", "friday", 7, "Europe/Berlin", 25)


def test_one_mail_confirms_several_targets(harness: Harness) -> None:
    harness.add_target("egfr-exon20", "EGFR exon 20")
    page = harness.client.get("/")
    response = harness.client.post("/subscribe", data={
        **FORM, "target": [SLUG, "egfr-exon20"], "csrf_token": csrf_field(page.text)})

    assert response.status_code == 200
    mail = harness.only_mail("ann@example.org")
    assert "HER2 (ERBB2) exon 20" in text_of(mail) and "EGFR exon 20" in text_of(mail)
    harness.confirm_by_mail("ann@example.org")
    assert harness.statuses("ann@example.org") == ["active", "active"]


@pytest.mark.parametrize(
    "forge",
    ["no field", "wrong field", "another browser's field", "no cookie"],
)
def test_a_post_without_a_valid_csrf_token_is_refused(harness: Harness, forge: str) -> None:
    field = csrf_field(harness.client.get("/").text)
    data = dict(FORM)
    if forge == "wrong field":
        data["csrf_token"] = field[:-4] + "AAAA"
    elif forge == "another browser's field":
        harness.client.cookies.clear()
        data["csrf_token"] = csrf_field(harness.client.get("/").text)
        harness.client.cookies.set("alerts_csrf", "x" * 43, domain="alerts.test")
    elif forge == "no cookie":
        data["csrf_token"] = field
        harness.client.cookies.clear()

    response = harness.client.post("/subscribe", data=data)

    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "Form refused" in response.text
    assert harness.subscriber("ann@example.org") is None
    assert harness.mails() == []


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"email": "ann(at)example.org"}, "email", "not a valid email address"),
        ({"email": ""}, "email", "required"),
        ({"target": None}, "target", "Choose at least one target."),
        ({"target": "no-such-target"}, "target", "Choose targets from the list."),
        ({"timezone": "Mars/Base"}, "timezone", "unknown time zone"),
        ({"send_hour": "25"}, "send_hour", "Choose an hour from 0 to 23."),
        ({"frequency": "hourly"}, "frequency", "Choose daily or weekly."),
        ({"weekday": "funday"}, "weekday", "Choose a day of the week."),
        ({"max_items": "1000"}, "max_items", "Enter a number from 1 to 200."),
    ],
)
def test_invalid_input_redisplays_the_form_with_its_values(
    harness: Harness, overrides: dict[str, Any], field: str, message: str
) -> None:
    response = submit(harness, **{"email": "Ann@Example.org ", **overrides})

    assert response.status_code == 422
    assert message in response.text
    assert f'id="{field}-error"' in response.text
    if field != "email":
        assert 'value="Ann@Example.org"' in response.text  # what was typed is kept
    assert csrf_field(response.text)  # and the form can be sent again
    assert harness.subscriber("ann@example.org") is None
    assert harness.mails() == []


def test_the_answer_is_the_same_for_a_new_and_a_known_address(harness: Harness) -> None:
    harness.verified_subscriber("known@example.org")
    harness.api_subscribe("pending@example.org")

    answers = {
        email: submit(harness, email=email)
        for email in ("new@example.org", "known@example.org", "pending@example.org")
    }

    assert {r.status_code for r in answers.values()} == {200}
    assert len({r.text.replace(email, "ADDRESS") for email, r in answers.items()}) == 1


def test_the_form_never_changes_an_alert_already_running(harness: Harness) -> None:
    harness.verified_subscriber("ann@example.org")  # daily, via the API

    submit(harness, frequency="weekly", send_hour="23")

    [alert] = harness.alerts("ann@example.org")
    assert (alert.status, alert.frequency, alert.send_hour) == ("active", "daily", 8)
    mail = harness.mails("ann@example.org")[-1]
    assert "already receives" in text_of(mail)
    assert link_in(mail, "/manage?token=")
    assert "/confirm?token=" not in text_of(mail)


def test_the_form_updates_a_pending_alert_and_sends_a_new_link(harness: Harness) -> None:
    submit(harness, frequency="daily")
    submit(harness, frequency="weekly", weekday="sunday")

    [alert] = harness.alerts("ann@example.org")
    assert (alert.status, alert.frequency, alert.weekday) == ("pending", "weekly", "sunday")
    assert len(harness.mails("ann@example.org")) == 2


def test_confirmation_mails_are_limited_per_address_and_hour(harness: Harness) -> None:
    answers = [submit(harness) for _ in range(service.CONFIRMATIONS_PER_HOUR + 2)]

    assert {r.status_code for r in answers} == {200}
    assert len(harness.mails("ann@example.org")) == service.CONFIRMATIONS_PER_HOUR


def test_the_click_activates_and_shows_the_latest_items_once(harness: Harness) -> None:
    for n in range(7):
        harness.add_item(f"Zongertinib study {n}", external_id=str(1000 + n),
                         url=f"https://pubmed.ncbi.nlm.nih.gov/{1000 + n}/")
    harness.add_item("<script>alert('x')</script> HER2 exon 20", external_id="2000",
                     url="javascript:alert(1)", source="rss")
    submit(harness)
    link = relative(link_in(harness.only_mail("ann@example.org"), "/confirm?token="))

    first = harness.confirm(link)

    assert first.status_code == 200
    assert "Your alerts are active" in first.text
    assert first.text.count('<li><a href="https://pubmed.ncbi.nlm.nih.gov/') == 4
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; HER2 exon 20" in first.text
    assert "javascript:" not in first.text  # a bad upstream link is shown as text only
    assert "/manage?token=" in first.text
    assert first.headers["referrer-policy"] == "no-referrer"
    [alert] = harness.alerts("ann@example.org")
    assert alert.status == "active" and alert.activated_at is not None

    second = harness.confirm(link)

    assert second.status_code == 200 and "already used" in second.text
    assert harness.alerts("ann@example.org")[0].activated_at == alert.activated_at
    assert len(harness.mails()) == 1  # confirming sends nothing


def test_no_digest_reaches_an_address_before_its_click(harness: Harness) -> None:
    submit(harness, frequency="daily", send_when_empty="on", timezone="UTC")
    harness.add_item("Zongertinib in HER2 exon 20", external_id="1", url="https://x.test/1")
    mailer = SmtpMailer(host="127.0.0.1", port=harness.smtp.port)

    def digests_by(days: int) -> list[str]:
        send_due(harness.session_factory, harness.settings, mailer, owner="test",
                 now=utc_now() + timedelta(days=days), render_workers=0)
        return [str(m["Subject"]) for m in harness.mails("ann@example.org")
                if not str(m["Subject"]).startswith("Confirm")]

    assert digests_by(2) == []  # pending: nothing but the confirmation
    harness.confirm_by_mail("ann@example.org")
    assert len(digests_by(4)) == 1  # the same schedule sends once the alert is active


def test_catalogue_text_is_escaped_in_the_confirmation_mail(harness: Harness) -> None:
    harness.add_target("evil", "Evil <script>alert(1)</script> & co")

    submit(harness, target="evil")

    mail = harness.only_mail("ann@example.org")
    assert "Evil &lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html_of(mail)
    assert "<script>" not in html_of(mail)
    assert "Evil <script>alert(1)</script> & co" in text_of(mail)  # plain text stays plain
