"""Storing what a poll fetched, deciding it for the target, and reading it back.

`ingest` is the heart of the poll's storing transaction. Every fetched item, whatever
its source, is stored once by (source, external id) and decided by the target's match
rule (alerts.matching, reading the fields `match_fields.match_input` gives it):

- matched: linked to the target (`item_targets`) with its terms, evidence sentence,
  evidence field and highlight spans; a NEW link gets a `new` event for the target.
- rejected: recorded in `item_rejections` for the target: never linked, so never in the
  items API, the pages or a digest, but kept so `rematch` can decide it again.

A pair decided before keeps its decision, with one exception: a rejected item that now
matches (its upstream text changed) is linked and announced like a new one. A matched
item is never unlinked by a poll (a subscriber may already have it, and its trial updates
must keep coming); only `rematch`, run when a target's rule changes, takes links away.

A known trial whose tracked fields (status, phases, results ...) differ from the stored
copy is updated, and every target it is LINKED to (matched) gets an `updated` event with
the old and new values. The stored copy is re-read inside the transaction (and locked on
PostgreSQL), so two processes storing the same change make one event, not two.

`ingest_catalogue` stores what a catalogue-wide poll fetched, each item already decided
against every target in one pass (alerts.polling.sweep): an item some target matched is
stored and linked to those targets with their evidence and `new` events, as above; an
item no target matched is not stored as an item but kept in the unmatched window
(`unmatched_items`, pruned after ALERTS_UNMATCHED_RETENTION_DAYS), so storage grows with
what matched. No rejection is written per target (that would grow with the catalogue):
a target without a decision on an item simply never matched it.

`rematch` applies a target's current rule to the stored items decided for it, both ways,
without refetching and without events: an old item newly matched is linked where it
stands in the target's history (its first-seen time), so no digest takes it for news.
It also back-fills the target from the kept window: the records of the unmatched window
and the stored items first seen since the window's start that the target never decided.
Those it matches are linked, also without events: they are as old as the window, and
the rule for old items holds (a digest announces what is new since the last one, and
a new target's subscribers find the back-filled items on its page and in the API).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy.orm import Session

from alerts.errors import Unprocessable
from alerts.items import repository
from alerts.items.match_fields import match_input
from alerts.items.schemas import ItemPage, StoredJSON, parsed
from alerts.matching import Match, TargetRule, compile_rule
from alerts.pagination import decode_cursor, encode_cursor, parse_moment
from alerts.sources.base import FetchedItem, ItemKind, SourceName
from alerts.sources.trial_fields import TRACKED_FIELD_LABELS
from alerts.targets.service import get_target_by_slug
from db.models import Item, UnmatchedItem

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
#: Items a rematch loads and decides at a time.
REMATCH_CHUNK = 500


@dataclass(frozen=True)
class IngestCounts:
    new: int  # items newly linked to the target (one `new` event each)
    updated: int  # known trials whose tracked fields changed
    rejected: int = 0  # items the target's rule rejected in this batch


def ingest(
    session: Session,
    *,
    source: SourceName,
    target_id: int,
    match_terms: Mapping[str, Any],
    fetched: Iterable[FetchedItem],
    now: datetime,
) -> IngestCounts:
    """Store a poll's items and the target's decisions (see the module docstring).
    `match_terms` is the target's rule definition. Flushes only."""
    rule = compile_rule(match_terms)
    kept: dict[str, tuple[FetchedItem, Match]] = {}
    for item in fetched:
        if item.external_id not in kept:
            kept[item.external_id] = (item, rule.match(match_input(item)))
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
    repository.forget_unmatched(session, source, ordered)  # an item now, not in the window
    ids = repository.item_ids(session, source, ordered)
    updates = _trial_updates(session, source, {eid: item for eid, (item, _m) in kept.items()},
                             now)

    before = repository.decisions(session, target_id, [ids[eid] for eid in ordered])
    links: list[dict[str, Any]] = []
    rejections: list[dict[str, Any]] = []
    for external_id in ordered:
        item_id, decision = ids[external_id], kept[external_id][1]
        matched_before = before[item_id][0] if item_id in before else None
        if decision.matched and not matched_before:
            links.append(link_row(item_id, target_id, decision, first_seen=now, now=now))
        elif not decision.matched and matched_before is None:
            rejections.append(
                {"item_id": item_id, "target_id": target_id, "created_at": now, "decided_at": now}
            )
    # A rejected item that now matches moves to the links (and is announced: its text
    # changed upstream, since a changed rule is applied by `rematch` at once).
    repository.unreject(session, target_id, [row["item_id"] for row in links
                                             if row["item_id"] in before])
    newly_linked = repository.link_items(session, links)
    repository.reject_items(session, rejections)

    _add_events(session, {(item_id, target_id) for item_id in newly_linked}, updates, now)
    rejected = sum(1 for _item, decision in kept.values() if not decision.matched)
    return IngestCounts(new=len(newly_linked), updated=len(updates), rejected=rejected)


