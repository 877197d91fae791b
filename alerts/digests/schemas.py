"""Shapes of the digest API: an alert's preview and the operator's list of digests."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from alerts.items.schemas import ChangeOut
from db.statuses import DigestStatus


class PreviewItem(BaseModel):
    """One event the next digest would show, with its item."""

    event_id: int
    #: "new", or "updated" for a trial whose tracked fields changed.
    event: str
    #: new_trials | trial_updates | publications | news (the digest's parts, in order).
    section: str
    source: str
    external_id: str
    kind: str
    title: str
    url: str
    published_at: datetime | None
    first_seen_at: datetime
    event_at: datetime
    matched_terms: list[str]
    #: The sentence or field value that matched, its field and the matched words' spans.
    evidence: str = ""
    evidence_field: str = ""
    highlights: list[tuple[int, int]] = []
    changes: list[ChangeOut]


class PreviewOut(BaseModel):
    data: list[PreviewItem]
    #: Events past the alert's max_items: in the digest only behind the "more" link.
    more: int


class DigestOut(BaseModel):
    id: int
    key: str
    email: str
    frequency: str
    slot_at: datetime
    status: DigestStatus
    attempts: int
    last_error: str | None
    subject: str | None
    item_count: int
    created_at: datetime
    sent_at: datetime | None
    #: The address's state: "ok", or "bounced" after a permanent refusal.
    mail_status: str
    alert_ids: list[int]


class DigestPage(BaseModel):
    data: list[DigestOut]
    next_cursor: str | None = None
