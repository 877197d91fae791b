"""Bulk statements on items, their target links and events.

A poll can bring thousands of items, so writes are multi-row statements in chunks, never a
round trip per row. Inserts are insert-or-ignore (`ON CONFLICT DO NOTHING`, the dialect's
own construct), so two processes storing the same upstream record end up with one row.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Integer,
    Row,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db.base import Base
from db.models import Item, ItemEvent, ItemRejection, ItemTarget, Target, UnmatchedItem
from db.types import UTCDateTime

#: Rows per multi-row statement: ~10 columns each keeps a statement far below SQLite's
#: 32,766 and PostgreSQL's 65,535 bound parameters.
CHUNK = 500

T = TypeVar("T")


def chunked(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def insert_ignoring_conflicts(
    session: Session,
    model: type[Base],
    rows: Sequence[Mapping[str, Any]],
    conflict_columns: Sequence[str],
    returning: Any = None,
) -> list[Any]:
    """Insert `rows`, skipping those that collide on `conflict_columns`; with `returning`
    (a column), the values of the rows actually inserted (only those: a row another
    transaction inserted first is not returned, which is what makes "newly linked" exact
    under concurrency).

    One statement compiled once and executed for all rows: SQLAlchemy batches such an
    executemany into multi-row INSERTs ("insertmanyvalues"), RETURNING included."""
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        make_insert: Any = postgresql.insert
    elif dialect == "sqlite":
        make_insert = sqlite.insert
    else:  # pragma: no cover - the settings refuse other databases
        raise RuntimeError(f"insert-or-ignore is not implemented for {dialect}")
    table = model.__table__
    statement = make_insert(table).on_conflict_do_nothing(index_elements=list(conflict_columns))
    connection = session.connection()
    if returning is None:
        connection.execute(statement, list(rows))
        return []
    return list(connection.execute(statement.returning(returning), list(rows)).scalars())


def known_external_ids(
    session: Session, source: str, target_id: int, external_ids: Sequence[str]
) -> set[str]:
    """Which of `external_ids` are stored for `source` AND decided for the target
    (matched or rejected)."""
    known: set[str] = set()
    for chunk in chunked(list(dict.fromkeys(external_ids))):
        for decisions in (ItemTarget, ItemRejection):
            known.update(
                session.scalars(
                    select(Item.external_id)
                    .join(decisions, decisions.item_id == Item.id)
                    .where(
                        Item.source == source,
                        Item.external_id.in_(chunk),
                        decisions.target_id == target_id,
                    )
                )
            )
    return known


def item_ids(session: Session, source: str, external_ids: Sequence[str]) -> dict[str, int]:
    """external id -> item id, for the stored ones among `external_ids`."""
    found: dict[str, int] = {}
    for chunk in chunked(external_ids):
        rows = session.execute(
            select(Item.external_id, Item.id).where(
                Item.source == source, Item.external_id.in_(chunk)
            )
        )
        found.update({external_id: item_id for external_id, item_id in rows})
    return found


def lock_item_data(
    session: Session, source: str, external_ids: Sequence[str]
) -> list[tuple[int, str, dict[str, Any]]]:
    """(id, external id, data) of the stored items, read for update: on PostgreSQL the
    rows stay locked until the transaction ends, so a concurrent writer comparing the
    same trial waits and then sees this transaction's result. (SQLite serialises writers
    at BEGIN IMMEDIATE, so the clause is not needed there, and SQLAlchemy omits it.)"""
    found: list[tuple[int, str, dict[str, Any]]] = []
    for chunk in chunked(external_ids):
        rows = session.execute(
            select(Item.id, Item.external_id, Item.data)
            .where(Item.source == source, Item.external_id.in_(chunk))
            .order_by(Item.id)
            .with_for_update()
        )
        found.extend((item_id, external_id, data) for item_id, external_id, data in rows)
    return found


def update_items(session: Session, changes: Sequence[Mapping[str, Any]]) -> None:
    """Bulk UPDATE by primary key; each mapping holds "id" and the new values."""
    if changes:
        session.execute(update(Item), list(changes))


def link_items(session: Session, rows: Sequence[Mapping[str, Any]]) -> set[int]:
    """Insert ItemTarget rows (item_id, target_id, matched_terms, evidence, evidence_field,
    highlights, created_at, decided_at); the item ids of the links that are new."""
    ordered = sorted(rows, key=lambda row: row["item_id"])
    return set(
        insert_ignoring_conflicts(
            session, ItemTarget, ordered, ("item_id", "target_id"), returning=ItemTarget.item_id
        )
    )


def reject_items(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ItemRejection rows (item_id, target_id, created_at, decided_at), keeping
    the pairs already rejected as they are."""
    insert_ignoring_conflicts(
        session, ItemRejection, sorted(rows, key=lambda row: row["item_id"]),
        ("item_id", "target_id"),
    )


