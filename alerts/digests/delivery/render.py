"""From digests to the bytes of their emails: `render_digest` for one view,
`render_batch` for a chunk of digest ids (what a worker process does, so the sending
process neither loads nor pickles views).

`render_digest` is what alerts.digests.message says a digest's email is, built by
alerts.mail.message; its body comes through the body cache (alerts.digests.delivery.
bodies), which gives the parts a fresh render would.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from sqlalchemy.orm import Session

from alerts.config import Settings
from alerts.digests import repository as repo
from alerts.digests.compose import DigestView
from alerts.digests.delivery.bodies import body_parts
from alerts.digests.message import digest_body, digest_headers, links_for
from alerts.digests.views import build_views
from alerts.mail.base import envelope_sender
from alerts.mail.message import message_bytes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderedDigest:
    digest_id: int
    subscriber_id: int
    sender: str
    recipient: str
    subject: str
    data: bytes


@dataclass(frozen=True)
class RenderFailure:
    """A digest that could not be rendered (recorded as failed; the others go on)."""

    digest_id: int
    error: str


@dataclass
class RenderedBatch:
    messages: list[RenderedDigest | RenderFailure] = field(default_factory=list)
    #: Digests with nothing left to send: every alert was unsubscribed after planning.
    nothing_left: list[int] = field(default_factory=list)


@lru_cache(maxsize=8)
def _envelope_sender(mail_from: str) -> str:
    return envelope_sender(mail_from)


def render_digest(view: DigestView, settings: Settings, *, date: datetime) -> RenderedDigest:
    """The email of one digest, sent at `date`."""
    body = digest_body(view, settings)
    links = links_for(view, settings)
    headers = digest_headers(view, settings, links, subject=body.subject, date=date)
    return RenderedDigest(
        digest_id=view.digest_id,
        subscriber_id=view.subscriber_id,
        sender=_envelope_sender(settings.mail_from),
        recipient=view.email,
        subject=body.subject,
        data=message_bytes(headers, *body_parts(body, links)),
    )


def render_batch(
    session: Session, settings: Settings, digest_ids: Sequence[int], *, date: datetime
) -> RenderedBatch:
    """Load and render these digests; a digest that cannot be rendered fails alone."""
    views, nothing_left = build_views(repo.load_digest_data(session, digest_ids), settings)
    batch = RenderedBatch(nothing_left=nothing_left)
    for view in views:
        try:
            batch.messages.append(render_digest(view, settings, date=date))
        except Exception as exc:  # noqa: BLE001 - recorded on the digest, the rest go on
            log.exception("digest %s could not be rendered", view.digest_id)
            batch.messages.append(
                RenderFailure(view.digest_id, f"render error: {type(exc).__name__}: {exc}")
            )
    return batch
