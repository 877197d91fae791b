"""Transactional mail is written with the request and sent right after its commit; what
the relay refuses for now is delivered exactly once later by `flush_outbox`, what it
refuses for good is recorded on the subscriber."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.mail import outbox
from alerts.mail.message import build_message
from alerts.mail.outbox import deliver, deliver_after_commit, flush_outbox, queue_mail
from alerts.mail.smtp import SmtpMailer
from db.clock import utc_now
from db.models import OutboundMail
from db.session import transaction
from tests.fakes.smtp import SmtpServer, free_port
from tests.test_subscriptions.harness import Harness, harness

__all__ = ["harness"]


def _message(to: str, subject: str = "Confirm your alert"):  # type: ignore[no-untyped-def]
    return build_message(mail_from="Target Alerts <alerts@alerts.test>", to=to,
                         subject=subject, text="text", html="<p>html</p>")


def _mailer(smtp: SmtpServer) -> SmtpMailer:
    return SmtpMailer(host="127.0.0.1", port=smtp.port, timeout=5)


def _queue(factory: sessionmaker[Session], *recipients: str) -> list[int]:
    with transaction(factory) as session:
        return [queue_mail(session, "confirm", _message(r)).id for r in recipients]


def test_a_temporary_refusal_is_delivered_exactly_once_later(harness: Harness) -> None:
    harness.smtp.handler.fail_data.append("451 4.3.0 try again later")

    assert harness.api_subscribe("ann@example.org").status_code == 202

    [row] = harness.outbound()
    assert (row.status, row.attempts, harness.mails()) == ("pending", 1, [])
    assert row.last_error is not None and "451" in row.last_error
    mailer = _mailer(harness.smtp)
    now = utc_now()
    # Too early: the retry waits for its backoff.
    assert flush_outbox(harness.session_factory, mailer, owner="scheduler-1", now=now) == 0
    later = now + timedelta(minutes=5)
    assert flush_outbox(harness.session_factory, mailer, owner="scheduler-1", now=later) == 1
    assert flush_outbox(harness.session_factory, mailer, owner="scheduler-2",
                        now=later + timedelta(hours=1)) == 0

    [mail] = harness.mails("ann@example.org")
    assert str(mail["Subject"]).startswith("Confirm")
    [row] = harness.outbound()
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)
    assert row.sent_at is not None and row.lease_owner is None


def test_a_permanent_refusal_fails_the_mail_and_marks_the_address_bounced(
    harness: Harness,
) -> None:
    harness.smtp.handler.refuse_rcpt["gone@example.org"] = "550 5.1.1 no such user"

    assert harness.api_subscribe("gone@example.org").status_code == 202

    [row] = harness.outbound()
    assert row.status == "failed" and "550" in (row.last_error or "")
    subscriber = harness.subscriber("gone@example.org")
    assert subscriber is not None
    assert subscriber.mail_status == "bounced" and "550" in (subscriber.mail_error or "")
    assert subscriber.mail_error_at is not None
    later = utc_now() + timedelta(days=1)
    assert flush_outbox(harness.session_factory, _mailer(harness.smtp), owner="s",
                        now=later) == 0
    assert harness.mails() == []


def test_a_temporary_failure_is_given_up_after_the_last_attempt(harness: Harness) -> None:
    [mail_id] = _queue(harness.session_factory, "ann@example.org")
    with transaction(harness.session_factory) as session:
        session.get(OutboundMail, mail_id).attempts = outbox.MAX_ATTEMPTS - 1  # type: ignore[union-attr]
    harness.smtp.handler.fail_data.append("451 4.3.0 still busy")

    assert flush_outbox(harness.session_factory, _mailer(harness.smtp), owner="s") == 0

    [row] = harness.outbound()
    assert (row.status, row.attempts) == ("failed", outbox.MAX_ATTEMPTS)


def test_a_relay_that_is_down_stops_the_batch_and_loses_nothing(harness: Harness) -> None:
    recipients = [f"reader{n}@example.org" for n in range(5)]
    _queue(harness.session_factory, *recipients)
    down = SmtpMailer(host="127.0.0.1", port=free_port(), timeout=2)

    assert flush_outbox(harness.session_factory, down, owner="s") == 0

    rows = harness.outbound()
    tried = outbox.STOP_AFTER_CONSECUTIVE_FAILURES
    assert [r.attempts for r in rows] == [1] * tried + [0] * (len(rows) - tried)
    assert all(r.status == "pending" and r.lease_owner is None for r in rows)
    later = utc_now() + timedelta(hours=2)
    assert flush_outbox(harness.session_factory, _mailer(harness.smtp), owner="s",
                        now=later) == 5
    assert sorted(str(m["To"]) for m in harness.mails()) == recipients


def test_a_mail_leased_by_another_process_is_left_to_it(harness: Harness) -> None:
    [mail_id] = _queue(harness.session_factory, "ann@example.org")
    now = utc_now()
    with transaction(harness.session_factory) as session:
        row = session.get(OutboundMail, mail_id)
        assert row is not None
        row.lease_owner, row.lease_expires_at = "other", now + timedelta(minutes=5)

    assert flush_outbox(harness.session_factory, _mailer(harness.smtp), owner="me",
                        now=now) == 0
    # The other process died: once its lease runs out the mail is taken over.
    assert flush_outbox(harness.session_factory, _mailer(harness.smtp), owner="me",
                        now=now + timedelta(minutes=6)) == 1
    assert len(harness.mails()) == 1


@pytest.mark.parametrize(("commit", "sent"), [(True, 1), (False, 0)])
def test_queued_mail_leaves_only_when_the_transaction_commits(
    harness: Harness, commit: bool, sent: int
) -> None:
    session = harness.session_factory()
    deliver_after_commit(session, harness.session_factory, lambda: _mailer(harness.smtp),
                         owner="api")
    queue_mail(session, "confirm", _message("ann@example.org"))
    assert harness.mails() == []  # nothing leaves before the commit
    if commit:
        session.commit()
    else:
        session.rollback()
    session.close()

    assert len(harness.mails()) == sent
    statuses = [r.status for r in harness.outbound()]
    assert statuses == (["sent"] if commit else [])


def test_concurrent_flushers_send_each_mail_once(
    isolated: tuple[Engine, sessionmaker[Session]], smtp_server: SmtpServer, tmp_path: Path
) -> None:
    _engine, factory = isolated
    recipients = [f"reader{n}@example.org" for n in range(24)]
    _queue(factory, *recipients)
    counts: list[int] = []
    start = threading.Barrier(4)

    def flusher(owner: str) -> None:
        start.wait()
        counts.append(flush_outbox(factory, _mailer(smtp_server), owner=owner, limit=24))

    threads = [threading.Thread(target=flusher, args=(f"scheduler-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(counts) == len(recipients)
    assert sorted(str(m["To"]) for m in smtp_server.handler.messages()) == sorted(recipients)
    with transaction(factory) as session:
        assert set(session.scalars(select(OutboundMail.status))) == {"sent"}


def test_deliver_skips_mails_already_sent(harness: Harness) -> None:
    [mail_id] = _queue(harness.session_factory, "ann@example.org")
    mailer = _mailer(harness.smtp)
    assert deliver(harness.session_factory, mailer, [mail_id], owner="api") == 1
    assert deliver(harness.session_factory, mailer, [mail_id], owner="api") == 0
    assert len(harness.mails()) == 1
