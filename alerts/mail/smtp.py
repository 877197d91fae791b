"""SMTP delivery over one reused connection per batch, with STARTTLS and login when
configured. A dropped connection is reopened for the next message."""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage

from alerts.mail.base import (
    POLICY,
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
        except smtplib.SMTPAuthenticationError as exc:
            raise TemporaryMailError(f"SMTP login refused: {exc.smtp_code}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporaryMailError(f"cannot reach SMTP server {m.host}:{m.port}: {exc}") from None
        self._smtp = smtp
        return smtp

    def send(self, message: EmailMessage) -> None:
        recipients = [address for _name, address in _addresses(message)]
        sender = envelope_sender(str(message["From"]))
        self.send_raw(sender, recipients, message.as_bytes(policy=POLICY))

    def send_raw(self, sender: str, recipients: list[str], data: bytes) -> None:
        smtp = self._open()
        started = time.perf_counter()
        try:
            refused = smtp.sendmail(sender, recipients, data)
        except smtplib.SMTPRecipientsRefused as exc:
            self._raise_for_codes(exc.recipients)
            raise  # unreachable: _raise_for_codes always raises
        except smtplib.SMTPResponseException as exc:
            self._after_error(exc.smtp_code)
            text = exc.smtp_error.decode(errors="replace") if isinstance(
                exc.smtp_error, bytes) else str(exc.smtp_error)
            if 500 <= exc.smtp_code < 600:
                raise PermanentMailError(
                    f"SMTP {exc.smtp_code} {text}", recipients[0] if recipients else None
                ) from None
            raise TemporaryMailError(f"SMTP {exc.smtp_code} {text}") from None
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise TemporaryMailError(f"SMTP connection lost: {exc}") from None
        if refused:
            self._raise_for_codes(refused)
        if self._mailer.observe_latency is not None:
            self._mailer.observe_latency(time.perf_counter() - started)

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


def _addresses(message: EmailMessage) -> list[tuple[str, str]]:
    from email.utils import getaddresses

    fields = [str(v) for key in ("To", "Cc", "Bcc") for v in message.get_all(key, [])]
    return getaddresses(fields)