def _add_events(
    session: Session,
    newly_linked: set[tuple[int, int]],
    updates: Mapping[int, list[dict[str, Any]]],
    now: datetime,
) -> None:
    """A `new` event per newly linked (item, target) pair, and an `updated` event for
    every target linked to a trial whose tracked fields changed. Flushes."""
    events: list[dict[str, Any]] = [
        {"item_id": item_id, "target_id": target_id, "kind": "new", "changes": [],
         "created_at": now}
        for item_id, target_id in sorted(newly_linked)
    ]
    for item_id, linked_target in repository.linked_targets(session, sorted(updates)):
        if (item_id, linked_target) in newly_linked:
            continue  # new for this target: its `new` event already says everything
        events.append(
            {"item_id": item_id, "target_id": linked_target, "kind": "updated",
             "changes": updates[item_id], "created_at": now}
        )
    repository.add_events(session, events)
    session.flush()


@dataclass(frozen=True)
class CatalogueCounts:
    new: int  # (item, target) pairs newly linked (one `new` event each)
    updated: int  # known trials whose tracked fields changed
    unmatched: int  # records no target matched, kept in the unmatched window


def ingest_catalogue(
    session: Session,
    *,
    source: SourceName,
    decided: Iterable[tuple[FetchedItem, Mapping[int, Match]]],
    now: datetime,
) -> CatalogueCounts:
    """Store a catalogue-wide poll's items, each with its matches (target id -> Match,
    the targets whose rules matched it; see the module docstring). Flushes only."""
    kept: dict[str, tuple[FetchedItem, Mapping[int, Match]]] = {}
    for item, matches in decided:
        kept.setdefault(item.external_id, (item, matches))
    if not kept:
        return CatalogueCounts(new=0, updated=0, unmatched=0)
    ordered = sorted(kept)  # external-id order, as every writer (see `ingest`)
    stored = repository.item_ids(session, source, ordered)
    # A record some target matches, or one stored before (its trial updates must reach
    # the targets linked to it), is an item; the rest go to the unmatched window.
    as_items = [eid for eid in ordered if kept[eid][1] or eid in stored]
    unmatched = [eid for eid in ordered if not kept[eid][1] and eid not in stored]
    repository.insert_ignoring_conflicts(
        session, Item, [_item_row(kept[eid][0], now) for eid in as_items if eid not in stored],
        ("source", "external_id"),
    )
    repository.forget_unmatched(session, source, [eid for eid in as_items if eid not in stored])
    repository.keep_unmatched(session, source, [
        {"external_id": eid, "payload": _payload(kept[eid][0]), "seen_at": now}
        for eid in unmatched
    ])
    ids = repository.item_ids(session, source, as_items)
    updates = _trial_updates(session, source, {eid: kept[eid][0] for eid in as_items}, now)

    before = repository.decided_pairs(session, [ids[eid] for eid in as_items])
    links = [
        link_row(ids[eid], target_id, decision, first_seen=now, now=now)
        for eid in as_items
        for target_id, decision in sorted(kept[eid][1].items())
        if not before.get((ids[eid], target_id), False)
    ]
    # As in `ingest`: a rejected pair that now matches changed upstream, and is announced.
    repository.unreject_pairs(session, [(row["item_id"], row["target_id"]) for row in links
                                        if (row["item_id"], row["target_id"]) in before])
    newly_linked = repository.link_pairs(session, links)
    _add_events(session, newly_linked, updates, now)
    return CatalogueCounts(new=len(newly_linked), updated=len(updates), unmatched=len(unmatched))


def link_row(
    item_id: int, target_id: int, decision: Match, *, first_seen: datetime, now: datetime
) -> dict[str, Any]:
    """The `item_targets` row of a matched decision."""
    return {
        "item_id": item_id,
        "target_id": target_id,
        **evidence_values(decision),
        "created_at": first_seen,
        "decided_at": now,
    }