def decisions(
    session: Session, target_id: int, item_ids: Sequence[int]
) -> dict[int, tuple[bool, datetime]]:
    """item id -> (matched, first seen for the target) of the pairs already decided."""
    found: dict[int, tuple[bool, datetime]] = {}
    for chunk in chunked(sorted(set(item_ids))):
        for table, matched in ((ItemRejection, False), (ItemTarget, True)):
            rows = session.execute(
                select(table.item_id, table.created_at)
                .where(table.target_id == target_id, table.item_id.in_(chunk))
            )
            # A link wins over a rejection (it is what readers show).
            found.update({item_id: (matched, at) for item_id, at in rows})
    return found


def unlink(session: Session, target_id: int, item_ids: Sequence[int]) -> None:
    """Delete these items' links to the target (their matched decisions)."""
    _delete_pairs(session, ItemTarget, target_id, item_ids)


def unreject(session: Session, target_id: int, item_ids: Sequence[int]) -> None:
    """Delete these items' rejections for the target."""
    _delete_pairs(session, ItemRejection, target_id, item_ids)


def _delete_pairs(
    session: Session, table: type[ItemTarget] | type[ItemRejection], target_id: int,
    item_ids: Sequence[int],
) -> None:
    for chunk in chunked(sorted(item_ids)):
        session.execute(
            delete(table)
            .where(table.target_id == target_id, table.item_id.in_(chunk))
            .execution_options(synchronize_session=False)
        )


