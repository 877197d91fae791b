"""Digest emails: text and HTML from templates/digest/ through THE Jinja environment
(autoescaped HTML, StrictUndefined), assembled into one multipart/alternative message.

Rendering costs about as much as sending, so a large run renders in worker processes
while the sending thread keeps one SMTP connection busy (`Renderer`). Views are plain
picklable data (compose.DigestView); a worker gets the settings once and needs no
database.

The message is assembled here rather than through email.message.EmailMessage: for the
same structure as alerts.mail.base.build_message (text/plain first, HTML last, UTF-8,
quoted-printable, headers never folded below 998 characters) the stdlib's generic
header objects and pure-Python encoder cost ~4.5 ms per 20 KB message, this ~0.1 ms
(binascii's C quoted-printable). Non-ASCII header values still go through the stdlib's
header machinery (the POLICY of alerts.mail.base); tests check both parse the same.
"""

from __future__ import annotations

import binascii
import multiprocessing
import random
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from types import TracebackType
from urllib.parse import quote, urlsplit

from alerts.config import Settings
from alerts.digests.compose import DigestView, one_line, subject_for
from alerts.mail.base import POLICY, envelope_sender
from alerts.subscriptions.tokens import manage_url, unsubscribe_url
from alerts.templating import environment


@dataclass(frozen=True, slots=True)
class RenderedDigest:
    digest_id: int
    subscriber_id: int
    sender: str
    recipient: str
    subject: str
    data: bytes


@dataclass(frozen=True, slots=True)
class DigestLinks:
    manage: str
    #: Ends every alert of the digest (List-Unsubscribe).
    unsubscribe_all: str
    #: alert id -> a link that ends only that alert.
    unsubscribe: dict[int, str]
    #: alert id -> the page with what `max_items` left out.
    more: dict[int, str]


def public_host(settings: Settings) -> str:
    return urlsplit(settings.public_base).hostname or "localhost"


def more_url(settings: Settings, slug: str, since: datetime) -> str:
    # `since` is inclusive: keep microseconds when there are any.
    stamp = since.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if since.microsecond else "%Y-%m-%dT%H:%M:%SZ")
    return f"{settings.public_base}/targets/{quote(slug, safe='')}/items?since={stamp}"


def links_for(view: DigestView, settings: Settings) -> DigestLinks:
    per_alert = {
        section.alert_id: unsubscribe_url(settings, [section.alert_id])
        for section in view.sections
    }
    every = (
        per_alert[view.sections[0].alert_id]
        if len(view.sections) == 1
        else unsubscribe_url(settings, view.alert_ids)
    )
    more = {
        section.alert_id: more_url(settings, section.target_slug, section.since)
        for section in view.sections
        if section.hidden and section.since is not None
    }
    return DigestLinks(manage_url(settings, view.subscriber_id), every, per_alert, more)


def render_bodies(view: DigestView, settings: Settings) -> tuple[str, str, str, DigestLinks]:
    """(subject, text, html, links) of a digest."""
    subject = subject_for(view)
    links = links_for(view, settings)
    context = {
        "view": view,
        "subject": subject,
        "links": links,
        "public_url": settings.public_base,
    }
    env = environment()
    text = env.get_template("digest/digest.txt").render(context)
    html = env.get_template("digest/digest.html").render(context)
    return subject, text, html, links


def render_digest(view: DigestView, settings: Settings, *, date: datetime) -> RenderedDigest:
    subject, text, html, links = render_bodies(view, settings)
    headers = [
        ("From", settings.mail_from),
        ("To", view.email),
        ("Subject", subject),
        ("Date", format_datetime(date, usegmt=True)),
        ("Message-ID", view.message_id),
        # RFC 8058 one-click: one HTTPS link ending every alert this digest covers, on
        # one line (a folded List-Unsubscribe breaks DKIM in some relays).
        ("List-Unsubscribe", f"<{links.unsubscribe_all}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ]
    return RenderedDigest(
        digest_id=view.digest_id,
        subscriber_id=view.subscriber_id,
        sender=envelope_sender(settings.mail_from),
        recipient=view.email,
        subject=subject,
        data=mime_bytes(headers, text, html),
    )


# --- the message ----------------------------------------------------------------------


def _header(name: str, value: str) -> bytes:
    value = one_line(value) if name == "Subject" else value
    if value.isascii() and value.isprintable() and len(name) + len(value) < 996:
        return f"{name}: {value}\r\n".encode("ascii")
    # Encoded words (RFC 2047) for anything else, exactly as EmailMessage would write it.
    folded = POLICY.header_factory(name, value).fold(policy=POLICY)
    return folded.encode("ascii")


def _quoted_printable(text: str) -> bytes:
    # One line-ending convention in, CRLF out (SMTP); binascii soft-wraps at 76.
    normal = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(normal, quotetabs=False, istext=True).replace(b"\n", b"\r\n")


def _boundary() -> str:
    # The stdlib's own form; "=" is always encoded in a quoted-printable body, so the
    # boundary cannot occur inside a part.
    return f"==============={random.randrange(sys.maxsize):019d}=="


def mime_bytes(
    headers: Sequence[tuple[str, str]], text: str, html: str, *, boundary: str | None = None
) -> bytes:
    """A multipart/alternative RFC 5322 message (CRLF line ends): text/plain first,
    text/html last, both UTF-8 quoted-printable."""
    boundary = boundary or _boundary()
    out = [_header(name, value) for name, value in headers]
    out.append(
        f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="{boundary}"'
        "\r\n\r\n".encode("ascii")
    )
    for subtype, body in (("plain", text), ("html", html)):
        out.append(
            f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode("ascii")
        )
        # The CRLF before a boundary belongs to the boundary: end the body with a line
        # break of its own so the part keeps its last newline (as the stdlib does).
        out.append(_quoted_printable(body if body.endswith("\n") else body + "\n"))
        out.append(b"\r\n")
    out.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(out)


# --- rendering next to sending ----------------------------------------------------------

_worker_settings: Settings | None = None


def _init_worker(settings: Settings) -> None:
    global _worker_settings
    _worker_settings = settings


def _render_in_worker(views: Sequence[DigestView], date: datetime) -> list[RenderedDigest]:
    assert _worker_settings is not None, "worker not initialised"
    return [render_digest(view, _worker_settings, date=date) for view in views]


def _warm_up() -> None:
    env = environment()
    env.get_template("digest/digest.txt")
    env.get_template("digest/digest.html")


class Renderer:
    """Renders batches of digests, inline or in a pool of worker processes.

    `submit` returns a Future either way, so the sender pipelines the same code: while
    it sends batch k, the workers render batch k+1. The pool is started lazily by
    `start_pool` (spawned processes: a fork would copy open database connections and
    the SMTP threads of the parent)."""

    def __init__(self, settings: Settings, workers: int) -> None:
        self._settings = settings
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None

    @property
    def pooled(self) -> bool:
        return self._pool is not None

    def start_pool(self) -> None:
        """Start the worker processes (they import and warm up in the background)."""
        if self._pool is not None or self._workers < 1:
            return
        self._settings.signing_key()  # generate a development key once, before workers read it
        self._pool = ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self._settings,),
        )
        for _ in range(self._workers):
            self._pool.submit(_warm_up)

    def submit(self, views: Sequence[DigestView], date: datetime) -> Future[list[RenderedDigest]]:
        if self._pool is not None:
            return self._pool.submit(_render_in_worker, list(views), date)
        future: Future[list[RenderedDigest]] = Future()
        try:
            future.set_result([render_digest(v, self._settings, date=date) for v in views])
        except Exception as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
        return future

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Renderer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
