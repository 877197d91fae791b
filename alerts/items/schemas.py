"""Shapes of stored items as the API shows them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
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


class StoredJSON:
    """A JSON value as the database holds it (valid JSON text, written by the JSON
    column type): `page_json` embeds it without parsing it."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _fragment(value: Any) -> orjson.Fragment:
    if isinstance(value, StoredJSON):
        return orjson.Fragment(value.text)
    raise TypeError(f"{type(value).__name__} is not JSON")


def page_json(page: Mapping[str, Any]) -> bytes:
    """`page` (an ItemPage's fields as plain values, datetimes in UTC, stored JSON as
    `StoredJSON`) as the JSON `ItemPage.model_dump_json()` writes for it, without a model
    per item and field: validating a page into models cost more than reading it from the
    database. A test holds the two equal."""
    try:
        return orjson.dumps(page, default=_fragment, option=orjson.OPT_UTC_Z)
    except orjson.JSONEncodeError:
        # orjson stops at 64-bit integers, which a trial's changed value may exceed.
        return ItemPage.model_validate(parsed(page)).model_dump_json().encode()


def parsed(value: Any) -> Any:
    """`value` with every StoredJSON parsed (by the standard library: any integer)."""
    if isinstance(value, StoredJSON):
        return json.loads(value.text)
    if isinstance(value, Mapping):
        return {key: parsed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [parsed(item) for item in value]
    return value
