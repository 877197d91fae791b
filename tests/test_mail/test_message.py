"""The one message builder: what it writes reads back as the message the stdlib builds,
every line fits, and a body rendered once with slots and filled per message encodes as
the body rendered with those values would."""

from __future__ import annotations

from collections.abc import Mapping
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from alerts.mail.base import POLICY
from alerts.mail.message import Part, PartTemplate, build_message, message_bytes, slot


def build_message_stdlib(
    *, mail_from: str, to: str, subject: str, text: str, html: str,
    headers: Mapping[str, str],
) -> EmailMessage:
    """The same message as the stdlib writes it (its header objects and encoders)."""
    message = EmailMessage(policy=POLICY)
    message["From"] = mail_from
    message["To"] = to
    message["Subject"] = subject
    for name, value in headers.items():
        message[name] = value
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message


@pytest.mark.parametrize(
    ("mail_from", "subject", "text", "html"),
    [
        ("Target Alerts <alerts@localhost>", "HER2 exon 20: 2 publications",
         "plain = text\n.\nFrom the lab\n" + "long line " * 40 + "\n", "<p>a &amp; b</p>\n"),
        ("Zielmeldungen Ünd Co <alerts@example.org>", "HER2 — exon 20: naïve résumé",
         "non-ASCII: é ü — ✓\ttab \n", "<p>é</p>"),
    ],
)
def test_the_message_parses_like_the_stdlibs_own(
    mail_from: str, subject: str, text: str, html: str
) -> None:
    """The fast assembly gives what the stdlib's EmailMessage gives, read back."""
    headers = {"Message-ID": "<m@alerts.test>",
               "List-Unsubscribe": "<http://alerts.test/unsubscribe?token=" + "x" * 200 + ">"}
    ours = message_from_bytes(
        message_bytes([("From", mail_from), ("To", "r@example.org"), ("Subject", subject),
                    *headers.items()], text, html),
        policy=policy.default,
    )
    reference = message_from_bytes(
        build_message_stdlib(mail_from=mail_from, to="r@example.org", subject=subject,
                             text=text, html=html, headers=headers).as_bytes(policy=POLICY),
        policy=policy.default,
    )
    for name in ("From", "To", "Subject", "Message-ID", "List-Unsubscribe", "MIME-Version"):
        assert str(ours[name]) == str(reference[name]), name
    assert ours.get_content_type() == reference.get_content_type() == "multipart/alternative"
    for mine, theirs in zip(ours.iter_parts(), reference.iter_parts(), strict=True):
        assert mine.get_content_type() == theirs.get_content_type()
        assert mine.get_content_charset() == theirs.get_content_charset()
        assert mine.get_content() == theirs.get_content()


def test_every_line_of_the_message_is_short_and_crlf_terminated() -> None:
    data = message_bytes([("Subject", "s")], "x" * 5000 + "\n", "<p>" + "y" * 5000 + "</p>")
    lines = data.split(b"\r\n")
    assert lines[-1] == b""
    assert all(b"\n" not in line and len(line) <= 998 for line in lines)


@pytest.mark.parametrize(
    ("body", "link"),
    [
        ("Manage: {link}\nBye\n", "https://alerts.test/manage?token=abc.def"),
        ("<a href=\"{link}\">x</a>", "https://alerts.test/m?t=1&amp;u=2"),  # no final newline
        ("line\r\n{link}", "https://alerts.test/m"),  # a link ending the body
        ("x" * 900 + "{link}\n", "https://alerts.test/" + "t" * 97),  # a line at 998 exactly
        ("x" * 900 + "{link}\n", "https://alerts.test/" + "t" * 98),  # ... and past it
        ("line\r{link}\nnext", ""),  # an empty link: CR and LF become one line break
        ("naïve {link}\n", "https://alerts.test/m"),  # non-ASCII text
        ("{link}\n", "https://alérts.test/m"),  # a non-ASCII link
        ("{link} and again {link}\n", "https://alerts.test/m\tx"),
    ],
)
def test_a_cached_body_filled_with_links_encodes_as_a_fresh_render(body: str, link: str) -> None:
    """The cached body (rendered once, with placeholders) and each email's links give
    the bytes that encoding the body rendered with those links gives."""
    cached = PartTemplate(body.format(link=slot("manage")))
    assert cached.fill({"manage": link}) == Part.of(body.format(link=link))


def test_build_message_is_the_same_message_as_an_email_message() -> None:
    """Confirmation mails (an EmailMessage, queued as text) and digests (bytes) are
    written by the same builder: the EmailMessage writes back the bytes it was read
    from, as bytes and as text."""
    headers = [("From", "Target Alerts <alerts@alerts.test>"), ("To", "r@example.org"),
               ("Subject", "Confirm your alert: HER2 – exon 20"), ("Message-ID", "<m@x>")]
    data = message_bytes(headers, "Confirm: http://alerts.test/confirm?token=t\n",
                         "<p>Confirm</p>", boundary="==b==")
    message = build_message(mail_from=headers[0][1], to=headers[1][1], subject=headers[2][1],
                            text="Confirm: http://alerts.test/confirm?token=t\n",
                            html="<p>Confirm</p>", headers={"Message-ID": "<m@x>"})
    message.set_boundary("==b==")
    assert message.as_bytes(policy=POLICY) == data
    assert message.as_string(policy=POLICY).encode("utf-8") == data


def test_a_message_without_html_is_plain_text_alone() -> None:
    message = message_from_bytes(message_bytes([("Subject", "s")], "naïve\n"),
                                 policy=policy.default)
    assert message.get_content_type() == "text/plain"
    assert message["Content-Transfer-Encoding"] == "quoted-printable"
    assert message.get_content().splitlines() == ["naïve"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", ["Two\r\nlines", "Two\nlines", " Two   lines "])
def test_a_subject_is_one_line_whatever_it_was_given(value: str) -> None:
    data = message_bytes([("Subject", value)], "x", "y")
    assert data.startswith(b"Subject: Two lines\r\nMIME-Version: 1.0\r\n")
