"""Storing what a poll fetched, and reading it back for a target.

`ingest` is the heart of the poll's storing transaction: items are inserted or ignored by
(source, external id), linked to the target with the terms that matched, and every NEW
link gets a `new` event for that target. A known trial whose tracked fields (status,
phases, results ...) differ from the stored copy is updated, and every target it is
linked to gets an `updated` event with the old and new values. The stored copy is re-read
inside the transaction (and locked on PostgreSQL), so two processes storing the same
change make one event, not two.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

from sqlalchemy.orm import Session

from alerts.errors import Unprocessable
from alerts.items import repository
from alerts.items.schemas import StoredJSON
from alerts.matching import matcher_for
from alerts.sources.base import FetchedItem, ItemKind, SourceName
from alerts.sources.trial_fields import TRACKED_FIELD_LABELS
from alerts.targets.service import get_target_by_slug
from db.models import Item

#: Sources whose entries are not the answer to a target's own upstream query (a feed
#: carries everything its publisher posts), so only entries matching the target's terms
#: are kept. The others are stored as the upstream returned them.
LOCALLY_MATCHED = frozenset({SourceName.rss})

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class IngestCounts:
    new: int  # items newly linked to the target (one `new` event each)
    updated: int  # known trials whose tracked fields changed


def ingest(
    session: Session,
    *,
    source: SourceName,
    target_id: int,
    match_terms: Mapping[str, Iterable[str]],
    fetched: Iterable[FetchedItem],
    now: datetime,
) -> IngestCounts:
    """Store a poll's items for a target (see the module docstring). Flushes only."""
    matcher = matcher_for(match_terms)
    kept: dict[str, tuple[FetchedItem, list[str]]] = {}
    for item in fetched:
        if item.external_id in kept:
            continue
        if source in LOCALLY_MATCHED:
            terms = matcher.match(item.title, item.summary)
            if terms is None:
                continue
        else:
            terms = matcher.terms_found(item.title, item.summary)
        kept[item.external_id] = (item, terms)
    if not kept:
        return IngestCounts(new=0, updated=0)

    # Every writer touches rows in external-id order, so two transactions storing
    # overlapping batches wait for each other instead of deadlocking.
    ordered = sorted(kept)
    repository.insert_ignoring_conflicts(
        session,
        Item,
        [_item_row(kept[external_id][0], now) for external_id in ordered],
        ("source", "external_id"),
    )
    ids = repository.item_ids(session, source, ordered)
    updates = _trial_updates(session, source, kept, now)

    newly_linked = repository.link_items(
        session, target_id, [(ids[eid], kept[eid][1]) for eid in ordered], now
    )
    events: list[dict[str, Any]] = [
        {"item_id": item_id, "target_id": target_id, "kind": "new", "changes": [],
         "created_at": now}
        for item_id in sorted(newly_linked)
    ]
    for item_id, linked_target in repository.linked_targets(session, sorted(updates)):
        if linked_target == target_id and item_id in newly_linked:
            continue  # new for this target: its `new` event already says everything
        events.append(
            {"item_id": item_id, "target_id": linked_target, "kind": "updated",
             "changes": updates[item_id], "created_at": now}
        )
    repository.add_events(session, events)
    session.flush()
    return IngestCounts(new=len(newly_linked), updated=len(updates))


def _item_row(item: FetchedItem, now: datetime) -> dict[str, Any]:
    return {
        "source": str(item.source),
        "external_id": item.external_id,
        "kind": str(item.kind),
        "title": item.title,
        "url": item.url,
        "summary": item.summary or "",
        "published_at": item.published_at,
        "first_seen_at": now,
        "data": _stored_data(item),
    }


def _stored_data(item: FetchedItem) -> dict[str, Any]:
    data: dict[str, Any] = jsonable(dict(item.data))
    if item.tracked:
        data["tracked"] = jsonable(dict(item.tracked))
    return data


def _trial_updates(
    session: Session,
    source: SourceName,
    kept: Mapping[str, tuple[FetchedItem, list[str]]],
    now: datetime,
) -> dict[int, list[dict[str, Any]]]:
    """Update the known items whose tracked fields changed; item id -> changes."""
    tracked_ids = sorted(eid for eid, (item, _terms) in kept.items() if item.tracked)
    if not tracked_ids:
        return {}
    changes_by_item: dict[int, list[dict[str, Any]]] = {}
    rows: list[dict[str, Any]] = []
    for item_id, external_id, stored_data in repository.lock_item_data(
        session, source, tracked_ids
    ):
        item = kept[external_id][0]
        fresh = _stored_data(item)
        stored = stored_data.get("tracked") if isinstance(stored_data, dict) else None
        if not isinstance(stored, dict):
            if stored_data != fresh:  # stored before fields were tracked: no event
                rows.append(_update_row(item_id, item, fresh, now))
            continue
        changes = tracked_changes(stored, fresh["tracked"])
        if changes:
            changes_by_item[item_id] = changes
            rows.append(_update_row(item_id, item, fresh, now))
    repository.update_items(session, rows)
    return changes_by_item


