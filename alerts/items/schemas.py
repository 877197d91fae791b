"""Shapes of stored items as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from alerts.sources.base import ItemKind, SourceName


class ChangeOut(BaseModel):
    """One tracked field of a trial that changed: `Overall status: A -> B`."""

    field: str
    old: Any = None
    new: Any = None


class ItemEventOut(BaseModel):
    kind: str  # "new" | "updated"
    at: datetime
    changes: list[ChangeOut] | None = None


class ItemOut(BaseModel):
    source: SourceName
    external_id: str
    kind: ItemKind
    title: str
    url: str
    summary: str
    published_at: datetime | None
    #: When the item was first found for this target (the list's sort key).
    first_seen_at: datetime
    matched_terms: list[str]
    #: The sentence or field value that matched ("" for items matched before evidence
    #: was recorded), the field it comes from, and the [start, end) character spans of
    #: the matched words inside it.
    evidence: str = ""
    evidence_field: str = ""
    highlights: list[tuple[int, int]] = []
    data: dict[str, Any]
    #: Trials only: `new`, then every `updated` with its changes.
    events: list[ItemEventOut] | None = None


class ItemPage(BaseModel):
    data: list[ItemOut]
    next_cursor: str | None = None
