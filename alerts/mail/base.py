"""The mail interface every sender uses (digests, confirmations, API tokens).

A `Mailer` opens a `MailConnection` for a batch: SMTP reuses one connection for all
the batch's messages. Failures are typed so callers can keep what must be retried:
`TemporaryMailError` (4xx, dropped connection, timeout) leaves the mail pending;
`PermanentMailError` (5xx) is recorded and not retried, and blames the address only
when the server refused that address; `AddressNotSupported` (an address this relay
cannot carry) fails that one message and says nothing about the address.

Internationalised addresses (RFC 6530): messages carry them in UTF-8 in their address
headers (RFC 6532), never as encoded words, which RFC 2047 forbids inside an address.
The SMTP connection sends such a message with SMTPUTF8 when the relay offers it and
otherwise rewrites what it can to ASCII (alerts.mail.smtp).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import parseaddr
from typing import Any, Protocol


class _MailPolicy(EmailPolicy):
    """The stdlib's SMTP policy, except that an address header holding a non-ASCII
    address is written in UTF-8 (RFC 6532) instead of as encoded words: `To:
    =?utf-8?b?...?=@...` is no address at all, and no server can deliver a reply to it.
    Every other header keeps RFC 2047 encoded words (ASCII on the wire)."""

    def fold(self, name: str, value: Any) -> str:
        if not self.utf8 and _has_international_address(value):
            return self.clone(utf8=True).fold(name, value)
        return super().fold(name, value)

    def fold_binary(self, name: str, value: Any) -> bytes:
        if not self.utf8 and (_has_international_address(value) or _is_utf8_source(value)):
            return self.clone(utf8=True).fold_binary(name, value)
        return super().fold_binary(name, value)


def _has_international_address(value: Any) -> bool:
    addresses = getattr(value, "addresses", None)  # set on address headers only
    return addresses is not None and not all(a.addr_spec.isascii() for a in addresses)


def _is_utf8_source(value: Any) -> bool:
    """A header of a message read back from its text (alerts.mail.message) keeps the
    value as written, and only an address is ever written in UTF-8 (every other value
    is ASCII, as encoded words): written again, it stays UTF-8. (A header object, which
    is a str too, has a name; a value kept as written has none.)"""
    return isinstance(value, str) and not hasattr(value, "name") and not value.isascii()


#: RFC 5322 lines may be 998 characters; folding at 78 would split List-Unsubscribe over
#: two lines, which RFC 8058 senders avoid (a folded header breaks DKIM in some relays).
POLICY = _MailPolicy(linesep="\r\n", max_line_length=998)


class MailError(Exception):
    pass


class TemporaryMailError(MailError):
    """The server could not take the message now; send it again later."""


class PermanentMailError(MailError):
    """The server refused the message for good. `recipient` names the address it
    refused (550 no such user: a bounce); None when the refusal is not about an
    address (the sender or the relay's policy), which no recipient is to blame for."""

    def __init__(self, message: str, recipient: str | None = None) -> None:
        super().__init__(message)
        self.recipient = recipient


class AddressNotSupported(MailError):
    """This relay cannot carry the address (a non-ASCII local part needs SMTPUTF8,
    which it does not offer): the message fails; the address may well be valid."""

    def __init__(self, message: str, recipient: str) -> None:
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