def update_links(session: Session, target_id: int, rows: Sequence[Mapping[str, Any]]) -> None:
    """Bulk UPDATE of links by (item_id); each mapping holds item_id and the new values."""
    for row in rows:
        values = {key: value for key, value in row.items() if key != "item_id"}
        session.execute(
            update(ItemTarget)
            .where(ItemTarget.target_id == target_id, ItemTarget.item_id == row["item_id"])
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def seen_page(
    session: Session, target_id: int, *, after_id: int, limit: int
) -> list[tuple[Item, bool, datetime]]:
    """(item, matched, first seen for the target) of the items decided for the target,
    by item id after `after_id`: the stored items a rematch decides again."""
    pairs: list[tuple[int, bool, datetime]] = []
    for table, matched in ((ItemTarget, True), (ItemRejection, False)):
        rows = session.execute(
            select(table.item_id, table.created_at)
            .where(table.target_id == target_id, table.item_id > after_id)
            .order_by(table.item_id)
            .limit(limit)
        )
        pairs.extend((item_id, matched, at) for item_id, at in rows)
    seen: dict[int, tuple[bool, datetime]] = {}
    for item_id, matched, at in sorted(pairs, key=lambda pair: (pair[0], not pair[1])):
        seen.setdefault(item_id, (matched, at))
    page = sorted(seen)[:limit]
    items = {
        item.id: item
        for item in session.scalars(select(Item).where(Item.id.in_(page)))
    }
    return [(items[item_id], *seen[item_id]) for item_id in page if item_id in items]


def linked_targets(session: Session, item_ids: Sequence[int]) -> list[tuple[int, int]]:
    """(item id, target id) of every link of these items."""
    pairs: list[tuple[int, int]] = []
    for chunk in chunked(item_ids):
        rows = session.execute(
            select(ItemTarget.item_id, ItemTarget.target_id)
            .where(ItemTarget.item_id.in_(chunk))
            .order_by(ItemTarget.item_id, ItemTarget.target_id)
        )
        pairs.extend((item_id, target_id) for item_id, target_id in rows)
    return pairs


def add_events(session: Session, events: Sequence[Mapping[str, Any]]) -> None:
    """Insert ItemEvent rows (item_id, target_id, kind, changes, created_at) in bulk."""
    for chunk in chunked(events):
        session.execute(insert(ItemEvent), list(chunk))


def target_items_query(
    slug: str,
    *,
    since: datetime | None,
    kind: str | None,
    after: tuple[datetime, int] | None,
    limit: int,
) -> tuple[Select, dict[str, Any]]:  # type: ignore[type-arg]
    """(statement, parameters) of one page of the target `slug`'s items, newest link
    first, then by item id, each trial followed by its events for the target, oldest
    first (one row per event; one row with no event columns for an item without).
    `after` is the sort key of the last item of the previous page."""
    params = target_items_params(slug, since=since, kind=kind, after=after)
    params["limit"] = limit
    statement = _target_items_statement(since is not None, kind is not None, after is not None)
    return statement, params


def target_items_params(
    slug: str,
    *,
    since: datetime | None,
    kind: str | None,
    after: tuple[datetime, int] | None,
) -> dict[str, Any]:
    """The bound parameters of the page statements for the filters in use (the same
    names in `target_items_query` and the PostgreSQL statements below)."""
    params: dict[str, Any] = {"slug": slug}
    if since is not None:
        params["since"] = since
    if kind is not None:
        params["kind"] = kind
    if after is not None:
        params["after_at"], params["after_id"] = after
    return params


@functools.cache
def _target_items_statement(since: bool, kind: bool, after: bool) -> Select:  # type: ignore[type-arg]
    """The statement of `target_items_query` for the filters in use, built once (building
    it cost as much as running it); values come as parameters.

    One statement per page, whatever it holds. Keyset pagination: the page's ORDER BY is
    exactly ix_item_targets_target_created_item (target_id, created_at, item_id), read
    backwards, and `after` is a row comparison on the same columns, so a page deep in the
    list costs what the first one does: the index is entered at the key and read for
    `limit` rows (no OFFSET, no sort, no COUNT); the events are then looked up by item.
    The target is resolved inside; plain columns, not entities, because a page is only
    read to be shown, and the JSON columns as their text (`matched_terms`, `highlights`,
    `data`), which the response embeds as they are: decoding them only to encode them
    again was a third of the request's time."""
    target_id = select(Target.id).where(Target.slug == bindparam("slug")).scalar_subquery()
    page = (
        select(
            ItemTarget.target_id,
            ItemTarget.created_at.label("linked_at"),
            cast(ItemTarget.matched_terms, Text).label("matched_terms"),
            ItemTarget.evidence,
            ItemTarget.evidence_field,
            cast(ItemTarget.highlights, Text).label("highlights"),
            Item.id,
            Item.source,
            Item.external_id,
            Item.kind,
            Item.title,
            Item.url,
            Item.summary,
            Item.published_at,
            cast(Item.data, Text).label("data"),
        )
        .join(Item, Item.id == ItemTarget.item_id)
        .where(ItemTarget.target_id == target_id)
    )
    if since:
        page = page.where(ItemTarget.created_at >= bindparam("since", type_=UTCDateTime()))
    if kind:
        page = page.where(Item.kind == bindparam("kind"))
    if after:
        page = page.where(
            tuple_(ItemTarget.created_at, ItemTarget.item_id)
            < tuple_(
                bindparam("after_at", type_=UTCDateTime()),
                bindparam("after_id", type_=BigInteger()),
            )
        )
    # The limit is written into the SQL: as a parameter, PostgreSQL's generic plan for the
    # prepared statement (psycopg prepares it after a few runs) assumes 10% of the table
    # and starts parallel workers, ~15 ms of process start for a 0.3 ms read.
    items = (
        page.order_by(ItemTarget.created_at.desc(), ItemTarget.item_id.desc())
        .limit(bindparam("limit", type_=Integer(), literal_execute=True))
        .subquery("page")
    )
    return (
        select(
            items,
            ItemEvent.kind.label("event_kind"),
            ItemEvent.created_at.label("event_at"),
            ItemEvent.changes.label("event_changes"),
        )
        .outerjoin(
            ItemEvent,
            and_(
                items.c.kind == "trial",
                ItemEvent.item_id == items.c.id,
                ItemEvent.target_id == items.c.target_id,
            ),
        )
        .order_by(
            items.c.linked_at.desc(), items.c.id.desc(), ItemEvent.created_at, ItemEvent.id
        )
    )


def target_items_page(
    session: Session,
    slug: str,
    *,
    since: datetime | None,
    kind: str | None,
    after: tuple[datetime, int] | None,
    limit: int,
) -> Sequence[Row]:  # type: ignore[type-arg]
    """The rows of `target_items_query` (run on the session's connection: a Core
    statement needs none of the ORM's result machinery)."""
    statement, params = target_items_query(slug, since=since, kind=kind, after=after,
                                           limit=limit)
    return session.connection().execute(statement, params).all()


def _utc_text(column: str) -> str:
    """SQL for the timestamptz `column` as the JSON text pydantic writes for a UTC
    datetime: `2024-01-01T08:00:00Z`, with `.ffffff` only when there are microseconds."""
    local = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"to_char({local}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE "
        f"WHEN date_part('microseconds', {column})::bigint %% 1000000 = 0 THEN 'Z' "
        f"ELSE to_char({local}, '.US\"Z\"') END"
    )


