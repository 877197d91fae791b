"""The mail interface every sender uses (digests, confirmations, API tokens).

A `Mailer` opens a `MailConnection` for a batch: SMTP reuses one connection for all
the batch's messages. Failures are typed so callers can keep what must be retried:
`TemporaryMailError` (4xx, dropped connection, timeout) leaves the mail pending;
`PermanentMailError` (5xx for the address) is recorded and not retried.
"""

from __future__ import annotations

import email.policy
from collections.abc import Mapping
from contextlib import AbstractContextManager
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Protocol

#: RFC 5322 lines may be 998 characters; folding at 78 would split List-Unsubscribe over
#: two lines, which RFC 8058 senders avoid (a folded header breaks DKIM in some relays).
POLICY = email.policy.SMTP.clone(max_line_length=998)


class MailError(Exception):
    pass


class TemporaryMailError(MailError):
    """The server could not take the message now; send it again later."""


class PermanentMailError(MailError):
    """The server refused the message for good (e.g. 550 no such user)."""

    def __init__(self, message: str, recipient: str | None = None) -> None:
        super().__init__(message)
        self.recipient = recipient


class MailConnection(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Deliver one message; returns only once the server accepted it."""
        ...

    def send_raw(self, sender: str, recipients: list[str], data: bytes) -> None:
        """Deliver an already rendered RFC 5322 message (CRLF line ends)."""
        ...


class Mailer(Protocol):
    def connect(self) -> AbstractContextManager[MailConnection]:
        """A connection for a batch of messages."""
        ...


def envelope_sender(mail_from: str) -> str:
    """The bare address of a From header value."""
    return parseaddr(mail_from)[1] or mail_from


def build_message(
    *,
    mail_from: str,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """A multipart/alternative message: plain text first, HTML last (RFC 2046: the
    richest part last, which clients prefer)."""
    message = EmailMessage(policy=POLICY)
    message["From"] = mail_from
    message["To"] = to
    message["Subject"] = subject
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    if html is not None:
        message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message
