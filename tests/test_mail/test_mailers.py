"""The mail layer against a real SMTP server (aiosmtpd) and the local mailbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.mail.base import PermanentMailError, TemporaryMailError
from alerts.mail.mailbox import MailboxMailer
from alerts.mail.message import build_message
from alerts.mail.smtp import SmtpMailer
from tests.fakes.smtp import SmtpServer

LONG_UNSUBSCRIBE = "<http://alerts.test/unsubscribe?token=" + "x" * 180 + ">"


def _message(to: str = "reader@example.org"):
    return build_message(
        mail_from="Target Alerts <alerts@alerts.test>",
        to=to,
        subject="HER2 exon 20: 1 publication",
        text="Plain & simple <b>",
        html="<p>Rich &amp; simple</p>",
        headers={"List-Unsubscribe": LONG_UNSUBSCRIBE},
    )


def test_smtp_reuses_one_connection_for_a_batch(smtp_server: SmtpServer) -> None:
    mailer = SmtpMailer(host="127.0.0.1", port=smtp_server.port)
    with mailer.connect() as connection:
        for n in range(3):
            connection.send(_message(f"reader{n}@example.org"))
    received = smtp_server.handler.messages()
    assert [str(m["To"]) for m in received] == [f"reader{n}@example.org" for n in range(3)]
    first = received[0]
    assert first.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in first.iter_parts()]
    assert parts == ["text/plain", "text/html"]  # plainest first, richest last


def test_list_unsubscribe_stays_on_one_line(smtp_server: SmtpServer) -> None:
    with SmtpMailer(host="127.0.0.1", port=smtp_server.port).connect() as connection:
        connection.send(_message())
    raw = smtp_server.handler.received[0].data.decode()
    header_line = next(line for line in raw.splitlines() if line.startswith("List-Unsubscribe:"))
    assert header_line == f"List-Unsubscribe: {LONG_UNSUBSCRIBE}"


@pytest.mark.parametrize(
    ("reply", "error"),
    [("550 5.1.1 no such user", PermanentMailError), ("451 4.2.0 try later", TemporaryMailError)],
)
def test_refused_recipient_is_typed(smtp_server: SmtpServer, reply: str, error: type) -> None:
    smtp_server.handler.refuse_rcpt["gone@example.org"] = reply
    with SmtpMailer(host="127.0.0.1", port=smtp_server.port).connect() as connection:
        with pytest.raises(error):
            connection.send(_message("gone@example.org"))
        connection.send(_message("fine@example.org"))  # the connection is still usable
    assert [str(m["To"]) for m in smtp_server.handler.messages()] == ["fine@example.org"]


def test_dropped_connection_is_temporary_and_reopened(smtp_server: SmtpServer) -> None:
    smtp_server.handler.drop_data = 1
    with SmtpMailer(host="127.0.0.1", port=smtp_server.port).connect() as connection:
        with pytest.raises(TemporaryMailError):
            connection.send(_message("first@example.org"))
        connection.send(_message("second@example.org"))
    assert [str(m["To"]) for m in smtp_server.handler.messages()] == ["second@example.org"]


def test_unreachable_server_is_temporary() -> None:
    from tests.fakes.smtp import free_port

    mailer = SmtpMailer(host="127.0.0.1", port=free_port(), timeout=2)
    with mailer.connect() as connection, pytest.raises(TemporaryMailError, match="cannot reach"):
        connection.send(_message())


def test_mailbox_writes_whole_eml_files(tmp_path: Path) -> None:
    mailer = MailboxMailer(tmp_path / "mailbox")
    with mailer.connect() as connection:
        connection.send(_message())
    [path] = mailer.messages()
    assert path.suffix == ".eml"
    assert b"Subject: HER2 exon 20: 1 publication" in path.read_bytes()
    assert not list((tmp_path / "mailbox").glob(".*.tmp"))