def _page_cte(since: bool, kind: bool, after: bool, limit: int, *, content: bool) -> str:
    """The `target` and `page` CTEs of the PostgreSQL page statements: the same rows,
    order and keyset as `_target_items_statement` (read on
    ix_item_targets_target_created_item), `limit` + 1 of them numbered by `n`, with the
    row versions (`xmin`) the fingerprint is made of, and with `content` the columns
    the page shows."""
    filters = ["it.target_id = (SELECT id FROM target)"]
    if since:
        filters.append("it.created_at >= %(since)s")
    if kind:
        filters.append("i.kind = %(kind)s")
    if after:
        filters.append("(it.created_at, it.item_id) < (%(after_at)s, %(after_id)s)")
    return (
        "WITH target AS (SELECT id FROM targets WHERE slug = %(slug)s), "
        "page AS ("
        "SELECT it.id AS link_id, it.xmin AS link_version, i.xmin AS item_version, "
        "it.target_id, it.created_at AS linked_at, it.item_id AS id, i.kind, "
        + (
            "it.matched_terms, it.evidence, it.evidence_field, it.highlights, i.source, "
            "i.external_id, i.title, i.url, i.summary, i.published_at, i.data, "
            if content else ""
        )
        + "row_number() OVER (ORDER BY it.created_at DESC, it.item_id DESC) AS n "
        "FROM item_targets AS it JOIN items AS i ON i.id = it.item_id "
        f"WHERE {' AND '.join(filters)} "
        f"ORDER BY it.created_at DESC, it.item_id DESC LIMIT {int(limit) + 1}) "
    )


#: Which row versions make the page: for each of its `limit` + 1 links, the link's and
#: the item's id and version, and for trials the id and version of each of its events
#: for the target. Any write that can change the page's JSON (a link stored, moved or
#: removed; an item or an event stored, updated or deleted; the target replaced)
#: changes this list: an UPDATE writes a new row version with the writing
#: transaction's id as `xmin`.
_FINGERPRINT = (
    "coalesce(md5(string_agg(concat_ws(' ', page.target_id, page.link_id, "
    "page.link_version, page.id, page.item_version, CASE WHEN page.kind = 'trial' THEN "
    "(SELECT string_agg(e.id || ' ' || e.xmin, ' ' ORDER BY e.id) FROM item_events AS e "
    "WHERE e.item_id = page.id AND e.target_id = page.target_id) END), "
    "',' ORDER BY page.n)), '') AS fingerprint"
)


