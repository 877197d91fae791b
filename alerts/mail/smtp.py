"""SMTP delivery over one reused connection per batch, with STARTTLS and login when
configured. A dropped connection is reopened for the next message.

When the server offers PIPELINING (RFC 2920), MAIL FROM, RCPT TO and DATA go out in one
write and their replies are read together, then the body: two round trips per message
instead of four, which is most of what sending costs on a fast link. Each message still
waits for its own acceptance before `send_raw` returns (nothing of the next message is
sent before), so a caller recording acceptances one by one keeps that guarantee. Without
PIPELINING (or for addresses that need SMTPUTF8) smtplib's step-by-step path is used.

Internationalised addresses: with a relay that offers SMTPUTF8 (RFC 6531) the message
goes as it is, envelope and headers in UTF-8. Otherwise an address whose local part is
ASCII goes with its domain in IDNA (`user@xn--exmple-cua.com`, in the envelope and in
the headers alike), and one whose local part is not raises `AddressNotSupported`.
Whatever else goes wrong while sending (an error no SMTP reply explains) closes the
connection, since its state is unknown, and is raised for the caller to record
against that one message.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses

from email_validator import EmailNotValidError, validate_email

from alerts.mail.base import (
    POLICY,
    AddressNotSupported,
    MailError,
    PermanentMailError,
    TemporaryMailError,
    envelope_sender,
)

#: Called with the seconds each accepted message took (for metrics).
LatencyObserver = Callable[[float], None]


@dataclass
class SmtpMailer:
    host: str
    port: int = 25
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 30.0
    observe_latency: LatencyObserver | None = None

    @contextmanager
    def connect(self) -> Iterator[SmtpConnection]:
        connection = SmtpConnection(self)
        try:
            yield connection
        finally:
            connection.close()


class SmtpConnection:
    def __init__(self, mailer: SmtpMailer) -> None:
        self._mailer = mailer
        self._smtp: smtplib.SMTP | None = None
        self._pipelining = False
        self._size = False
        self._smtputf8 = False
        self._8bitmime = False

    def _open(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        m = self._mailer
        try:
            smtp = smtplib.SMTP(m.host, m.port, timeout=m.timeout)
            if m.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if m.username:
                smtp.login(m.username, m.password or "")
            smtp.ehlo_or_helo_if_needed()
        except smtplib.SMTPAuthenticationError as exc:
            # Not about any recipient: every message would meet the same refusal.
            raise PermanentMailError(f"SMTP login refused: {exc.smtp_code}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporaryMailError(f"cannot reach SMTP server {m.host}:{m.port}: {exc}") from None
        self._smtp = smtp
        self._pipelining = smtp.has_extn("pipelining")
        self._size = smtp.has_extn("size")
        self._smtputf8 = smtp.has_extn("smtputf8")
        self._8bitmime = smtp.has_extn("8bitmime")
        return smtp

    def send(self, message: EmailMessage) -> None:
        recipients = [address for _name, address in _addresses(message)]
        sender = envelope_sender(str(message["From"]))
        self.send_raw(sender, recipients, message.as_bytes(policy=POLICY))

    def send_raw(self, sender: str, recipients: list[str], data: bytes) -> None:
        smtp = self._open()
        started = time.perf_counter()
        try:
            options: list[str] = []
            if not _is_ascii(sender, recipients):
                if self._smtputf8:
                    options = ["SMTPUTF8", "BODY=8BITMIME"] if self._8bitmime else ["SMTPUTF8"]
                else:
                    sender, recipients, data = _in_ascii(sender, recipients, data)
            if self._pipelining and not options:
                self._send_pipelined(smtp, sender, recipients, data)
            else:
                self._send_stepwise(smtp, sender, recipients, data, options)
        except MailError:
            raise
        except Exception:
            self.close()  # mid-transaction, in a state nobody knows: start afresh
            raise
        if self._mailer.observe_latency is not None:
            self._mailer.observe_latency(time.perf_counter() - started)

    def _send_stepwise(
        self, smtp: smtplib.SMTP, sender: str, recipients: list[str], data: bytes,
        options: list[str],
    ) -> None:
        try:
            refused = smtp.sendmail(sender, recipients, data, mail_options=options)
        except smtplib.SMTPRecipientsRefused as exc:
            self._raise_for_codes(exc.recipients)
            raise  # unreachable: _raise_for_codes always raises
        except smtplib.SMTPResponseException as exc:
            self._after_error(exc.smtp_code)
            blamed = [] if isinstance(exc, smtplib.SMTPSenderRefused) else recipients
            self._raise_for_reply(exc.smtp_code, exc.smtp_error, blamed)
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise TemporaryMailError(f"SMTP connection lost: {exc}") from None
        if refused:
            self._raise_for_codes(refused)

    def _send_pipelined(
        self, smtp: smtplib.SMTP, sender: str, recipients: list[str], data: bytes
    ) -> None:
        """One transaction as RFC 2920 allows: the envelope and DATA in one write, their
        replies read in order, then the body (only after 354, as the RFC requires)."""
        size = f" SIZE={len(data)}" if self._size else ""
        commands = [f"MAIL FROM:{smtplib.quoteaddr(sender)}{size}\r\n"]
        commands += [f"RCPT TO:{smtplib.quoteaddr(address)}\r\n" for address in recipients]
        commands.append("DATA\r\n")
        body: tuple[int, bytes] | None = None
        try:
            smtp.send("".join(commands))
            # Every reply is read, whatever the first ones said: the server answers
            # each pipelined command, and the next transaction must not read these.
            mail = smtp.getreply()
            rcpt = [smtp.getreply() for _ in recipients]
            data_reply = smtp.getreply()
            refused = {address: reply for address, reply in zip(recipients, rcpt, strict=True)
                       if reply[0] not in (250, 251)}
            accepted = mail[0] == 250 and len(refused) < len(recipients)
            if data_reply[0] == 354:
                if accepted:
                    smtp.send(_data_block(data))
                    body = smtp.getreply()
                else:
                    # DATA taken although nothing can be delivered: RFC 2920 has the
                    # client end the (empty) message, then the error is reported.
                    smtp.send(b".\r\n")
                    smtp.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise TemporaryMailError(f"SMTP connection lost: {exc}") from None
        replies = [mail, *rcpt, data_reply] + ([body] if body is not None else [])
        if any(code == 421 for code, _text in replies):
            code, text = next(reply for reply in replies if reply[0] == 421)
            self._after_error(421)
            self._raise_for_reply(code, text, recipients)
        if mail[0] != 250:
            self._after_error(mail[0])
            self._raise_for_reply(*mail, [])  # the sender was refused, not a recipient
        if not accepted:
            self._after_error(rcpt[0][0])
            self._raise_for_codes(refused)
        if data_reply[0] != 354:
            self._after_error(data_reply[0])
            self._raise_for_reply(*data_reply, recipients)
        assert body is not None
        if body[0] != 250:
            self._after_error(body[0])
            self._raise_for_reply(*body, recipients)
        if refused:
            self._raise_for_codes(refused)

    @staticmethod
    def _raise_for_reply(code: int, text: bytes | str, recipients: list[str]) -> None:
        """A refusal of the whole message: permanent (5xx, blamed on the first of
        `recipients`, as there is one per message; none for a refused sender) or
        temporary."""
        reason = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        if 500 <= code < 600:
            raise PermanentMailError(
                f"SMTP {code} {reason}", recipients[0] if recipients else None
            ) from None
        raise TemporaryMailError(f"SMTP {code} {reason}") from None

    def _raise_for_codes(self, refused: dict[str, tuple[int, bytes]]) -> None:
        address, (code, text) = next(iter(refused.items()))
        message = f"SMTP {code} for {address}: {text.decode(errors='replace')}"
        if 500 <= code < 600:
            raise PermanentMailError(message, address)
        raise TemporaryMailError(message)

    def _after_error(self, code: int) -> None:
        # 421 means the server is closing the connection: start afresh next time.
        if code == 421:
            self.close()
        elif self._smtp is not None:
            try:
                self._smtp.rset()
            except (OSError, smtplib.SMTPException):
                self.close()

    def close(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (OSError, smtplib.SMTPException):
            self._smtp.close()
        self._smtp = None


_LEADING_DOT = re.compile(rb"(?m)^\.")


def _data_block(data: bytes) -> bytes:
    """The message as sent after 354: leading dots doubled, CRLF-terminated, then the
    lone dot (as smtplib's data() does, with the regex only run when a line starts
    with a dot, which rendered digests almost never have)."""
    if data.startswith(b".") or b"\n." in data:
        data = _LEADING_DOT.sub(b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _is_ascii(sender: str, recipients: list[str]) -> bool:
    return sender.isascii() and all(address.isascii() for address in recipients)


def _in_ascii(
    sender: str, recipients: list[str], data: bytes
) -> tuple[str, list[str], bytes]:
    """The message for a relay without SMTPUTF8: every non-ASCII address with its
    domain in IDNA, in the envelope and in the header section (where our messages
    write it in UTF-8); `AddressNotSupported` when a local part is not ASCII."""
    ascii_of = {address: _ascii_address(address)
                for address in (sender, *recipients) if not address.isascii()}
    head, separator, body = data.partition(b"\r\n\r\n")
    for address, ascii_address in ascii_of.items():
        pattern = rb"(?<![^\s<,:])" + re.escape(address.encode()) + rb"(?![^\s>,])"
        head = re.sub(pattern, ascii_address.encode("ascii"), head, flags=re.IGNORECASE)
    return (
        ascii_of.get(sender, sender),
        [ascii_of.get(address, address) for address in recipients],
        head + separator + body,
    )


def _ascii_address(address: str) -> str:
    try:
        ascii_form = validate_email(address, check_deliverability=False).ascii_email
    except EmailNotValidError as exc:
        raise AddressNotSupported(f"cannot send to {address}: {exc}", address) from None
    if ascii_form is None:
        raise AddressNotSupported(
            f"cannot send to {address}: its local part is not ASCII, which needs SMTPUTF8 "
            "(RFC 6531), and the SMTP relay does not offer it", address,
        )
    return ascii_form


def _addresses(message: EmailMessage) -> list[tuple[str, str]]:
    fields = [str(v) for key in ("To", "Cc", "Bcc") for v in message.get_all(key, [])]
    return getaddresses(fields)