def _update_row(item_id: int, item: FetchedItem, data: dict[str, Any], now: datetime) -> dict:
    return {"id": item_id, "title": item.title, "summary": item.summary or "", "data": data,
            "updated_at": now}


def tracked_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """[{field, old, new}] for every tracked field whose value differs, labelled for a
    digest line. Lists compare as sets (the order of phases or countries means nothing),
    and show joined by ", "."""
    changes = []
    for key in [*new, *(k for k in old if k not in new)]:
        before, after = old.get(key), new.get(key)
        if _same(before, after):
            continue
        changes.append(
            {"field": TRACKED_FIELD_LABELS.get(key, key), "old": _shown(before),
             "new": _shown(after)}
        )
    return changes


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return sorted(map(_canonical, a)) == sorted(map(_canonical, b))
    return _canonical(a) == _canonical(b)  # so True and 1 differ, as they do in JSON


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _shown(value: Any) -> Any:
    if isinstance(value, list):
        return ", ".join(str(part) for part in value)
    return value


def jsonable(value: Any) -> Any:
    """`value` with only JSON types: mappings to dicts, sequences to lists, dates to
    ISO-8601, enums to their value."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


# -- reading ---------------------------------------------------------------------------


def known_ids(
    session: Session, source: SourceName, target_id: int, external_ids: Sequence[str]
) -> set[str]:
    """An adapter's KnownIds: which of these ids are stored and already linked to the
    target. Only those may go unfetched: a record stored for another target still has to
    come back, so that it is linked to this one too."""
    return repository.known_external_ids(session, str(source), target_id, external_ids)


def parse_since(value: str) -> datetime:
    """An ISO-8601 datetime (an offset or Z; naive means UTC) or date (midnight UTC)."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise Unprocessable(
            "since", "must be an ISO-8601 date or datetime, e.g. 2026-06-01 or "
            "2026-06-01T08:00:00Z", location="query",
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def encode_cursor(at: datetime, item_id: int) -> str:
    raw = json.dumps([at.astimezone(UTC).isoformat(), item_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The sort key in a cursor made by `encode_cursor`; Unprocessable when garbled."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at_text, item_id = json.loads(raw)
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is None or not isinstance(item_id, int) or isinstance(item_id, bool):
            raise ValueError("bad cursor fields")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise Unprocessable(
            "cursor", "invalid cursor: pass the next_cursor of a previous page",
            location="query",
        ) from None
    return at, item_id


def list_target_items(
    session: Session,
    slug: str,
    *,
    since: datetime | None = None,
    kind: ItemKind | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> dict[str, Any]:
    """A page of the target's items, newest first (by when each was found for the target,
    then by id), with trials' events: an `ItemPage` as plain values for
    `schemas.page_json` (datetimes; `matched_terms` and `data` as `StoredJSON`).
    NotFound for an unknown slug.

    One statement whatever the page holds (`repository.target_items_query`); the
    target is looked up on its own only when the page is empty or the cursor bad, to
    tell an unknown target (404) apart."""
    try:
        after = decode_cursor(cursor) if cursor else None
    except Unprocessable:
        get_target_by_slug(session, slug)  # an unknown target answers 404 first
        raise
    rows = repository.target_items_page(
        session, slug, since=since, kind=str(kind) if kind else None, after=after,
        limit=limit + 1,
    )
    if not rows:
        get_target_by_slug(session, slug)
        return {"data": [], "next_cursor": None}
    data: list[dict[str, Any]] = []
    keys: list[tuple[datetime, int]] = []
    for row in rows:  # an item's rows are adjacent: one per event
        if not keys or keys[-1][1] != row.id:
            keys.append((row.linked_at, row.id))
            data.append({
                "source": row.source,
                "external_id": row.external_id,
                "kind": row.kind,
                "title": row.title,
                "url": row.url,
                "summary": row.summary,
                "published_at": row.published_at,
                "first_seen_at": row.linked_at,
                "matched_terms": StoredJSON(row.matched_terms),
                "data": StoredJSON(row.data),
                "events": [] if row.kind == ItemKind.trial else None,
            })
        if row.event_kind is not None:
            data[-1]["events"].append({
                "kind": row.event_kind,
                "at": row.event_at,
                "changes": [
                    {"field": c["field"], "old": c.get("old"), "new": c.get("new")}
                    for c in row.event_changes
                ] if row.event_kind == "updated" else None,
            })
    more = len(data) > limit
    return {"data": data[:limit], "next_cursor": encode_cursor(*keys[limit - 1]) if more else None}
