"""SMTP PIPELINING (RFC 2920): when the server offers it, the envelope and DATA go out
in one write; every refusal is still typed as on the step-by-step path, and the
connection stays in step with the server afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alerts.mail.base import PermanentMailError, TemporaryMailError
from alerts.mail.smtp import SmtpMailer
from tests.fakes.smtp import PipeliningSmtpServer, SmtpServer

SENDER = "alerts@alerts.test"


def _raw(to: str, body: str = "Three new publications.") -> bytes:
    return (
        f"From: Target Alerts <{SENDER}>\r\nTo: {to}\r\nSubject: HER2 exon 20\r\n"
        f"Message-ID: <{to}@alerts.test>\r\n\r\n{body}\r\n"
    ).encode()


@pytest.fixture
def server() -> Iterator[PipeliningSmtpServer]:
    with PipeliningSmtpServer() as smtp:
        yield smtp


def _mailer(port: int) -> SmtpMailer:
    return SmtpMailer(host="127.0.0.1", port=port, timeout=5)


def _delivered_to(server: PipeliningSmtpServer | SmtpServer) -> list[str]:
    return [address for r in server.handler.received for address in r.recipients]


def test_a_pipelined_batch_delivers_every_message_once(server: PipeliningSmtpServer) -> None:
    addresses = [f"reader{n}@example.org" for n in range(20)]
    with _mailer(server.port).connect() as connection:
        for address in addresses:
            connection.send_raw(SENDER, [address], _raw(address))
    assert _delivered_to(server) == addresses
    assert [r.data for r in server.handler.received] == [_raw(a) for a in addresses]
    assert server.pipelined == len(addresses)  # MAIL, RCPT and DATA came in one write


def test_lines_starting_with_a_dot_arrive_intact(server: PipeliningSmtpServer) -> None:
    body = ".hidden line\r\n..two dots\r\n.\r\nlast"
    with _mailer(server.port).connect() as connection:
        connection.send_raw(SENDER, ["reader@example.org"], _raw("reader@example.org", body))
    [received] = server.handler.received
    assert received.data == _raw("reader@example.org", body)


@pytest.mark.parametrize("lenient_data", [False, True], ids=["554-to-DATA", "354-to-DATA"])
@pytest.mark.parametrize(
    ("reply", "error"),
    [("550 5.1.1 no such user", PermanentMailError), ("451 4.2.0 try later", TemporaryMailError)],
)
def test_refused_recipient_is_typed_and_the_connection_stays_usable(
    server: PipeliningSmtpServer, reply: str, error: type[Exception], lenient_data: bool
) -> None:
    server.handler.refuse_rcpt["gone@example.org"] = reply
    server.lenient_data = lenient_data  # then the client ends the empty message itself
    with _mailer(server.port).connect() as connection:
        connection.send_raw(SENDER, ["before@example.org"], _raw("before@example.org"))
        with pytest.raises(error) as raised:
            connection.send_raw(SENDER, ["gone@example.org"], _raw("gone@example.org"))
        connection.send_raw(SENDER, ["after@example.org"], _raw("after@example.org"))
    if isinstance(raised.value, PermanentMailError):
        assert raised.value.recipient == "gone@example.org"
    assert _delivered_to(server) == ["before@example.org", "after@example.org"]
    assert server.connections == 1


@pytest.mark.parametrize(
    ("reply", "error"),
    [("553 5.7.1 sender not allowed", PermanentMailError),
     ("452 4.3.1 out of memory", TemporaryMailError)],
)
def test_refused_sender_is_typed_and_the_connection_stays_usable(
    server: PipeliningSmtpServer, reply: str, error: type[Exception]
) -> None:
    server.refuse_mail.append(reply)
    with _mailer(server.port).connect() as connection:
        with pytest.raises(error, match=reply.split()[0]):
            connection.send_raw(SENDER, ["first@example.org"], _raw("first@example.org"))
        connection.send_raw(SENDER, ["second@example.org"], _raw("second@example.org"))
    assert _delivered_to(server) == ["second@example.org"]
    assert server.connections == 1


def test_a_partly_refused_message_reaches_the_others_and_names_the_refused(
    server: PipeliningSmtpServer,
) -> None:
    server.handler.refuse_rcpt["gone@example.org"] = "550 5.1.1 no such user"
    to = ["kept@example.org", "gone@example.org"]
    with _mailer(server.port).connect() as connection, pytest.raises(
        PermanentMailError
    ) as raised:
        connection.send_raw(SENDER, to, _raw("kept@example.org"))
    assert raised.value.recipient == "gone@example.org"
    assert _delivered_to(server) == ["kept@example.org"]


@pytest.mark.parametrize("stage", ["DATA command", "end of data"])
@pytest.mark.parametrize(
    ("reply", "error"),
    [("451 4.3.0 busy", TemporaryMailError), ("554 5.6.0 rejected", PermanentMailError)],
)
def test_refused_data_is_typed_and_the_next_message_goes_out(
    server: PipeliningSmtpServer, stage: str, reply: str, error: type[Exception]
) -> None:
    if stage == "DATA command":
        server.refuse_data.append(reply)
    else:
        server.handler.fail_data.append(reply)
    with _mailer(server.port).connect() as connection:
        with pytest.raises(error, match=reply.split()[0]):
            connection.send_raw(SENDER, ["first@example.org"], _raw("first@example.org"))
        connection.send_raw(SENDER, ["second@example.org"], _raw("second@example.org"))
    assert _delivered_to(server) == ["second@example.org"]
    assert server.connections == 1


def test_dropped_connection_is_temporary_and_the_next_send_reopens(
    server: PipeliningSmtpServer,
) -> None:
    server.handler.drop_data = 1
    with _mailer(server.port).connect() as connection:
        with pytest.raises(TemporaryMailError, match="connection lost"):
            connection.send_raw(SENDER, ["first@example.org"], _raw("first@example.org"))
        connection.send_raw(SENDER, ["second@example.org"], _raw("second@example.org"))
    assert _delivered_to(server) == ["second@example.org"]
    assert (server.connections, server.pipelined) == (2, 2)  # reopened, pipelining again


def test_421_closes_and_the_next_send_reopens(server: PipeliningSmtpServer) -> None:
    server.refuse_data.append("421 4.3.2 shutting down")
    with _mailer(server.port).connect() as connection:
        with pytest.raises(TemporaryMailError, match="421"):
            connection.send_raw(SENDER, ["first@example.org"], _raw("first@example.org"))
        connection.send_raw(SENDER, ["second@example.org"], _raw("second@example.org"))
    assert _delivered_to(server) == ["second@example.org"]


def test_without_pipelining_on_offer_commands_go_one_by_one() -> None:
    with PipeliningSmtpServer(advertise=False) as server:
        with _mailer(server.port).connect() as connection:
            for n in range(3):
                connection.send_raw(SENDER, [f"r{n}@example.org"], _raw(f"r{n}@example.org"))
        assert _delivered_to(server) == [f"r{n}@example.org" for n in range(3)]
        assert server.pipelined == 0


@pytest.mark.parametrize("refused", [False, True])
def test_aiosmtpd_without_pipelining_still_works(smtp_server: SmtpServer, refused: bool) -> None:
    if refused:
        smtp_server.handler.refuse_rcpt["gone@example.org"] = "550 5.1.1 no such user"
    with _mailer(smtp_server.port).connect() as connection:
        if refused:
            with pytest.raises(PermanentMailError):
                connection.send_raw(SENDER, ["gone@example.org"], _raw("gone@example.org"))
        connection.send_raw(SENDER, ["reader@example.org"], _raw("reader@example.org"))
    assert _delivered_to(smtp_server) == ["reader@example.org"]