def evidence_values(decision: Match) -> dict[str, Any]:
    return {
        "matched_terms": list(decision.terms),
        "evidence": decision.evidence,
        "evidence_field": decision.field,
        "highlights": [[start, end] for start, end in decision.highlights],
    }


@dataclass(frozen=True)
class RematchCounts:
    kept: int  # matched before and now
    newly_matched: int  # rejected before, linked now (no event: not mailed as new)
    newly_rejected: int  # matched before, unlinked now (out of digests, API and pages)
    still_rejected: int
    #: Of `newly_matched`: back-filled from the kept window (no event either).
    backfilled: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.newly_matched or self.newly_rejected)


def rematch(session: Session, slug: str, *, now: datetime) -> RematchCounts:
    """Decide the target's stored items again with its current rule (see the module
    docstring). NotFound for an unknown slug. Flushes only."""
    target = get_target_by_slug(session, slug)
    return rematch_target(session, target.id, target.match_terms, now=now)


def rematch_target(
    session: Session, target_id: int, match_terms: Mapping[str, Any], *, now: datetime
) -> RematchCounts:
    rule = compile_rule(match_terms)
    kept = newly_matched = newly_rejected = still_rejected = 0
    after_id = 0
    while page := repository.seen_page(session, target_id, after_id=after_id,
                                       limit=REMATCH_CHUNK):
        after_id = page[-1][0].id
        links: list[dict[str, Any]] = []
        refreshed: list[dict[str, Any]] = []
        rejections: list[dict[str, Any]] = []
        for item, matched_before, first_seen in page:
            decision = rule.match(match_input(item))
            if decision.matched and matched_before:
                kept += 1
                refreshed.append({"item_id": item.id, **evidence_values(decision),
                                  "decided_at": now})
            elif decision.matched:
                newly_matched += 1
                links.append(link_row(item.id, target_id, decision, first_seen=first_seen,
                                      now=now))
            elif matched_before:
                newly_rejected += 1
                rejections.append({"item_id": item.id, "target_id": target_id,
                                   "created_at": first_seen, "decided_at": now})
            else:
                still_rejected += 1
        repository.unreject(session, target_id, [row["item_id"] for row in links])
        repository.link_items(session, links)
        repository.unlink(session, target_id, [row["item_id"] for row in rejections])
        repository.reject_items(session, rejections)
        repository.update_links(session, target_id, refreshed)
    session.flush()
    backfilled = _backfill_from_window(session, target_id, rule, now=now)
    return RematchCounts(kept, newly_matched + backfilled, newly_rejected, still_rejected,
                         backfilled)


@dataclass(frozen=True)
class _KeptRecord:
    """An unmatched window's record as the rule reads it (see match_fields.Readable)."""

    source: str
    title: str
    summary: str
    data: Mapping[str, Any]


def _backfill_from_window(
    session: Session, target_id: int, rule: TargetRule, *, now: datetime
) -> int:
    """Link the target to what the kept window holds that its rule matches, without
    events (see the module docstring); how many. The window starts at its oldest
    unmatched record (the prune keeps ALERTS_UNMATCHED_RETENTION_DAYS); an empty window
    back-fills nothing."""
    since = repository.window_start(session)
    if since is None:
        return 0
    linked = 0
    after_id = 0
    while items := repository.undecided_page(session, target_id, since=since,
                                             after_id=after_id, limit=REMATCH_CHUNK):
        after_id = items[-1].id
        links = [
            link_row(item.id, target_id, decision, first_seen=item.first_seen_at, now=now)
            for item in items
            if (decision := rule.match(match_input(item))).matched
        ]
        linked += len(repository.link_items(session, links))
    after_id = 0
    while records := repository.unmatched_page(session, after_id=after_id,
                                                limit=REMATCH_CHUNK):
        after_id = records[-1].id
        matched = [
            (record, decision)
            for record in records
            if (decision := rule.match(match_input(_kept_record(record)))).matched
        ]
        linked += _promote(session, target_id, matched, now=now)
    session.flush()
    return linked


def _kept_record(record: UnmatchedItem) -> _KeptRecord:
    payload = record.payload
    return _KeptRecord(record.source, payload.get("title") or "", payload.get("summary") or "",
                       payload.get("data") or {})


