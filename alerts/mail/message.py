"""The one way this service writes an email, digests and confirmations alike.

A message is multipart/alternative: plain text first, HTML last (RFC 2046: the richest
part last, which clients prefer), both UTF-8, CRLF line ends, headers never folded below
998 characters (a folded List-Unsubscribe breaks DKIM in some relays). `message_bytes`
writes its RFC 5322 bytes; `build_message` gives the same message as an EmailMessage,
for the callers that queue or inspect one (confirmation and API token mails).

The bytes are assembled here rather than through EmailMessage because digests go out by
the ten thousand: for the same structure the stdlib's generic header objects and
pure-Python encoder cost ~4.5 ms per 20 KB message, this ~0.05 ms. ASCII parts go 7bit
as they are, others quoted-printable through binascii (C). Header values that are not
plain ASCII still go through the stdlib's header machinery (POLICY); tests check the
result against messages the stdlib builds.

The fast path for bodies that many messages share but for a few values (a digest's
text, with each reader's own links): render the body once with `slot(name)` markers in
place of those values, prepare it as a `PartTemplate` (normalised and checked once), and
`fill` it per message, which gives the bytes that encoding the body rendered with the
values in place gives.
"""

from __future__ import annotations

import binascii
import random
import re
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email import message_from_string
from email.message import EmailMessage
from typing import cast

from alerts.mail.base import POLICY

#: Longest line a 7bit part may have (RFC 5322: 998 characters before CRLF).
MAX_LINE = 998


@dataclass(frozen=True, slots=True)
class Part:
    """A text part's body, encoded: its Content-Transfer-Encoding and CRLF-terminated
    bytes."""

    encoding: str
    data: bytes

    @classmethod
    def of(cls, text: str) -> Part:
        """ASCII text with lines short enough goes as it is (7bit: the common case,
        nothing to encode or to decode); anything else is quoted-printable (binascii
        soft-wraps at 76)."""
        normal = _normalise(text)
        if (normal.isascii() and "\0" not in normal
                and max(map(len, normal.split("\n"))) <= MAX_LINE):
            return cls("7bit", normal.encode("ascii").replace(b"\n", b"\r\n"))
        encoded = binascii.b2a_qp(normal.encode("utf-8"), quotetabs=False, istext=True)
        return cls("quoted-printable", encoded.replace(b"\n", b"\r\n"))


def _normalise(text: str) -> str:
    normal = text.replace("\r\n", "\n").replace("\r", "\n")
    # The CRLF before a boundary belongs to the boundary: end the body with a line
    # break of its own so the part keeps its last newline (as the stdlib does).
    if not normal.endswith("\n"):
        normal += "\n"
    return normal


# --- bodies rendered once, filled per message ----------------------------------------------

_MARK = f"@@{secrets.token_hex(8)}@@"
_SLOT = re.compile(f"{re.escape(_MARK)}(\\w+){re.escape(_MARK)}")


def slot(name: str) -> str:
    """An unguessable marker to render in a body where `PartTemplate.fill` puts the
    value called `name` (a word: letters, digits, underscores)."""
    return f"{_MARK}{name}{_MARK}"


