"""A CR/LF stored in an item (a link, a title or an id an adapter let through) never
makes a line of its own in a digest: not in the text part, where a reader or a mail
filter would take it for a header or a line of ours, nor in the HTML part, and the
message keeps exactly its own headers. Links are checked when sources are parsed
(tests/test_sources/test_urls.py); this is the line behind it, at delivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.test_digests.conftest import Post
from tests.test_digests.factories import T0

SLOT1 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
READER = "reader@example.org"
#: What the attacker wants to start a line with.
INJECTED = ("Bcc: victim@example.net", "X-Injected: yes", "From: boss@example.org",
            "Content-Type: text/html", "<script>")
BREAKS = ("\r\n", "\n", "\r", "\u2028", "\x85")
#: Exactly the headers a digest has, in order (alerts.digests.message.digest_headers,
#: then the MIME headers of alerts.mail.message.message_bytes).
HEADERS = ["From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe",
           "List-Unsubscribe-Post", "MIME-Version", "Content-Type"]


def _seed(post: Post) -> None:
    with post.seed() as make:
        target = make.target("her2-x", "HER2 exon 20")
        make.alert(make.subscriber(READER), target)
        items = [
            # A feed's link and title with every kind of line break.
            make.item("news", url="https://news.example.org/a\r\nBcc: victim@example.net"
                      "\r\n\r\n<script>alert(1)</script>",
                      title="Headline\r\nX-Injected: yes"),
            make.item("news", url="https://news.example.org/b\nFrom: boss@example.org",
                      title="Second\rContent-Type: text/html"),
            make.item("news", url="https://news.example.org/c\u2028X-Injected: yes\x85"
                      "Bcc: victim@example.net", title="Third\u2028From: boss@example.org"),
            # An id (PubMed links are made from it) and a blank title (the id shown).
            make.item("publication", external_id="40000001\r\nX-Injected: yes", title="\r\n"),
        ]
        for n, item in enumerate(items):
            make.event(item, target, at=T0 + timedelta(hours=1, minutes=n))


def test_a_line_break_in_an_item_never_starts_a_line_of_the_digest(post: Post) -> None:
    _seed(post)
    report = post.send(SLOT1)
    assert (report.sent, report.failed) == (1, 0), report
    [received] = post.smtp.handler.received
    message = received.message

    # Exactly the digest's own headers, each once; nothing injected among them.
    assert [name for name, _value in message.items()] == HEADERS
    assert str(message["To"]) == READER
    assert received.recipients == [READER]

    parts = {part.get_content_type(): part for part in message.walk()
             if not part.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}
    for part in parts.values():
        assert set(part.keys()) == {"Content-Type", "Content-Transfer-Encoding"}
        body = part.get_content()
        lines = body.replace("\r\n", "\n").split("\n")
        for line in lines:
            assert not line.lstrip().startswith(INJECTED), (part.get_content_type(), line)
            assert not any(mark in line for mark in BREAKS[2:]), (part.get_content_type(), line)
        assert "<script>" not in body
    # The items are there (their text, on the lines of their own).
    text = parts["text/plain"].get_content()
    assert "Headline X-Injected: yes" in text
    assert "40000001 X-Injected: yes" in text

    # The raw bytes: each line ends in CRLF, no lone CR or LF anywhere.
    raw = received.data
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert b"\n" not in raw.replace(b"\r\n", b"")