@functools.cache
def target_items_fingerprint_sql(since: bool, kind: bool, after: bool, limit: int) -> str:
    """PostgreSQL only: the fingerprint `target_items_json_sql` returns next to the page,
    without the page (about a quarter of its cost): one row of `target_id` (NULL for an
    unknown slug) and `fingerprint`. Equal fingerprints mean an equal page: a page
    kept with its fingerprint can be answered again while the two match."""
    return (
        _page_cte(since, kind, after, limit, content=False)
        + f"SELECT (SELECT id FROM target) AS target_id, {_FINGERPRINT} FROM page"
    )


@functools.cache
def target_items_json_sql(since: bool, kind: bool, after: bool, limit: int) -> str:
    """PostgreSQL only: one page of `target_items_query` written as JSON by the server.

    The same rows and order as `_target_items_statement` (each trial's events read by
    ix_item_events_item_id), but PostgreSQL writes the page's `data` array itself, in
    the shape and datetime format of `ItemPage` (`schemas.ItemOut`), so the process only
    passes bytes on: no row, column or value reaches Python. One row comes back:

    - `target_id`: the target's id, NULL when the slug is unknown (404);
    - `data`: the JSON array of at most `limit` items;
    - `last_at`, `last_id`: the sort key of item number `limit` when a further item
      exists (the next cursor), else NULL;
    - `fingerprint`: see `target_items_fingerprint_sql` (same statement, same snapshot
      as the page).

    Parameters (psycopg's named style): slug, and since / kind / after_at, after_id for
    the filters in use. `limit` is written into the SQL, as in the generic statement,
    so a prepared statement's plan knows it reads a few rows."""
    changes = (
        "coalesce((SELECT json_agg(json_build_object("
        "'field', c.value -> 'field', 'old', c.value -> 'old', 'new', c.value -> 'new') "
        "ORDER BY c.ordinality) "
        "FROM jsonb_array_elements(e.changes) WITH ORDINALITY AS c), '[]'::json)"
    )
    events = (
        "coalesce((SELECT json_agg(json_build_object("
        f"'kind', e.kind, 'at', {_utc_text('e.created_at')}, "
        f"'changes', CASE WHEN e.kind = 'updated' THEN {changes} END) "
        "ORDER BY e.created_at, e.id) "
        "FROM item_events AS e "
        "WHERE e.item_id = page.id AND e.target_id = page.target_id), '[]'::json)"
    )
    item = (
        "json_build_object("
        "'source', page.source, 'external_id', page.external_id, 'kind', page.kind, "
        "'title', page.title, 'url', page.url, 'summary', page.summary, "
        f"'published_at', {_utc_text('page.published_at')}, "
        f"'first_seen_at', {_utc_text('page.linked_at')}, "
        "'matched_terms', page.matched_terms, 'evidence', page.evidence, "
        "'evidence_field', page.evidence_field, 'highlights', page.highlights, "
        "'data', page.data, "
        f"'events', CASE WHEN page.kind = 'trial' THEN {events} END)"
    )
    further = f"EXISTS (SELECT 1 FROM page AS further WHERE further.n = {int(limit) + 1})"
    return (
        _page_cte(since, kind, after, limit, content=True)
        + "SELECT (SELECT id FROM target) AS target_id, "
        f"coalesce(json_agg({item} ORDER BY page.n) FILTER (WHERE page.n <= {int(limit)}), "
        "'[]'::json)::text AS data, "
        f"max(page.linked_at) FILTER (WHERE page.n = {int(limit)} AND {further}) AS last_at, "
        f"max(page.id) FILTER (WHERE page.n = {int(limit)} AND {further}) AS last_id, "
        f"{_FINGERPRINT} FROM page"
    )


# -- the catalogue-wide poll: links of many targets, and the window of unmatched records --


def link_pairs(session: Session, rows: Sequence[Mapping[str, Any]]) -> set[tuple[int, int]]:
    """`link_items` for rows of many targets: the (item id, target id) pairs newly linked
    (a pair another transaction linked first is not among them)."""
    ordered = sorted(rows, key=lambda row: (row["item_id"], row["target_id"]))
    link_ids = insert_ignoring_conflicts(
        session, ItemTarget, ordered, ("item_id", "target_id"), returning=ItemTarget.id
    )
    pairs: set[tuple[int, int]] = set()
    for chunk in chunked(sorted(link_ids)):
        rows_found = session.execute(
            select(ItemTarget.item_id, ItemTarget.target_id).where(ItemTarget.id.in_(chunk))
        )
        pairs.update((item_id, target_id) for item_id, target_id in rows_found)
    return pairs