class PartTemplate:
    """A body rendered once with `slot` markers, ready to take each message's values.

    The text is normalised and checked once: split at the slots into CRLF-terminated
    pieces, with what a 7bit part needs to know (ASCII, no NUL, the longest line without
    a slot, the fixed length of each line that holds slots). A message whose values keep
    all of that true is one join; any other is encoded with the values substituted,
    exactly as `Part.of` encodes a fresh render."""

    __slots__ = ("_raw", "_pieces", "_names", "_plain", "_fixed_longest", "_slot_lines")

    def __init__(self, raw: str) -> None:
        self._raw = raw
        normal = _normalise(raw)
        # Even pieces are literal text (CRLF line ends), odd ones slot names.
        split = _SLOT.split(normal)
        self._pieces = [piece.replace("\n", "\r\n") if n % 2 == 0 else piece
                        for n, piece in enumerate(split)]
        self._names = split[1::2]
        fixed_text = "".join(split[0::2])
        self._plain = fixed_text.isascii() and "\0" not in fixed_text
        self._fixed_longest = 0
        #: Per line holding slots: (its length without them, the names of its slots).
        self._slot_lines: list[tuple[int, list[str]]] = []
        for line in normal.split("\n"):
            names = _SLOT.findall(line)
            fixed = len(_SLOT.sub("", line))
            if names:
                self._slot_lines.append((fixed, names))
            else:
                self._fixed_longest = max(self._fixed_longest, fixed)

    def fill(self, values: Mapping[str, str]) -> Part:
        """This part with `values` in its slots."""
        filled = [values[name] for name in self._names]
        if (
            self._plain
            # Only non-empty values without line breaks leave the normalised lines as
            # they are (an empty one could make "\r" + "\n" one break).
            and all(value and value.isascii() and value.isprintable() for value in filled)
            and self._fixed_longest <= MAX_LINE
            and all(fixed + sum(len(values[name]) for name in names) <= MAX_LINE
                    for fixed, names in self._slot_lines)
        ):
            pieces = self._pieces[:]
            pieces[1::2] = filled
            return Part("7bit", "".join(pieces).encode("ascii"))
        return Part.of(_SLOT.sub(lambda m: values[m.group(1)], self._raw))


# --- the message -------------------------------------------------------------------------


def _header(name: str, value: str) -> bytes:
    if name == "Subject":
        value = " ".join(value.split())  # one line, whatever the stored text held
    if value.isascii() and value.isprintable() and len(name) + len(value) < 996:
        return f"{name}: {value}\r\n".encode("ascii")
    # Encoded words (RFC 2047) for anything else, exactly as EmailMessage would write it
    # (an internationalised address in UTF-8, RFC 6532: see alerts.mail.base.POLICY).
    return POLICY.fold_binary(name, POLICY.header_factory(name, value))


def _boundary() -> str:
    # The stdlib's own form ("=" is always encoded in a quoted-printable part; a 7bit
    # part is checked for it below).
    return f"==============={random.randrange(sys.maxsize):019d}=="


def _part(subtype: str, encoding: str) -> str:
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: {encoding}\r\n")


def message_bytes(
    headers: Sequence[tuple[str, str]],
    text: str | Part,
    html: str | Part | None = None,
    *,
    boundary: str | None = None,
) -> bytes:
    """An RFC 5322 message with these headers (in this order): multipart/alternative of
    `text` (text/plain) and `html` (text/html), or `text` alone without `html`. A body
    given as `str` is encoded here; a `Part` (`Part.of`, `PartTemplate.fill`) as it is."""
    out = [_header(name, value) for name, value in headers]
    plain = text if isinstance(text, Part) else Part.of(text)
    if html is None:
        out.append(f"MIME-Version: 1.0\r\n{_part('plain', plain.encoding)}\r\n".encode("ascii"))
        out.append(plain.data)
        return b"".join(out)
    parts = [("plain", plain), ("html", html if isinstance(html, Part) else Part.of(html))]
    boundary = boundary or _boundary()
    while any(boundary.encode("ascii") in part.data for _subtype, part in parts):
        boundary = _boundary()
    out.append(
        f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="{boundary}"'
        "\r\n\r\n".encode("ascii")
    )
    for subtype, part in parts:
        out.append(f"--{boundary}\r\n{_part(subtype, part.encoding)}\r\n".encode("ascii"))
        out.append(part.data)
        out.append(b"\r\n")
    out.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(out)


def build_message(
    *,
    mail_from: str,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """The message `message_bytes` writes (From, To, Subject, then `headers`), read back
    as an EmailMessage. Read from its text, not its bytes: an address header in UTF-8
    (RFC 6532) stays an address instead of becoming undecodable bytes."""
    data = message_bytes(
        [("From", mail_from), ("To", to), ("Subject", subject), *(headers or {}).items()],
        text, html,
    )
    message = message_from_string(data.decode("utf-8"), policy=POLICY)  # type: ignore[arg-type]
    return cast(EmailMessage, message)
