"""Internationalised addresses (RFC 6530): sent with SMTPUTF8 where the relay offers it,
with the domain in IDNA where it does not, and refused (that message alone, with a
reason) when the local part is not ASCII and the relay cannot carry it. The headers are
valid either way: an address in UTF-8 (RFC 6532) or in ASCII, never encoded words."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_string, policy

import pytest

from alerts.mail.base import POLICY, AddressNotSupported
from alerts.mail.message import build_message
from alerts.mail.smtp import SmtpMailer
from tests.fakes.smtp import PipeliningSmtpServer, SmtpServer

IDN_DOMAIN = "user@exämple.com"
IDN_DOMAIN_ASCII = "user@xn--exmple-cua.com"
UTF8_LOCAL = "用户@例子.广告"
SENDER = "Target Alerts <alerts@alerts.test>"


def _message(to: str, mail_from: str = SENDER):  # type: ignore[no-untyped-def]
    return build_message(mail_from=mail_from, to=to, subject="Confirm your alert – HER2",
                         text="Plain text", html="<p>Rich</p>")


def _header_lines(data: bytes) -> dict[str, bytes]:
    head = data.split(b"\r\n\r\n", 1)[0]
    return {line.split(b":", 1)[0].decode(): line for line in head.split(b"\r\n")}


@pytest.mark.parametrize("address", [IDN_DOMAIN, UTF8_LOCAL])
def test_an_international_address_is_written_in_utf8_not_as_encoded_words(
    address: str,
) -> None:
    data = _message(address).as_bytes(policy=POLICY)
    lines = _header_lines(data)
    assert lines["To"] == f"To: {address}".encode()
    # Every other header stays ASCII (encoded words where needed).
    assert all(line.isascii() for name, line in lines.items() if name != "To")
    assert b"=?utf-8?" in lines["Subject"]
    parsed = message_from_string(data.decode("utf-8"), policy=policy.default)
    [parsed_address] = parsed["To"].addresses
    assert parsed_address.addr_spec == address


@pytest.fixture(params=["aiosmtpd", "pipelining"])
def relay_without_smtputf8(request: pytest.FixtureRequest) -> Iterator[SmtpServer]:
    server = SmtpServer() if request.param == "aiosmtpd" else PipeliningSmtpServer()
    with server:
        yield server  # type: ignore[misc]


def _mailer(port: int) -> SmtpMailer:
    return SmtpMailer(host="127.0.0.1", port=port, timeout=5)


def test_with_smtputf8_on_offer_both_kinds_go_as_they_are() -> None:
    with SmtpServer(smtputf8=True) as relay:
        with _mailer(relay.port).connect() as connection:
            for address in (IDN_DOMAIN, UTF8_LOCAL, "plain@example.org"):
                connection.send(_message(address))
        received = relay.handler.received
    assert [r.recipients for r in received] == [[IDN_DOMAIN], [UTF8_LOCAL],
                                                ["plain@example.org"]]
    assert [r.smtputf8 for r in received] == [True, True, False]
    assert [str(r.message["To"]) for r in received] == [IDN_DOMAIN, UTF8_LOCAL,
                                                        "plain@example.org"]


def test_without_smtputf8_an_idn_domain_goes_in_idna(relay_without_smtputf8: SmtpServer) -> None:
    with _mailer(relay_without_smtputf8.port).connect() as connection:
        connection.send(_message(IDN_DOMAIN))
    [received] = relay_without_smtputf8.handler.received
    assert received.recipients == [IDN_DOMAIN_ASCII]
    assert received.data.isascii()
    assert _header_lines(received.data)["To"] == f"To: {IDN_DOMAIN_ASCII}".encode()


def test_without_smtputf8_a_utf8_local_part_fails_that_message_alone(
    relay_without_smtputf8: SmtpServer,
) -> None:
    with _mailer(relay_without_smtputf8.port).connect() as connection:
        with pytest.raises(AddressNotSupported, match="SMTPUTF8") as raised:
            connection.send(_message(UTF8_LOCAL))
        connection.send(_message("next@example.org"))  # the connection is still usable
    assert raised.value.recipient == UTF8_LOCAL
    assert [r.recipients for r in relay_without_smtputf8.handler.received] == [
        ["next@example.org"]
    ]


def test_without_smtputf8_an_idn_sender_goes_in_idna(relay_without_smtputf8: SmtpServer) -> None:
    message = _message("reader@example.org", mail_from="Target Alerts <alerts@exämple.com>")
    with _mailer(relay_without_smtputf8.port).connect() as connection:
        connection.send(message)
    [received] = relay_without_smtputf8.handler.received
    assert received.sender == "alerts@xn--exmple-cua.com"
    assert _header_lines(received.data)["From"] == (
        b"From: Target Alerts <alerts@xn--exmple-cua.com>"
    )


def test_an_unexpected_error_mid_message_leaves_a_fresh_connection_for_the_next(
    smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error no SMTP reply explains (here raised by smtplib in the middle of the
    transaction) reaches the caller as it is; the next message starts afresh instead
    of on a connection in the middle of someone else's transaction."""
    import smtplib

    original = smtplib.SMTP.data
    calls = []

    def failing_once(self: smtplib.SMTP, msg: bytes) -> tuple[int, bytes]:
        calls.append(msg)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return original(self, msg)

    monkeypatch.setattr(smtplib.SMTP, "data", failing_once)
    with _mailer(smtp_server.port).connect() as connection:
        with pytest.raises(RuntimeError, match="boom"):
            connection.send(_message("first@example.org"))
        connection.send(_message("second@example.org"))
    assert [r.recipients for r in smtp_server.handler.received] == [["second@example.org"]]