def decided_pairs(session: Session, item_ids: Sequence[int]) -> dict[tuple[int, int], bool]:
    """(item id, target id) -> matched, of every decision on these items."""
    found: dict[tuple[int, int], bool] = {}
    for chunk in chunked(sorted(set(item_ids))):
        for table, matched in ((ItemRejection, False), (ItemTarget, True)):
            rows = session.execute(
                select(table.item_id, table.target_id).where(table.item_id.in_(chunk))
            )
            found.update({(item_id, target_id): matched for item_id, target_id in rows})
    return found


def unreject_pairs(session: Session, pairs: Sequence[tuple[int, int]]) -> None:
    """Delete the rejections of these (item id, target id) pairs."""
    by_target: dict[int, list[int]] = {}
    for item_id, target_id in pairs:
        by_target.setdefault(target_id, []).append(item_id)
    for target_id, ids in sorted(by_target.items()):
        unreject(session, target_id, ids)


def stored_or_kept(session: Session, source: str, external_ids: Sequence[str]) -> set[str]:
    """Which of `external_ids` are stored as items or kept in the unmatched window."""
    found: set[str] = set()
    for chunk in chunked(list(dict.fromkeys(external_ids))):
        for model in (Item, UnmatchedItem):
            found.update(session.scalars(
                select(model.external_id).where(
                    model.source == source, model.external_id.in_(chunk)
                )
            ))
    return found


def keep_unmatched(session: Session, source: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Put records (external_id, payload, seen_at) into the unmatched window, replacing
    an older copy of the same record."""
    ordered = sorted(rows, key=lambda row: row["external_id"])
    for chunk in chunked(ordered):
        session.execute(
            delete(UnmatchedItem)
            .where(UnmatchedItem.source == source,
                   UnmatchedItem.external_id.in_([row["external_id"] for row in chunk]))
            .execution_options(synchronize_session=False)
        )
        session.execute(insert(UnmatchedItem), [{"source": source, **row} for row in chunk])


def forget_unmatched(session: Session, source: str, external_ids: Sequence[str]) -> None:
    """Take records out of the unmatched window (they are items now)."""
    for chunk in chunked(sorted(external_ids)):
        session.execute(
            delete(UnmatchedItem)
            .where(UnmatchedItem.source == source, UnmatchedItem.external_id.in_(chunk))
            .execution_options(synchronize_session=False)
        )


def prune_unmatched(session: Session, *, before: datetime) -> int:
    """Delete the unmatched records last seen before `before`; how many."""
    result = session.execute(
        delete(UnmatchedItem).where(UnmatchedItem.seen_at < before)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def unmatched_page(session: Session, *, after_id: int, limit: int) -> list[UnmatchedItem]:
    """The unmatched window by id after `after_id`."""
    return list(session.scalars(
        select(UnmatchedItem).where(UnmatchedItem.id > after_id)
        .order_by(UnmatchedItem.id).limit(limit)
    ))


def window_start(session: Session) -> datetime | None:
    """When the unmatched window starts: its oldest record (None when it is empty)."""
    return session.scalar(select(func.min(UnmatchedItem.seen_at)))


def undecided_page(
    session: Session, target_id: int, *, since: datetime, after_id: int, limit: int
) -> list[Item]:
    """Stored items first seen at or after `since` that the target has no decision on,
    by id after `after_id`."""
    decided = [
        select(table.item_id).where(table.target_id == target_id, table.item_id == Item.id)
        for table in (ItemTarget, ItemRejection)
    ]
    return list(session.scalars(
        select(Item)
        .where(Item.first_seen_at >= since, Item.id > after_id,
               ~decided[0].exists(), ~decided[1].exists())
        .order_by(Item.id).limit(limit)
    ))