def _promote(
    session: Session, target_id: int, matched: Sequence[tuple[UnmatchedItem, Match]], *,
    now: datetime,
) -> int:
    """Store window records the target matched as items first seen when the window saw
    them, linked to the target; out of the window. How many were linked."""
    by_source: dict[str, list[tuple[UnmatchedItem, Match]]] = {}
    for record, decision in matched:
        by_source.setdefault(record.source, []).append((record, decision))
    linked = 0
    for source, pairs in sorted(by_source.items()):
        repository.insert_ignoring_conflicts(
            session, Item, [_stored_row(record) for record, _d in pairs],
            ("source", "external_id"),
        )
        ids = repository.item_ids(session, source, [record.external_id for record, _d in pairs])
        links = [
            link_row(ids[record.external_id], target_id, decision, first_seen=record.seen_at,
                     now=now)
            for record, decision in pairs
        ]
        linked += len(repository.link_items(session, links))
        repository.forget_unmatched(session, source, [record.external_id for record, _d in pairs])
    return linked


def _payload(item: FetchedItem) -> dict[str, Any]:
    """What the unmatched window keeps of a record: its `items` row but the first-seen
    time (the window's `seen_at`), as JSON."""
    row = _item_row(item, now=datetime.min)
    del row["first_seen_at"], row["source"], row["external_id"]
    return jsonable(row)


def _stored_row(record: UnmatchedItem) -> dict[str, Any]:
    """The `items` row of a window record (the inverse of `_payload`)."""
    payload = record.payload
    published = payload.get("published_at")
    return {
        "source": record.source,
        "external_id": record.external_id,
        "kind": payload["kind"],
        "title": payload["title"],
        "url": payload["url"],
        "summary": payload.get("summary") or "",
        "published_at": datetime.fromisoformat(published) if published else None,
        "first_seen_at": record.seen_at,
        "data": payload.get("data") or {},
    }


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
    kept: Mapping[str, FetchedItem],
    now: datetime,
) -> dict[int, list[dict[str, Any]]]:
    """Update the known items whose tracked fields changed; item id -> changes."""
    tracked_ids = sorted(eid for eid, item in kept.items() if item.tracked)
    if not tracked_ids:
        return {}
    changes_by_item: dict[int, list[dict[str, Any]]] = {}
    rows: list[dict[str, Any]] = []
    for item_id, external_id, stored_data in repository.lock_item_data(
        session, source, tracked_ids
    ):
        item = kept[external_id]
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
    """An adapter's KnownIds: which of these ids are stored and already decided for the
    target (matched or rejected). Only those may go unfetched: a record stored for another
    target still has to come back, so that this target's rule decides it too."""
    return repository.known_external_ids(session, str(source), target_id, external_ids)


def stored_or_kept(
    session: Session, source: SourceName, external_ids: Sequence[str]
) -> set[str]:
    """The catalogue-wide poll's KnownIds: which of these ids are stored as items or kept
    in the unmatched window (both were decided against the whole catalogue)."""
    return repository.stored_or_kept(session, str(source), external_ids)


def prune_unmatched(session: Session, *, before: datetime) -> int:
    """Forget the unmatched window's records last seen before `before`; how many."""
    return repository.prune_unmatched(session, before=before)


def parse_since(value: str) -> datetime:
    """An ISO-8601 datetime (an offset or Z; naive means UTC) or date (midnight UTC)."""
    moment = parse_moment(value, date_only_ok=True)
    if moment is None:
        raise Unprocessable(
            "since", "must be an ISO-8601 date or datetime between years 1 and 9999, e.g. "
            "2026-06-01 or 2026-06-01T08:00:00Z", location="query",
        )
    return moment


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
    `schemas.page_json` (datetimes; `matched_terms`, `highlights` and `data` as
    `StoredJSON`). NotFound for an unknown slug.

    One statement whatever the page holds (`repository.target_items_query`); the
    target is looked up on its own only when the page is empty or the cursor bad, to
    tell an unknown target (404) apart."""
    try:
        after = decode_cursor(cursor, datetime, int) if cursor else None
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
                "evidence": row.evidence,
                "evidence_field": row.evidence_field,
                "highlights": StoredJSON(row.highlights),
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


def target_items(
    session: Session, slug: str, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
) -> ItemPage:
    """`list_target_items` as the documented model, for pages and feeds that read items
    rather than send them on as JSON."""
    return ItemPage.model_validate(parsed(list_target_items(session, slug, limit=limit,
                                                            cursor=cursor)))
