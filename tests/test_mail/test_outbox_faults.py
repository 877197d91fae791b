"""The transactional-mail outbox when one mail cannot go, or none can: an address the
relay cannot carry and an unexpected error each fail their own mail (reason recorded)
while the mails behind them still leave; a relay refusing everything stops the batch
and marks nobody bounced; nothing is lost or sent twice once the relay is back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from alerts.mail import outbox
from alerts.mail.message import build_message
from alerts.mail.outbox import flush_outbox, queue_mail
from alerts.mail.smtp import SmtpMailer
from db.clock import utc_now
from db.models import Subscriber
from db.session import transaction
from tests.fakes.smtp import RaisingMailer, SmtpServer
from tests.test_subscriptions.harness import Harness, harness

__all__ = ["harness"]

UTF8_LOCAL = "用户@例子.广告"
IDN_DOMAIN = "user@exämple.com"


def _queue(factory: sessionmaker[Session], *recipients: str) -> None:
    """A subscriber and a pending confirmation mail for each address."""
    with transaction(factory) as session:
        for recipient in recipients:
            session.add(Subscriber(email=recipient))
            queue_mail(session, "confirm", build_message(
                mail_from="Target Alerts <alerts@alerts.test>", to=recipient,
                subject="Confirm your alert", text="text", html="<p>html</p>"))


def _mailer(port: int) -> SmtpMailer:
    return SmtpMailer(host="127.0.0.1", port=port, timeout=5)


def _rows(harness: Harness) -> dict[str, tuple[str, int, str | None]]:
    return {r.recipient: (r.status, r.attempts, r.last_error) for r in harness.outbound()}


def _mail_status(harness: Harness, email: str) -> str:
    subscriber = harness.subscriber(email)
    assert subscriber is not None
    return subscriber.mail_status


@pytest.mark.parametrize("smtputf8", [False, True], ids=["relay without SMTPUTF8",
                                                         "relay with SMTPUTF8"])
def test_international_addresses_never_hold_up_the_mails_behind_them(
    harness: Harness, smtputf8: bool
) -> None:
    _queue(harness.session_factory, UTF8_LOCAL, IDN_DOMAIN, "after@example.org")
    with SmtpServer(smtputf8=smtputf8) as relay:
        sent = flush_outbox(harness.session_factory, _mailer(relay.port), owner="s")
        delivered = sorted(r for received in relay.handler.received for r in received.recipients)

    rows = _rows(harness)
    if smtputf8:
        assert sent == 3
        assert delivered == sorted(["after@example.org", IDN_DOMAIN, UTF8_LOCAL])
        assert {status for status, _n, _e in rows.values()} == {"sent"}
    else:
        assert sent == 2
        assert delivered == ["after@example.org", "user@xn--exmple-cua.com"]
        status, attempts, error = rows[UTF8_LOCAL]
        assert (status, attempts) == ("failed", 1)
        assert error is not None and "SMTPUTF8" in error
        # The relay's limit, not the address's fault.
        assert _mail_status(harness, UTF8_LOCAL) == "ok"
        assert "alerts_outbound_mails_failed 1.0" in harness.client.get("/metrics").text
    # Nothing is left to send, or sent again.
    later = utc_now() + timedelta(days=1)
    assert flush_outbox(harness.session_factory, _mailer(harness.smtp.port), owner="s",
                        now=later) == 0


def test_an_unexpected_error_fails_that_mail_and_the_batch_goes_on(harness: Harness) -> None:
    _queue(harness.session_factory, "first@example.org", "broken@example.org",
           "last@example.org")
    mailer = RaisingMailer(_mailer(harness.smtp.port), "broken@example.org")

    assert flush_outbox(harness.session_factory, mailer, owner="s") == 2

    assert sorted(str(m["To"]) for m in harness.mails()) == ["first@example.org",
                                                             "last@example.org"]
    status, _attempts, error = _rows(harness)["broken@example.org"]
    assert status == "failed"
    assert error is not None and error.startswith("unexpected error: UnicodeEncodeError")
    assert _mail_status(harness, "broken@example.org") == "ok"


@pytest.mark.parametrize("queued", [5, 2], ids=["stopped mid-batch", "judged at the end"])
def test_a_relay_refusing_everything_stops_the_batch_and_bounces_nobody(
    harness: Harness, queued: int
) -> None:
    recipients = [f"reader{n}@example.org" for n in range(queued)]
    _queue(harness.session_factory, *recipients)
    harness.smtp.handler.refuse_every_rcpt = "550 5.7.1 relaying denied"

    assert flush_outbox(harness.session_factory, _mailer(harness.smtp.port), owner="s") == 0

    rows = _rows(harness)
    tried = min(queued, outbox.STOP_AFTER_CONSECUTIVE_FAILURES)
    assert [rows[r][:2] for r in recipients] == (
        [("pending", 1)] * tried + [("pending", 0)] * (len(recipients) - tried)
    )
    assert all("550" in (rows[r][2] or "") and "not counted against the address"
               in (rows[r][2] or "") for r in recipients[:tried])
    assert {_mail_status(harness, r) for r in recipients} == {"ok"}

    harness.smtp.handler.refuse_every_rcpt = None
    later = utc_now() + timedelta(hours=2)
    assert flush_outbox(harness.session_factory, _mailer(harness.smtp.port), owner="s",
                        now=later) == len(recipients)
    assert sorted(str(m["To"]) for m in harness.mails()) == recipients


def test_one_refused_address_among_accepted_ones_is_still_a_bounce(harness: Harness) -> None:
    recipients = ["gone1@example.org", "gone2@example.org", "fine@example.org"]
    _queue(harness.session_factory, *recipients)
    for gone in recipients[:2]:
        harness.smtp.handler.refuse_rcpt[gone] = "550 5.1.1 no such user"

    assert flush_outbox(harness.session_factory, _mailer(harness.smtp.port), owner="s") == 1

    rows = _rows(harness)
    assert [rows[r][0] for r in recipients] == ["failed", "failed", "sent"]
    assert [_mail_status(harness, r) for r in recipients] == ["bounced", "bounced", "ok"]
