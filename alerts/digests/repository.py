"""The digest queries: which alerts are due, which events they have not had yet, the
rows a plan writes, the leases that hand pending digests to one sender, and the data a
digest email shows. Nothing here commits.

Hot paths (planning and sending ten thousand digests) use Core statements on the
tables, multi-row inserts and one query per chunk for each kind of row, never a round
trip per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import String, Table, and_, bindparam, case, exists, func, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from alerts.digests.compose import Section, section_of
from db import leases
from db.models import (
    Alert,
    Digest,
    DigestAlert,
    DigestEntry,
    Item,
    ItemEvent,
    ItemTarget,
    SourceState,
    Subscriber,
    Target,
)
from db.statuses import AddressStatus, AlertStatus, DigestStatus

T = TypeVar("T")

#: Ids per IN (...) list and rows per multi-row insert: far below SQLite's 32,766 and
#: PostgreSQL's 65,535 bound parameters.
CHUNK = 900

PENDING, SENT, FAILED, EMPTY, CANCELLED = (
    DigestStatus.pending, DigestStatus.sent, DigestStatus.failed, DigestStatus.empty,
    DigestStatus.cancelled,
)

digests_t = cast(Table, Digest.__table__)
digest_alerts_t = cast(Table, DigestAlert.__table__)
entries_t = cast(Table, DigestEntry.__table__)


def chunked(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# --- planning -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DueAlert:
    """An active alert with what planning needs to know about it."""

    alert_id: int
    subscriber_id: int
    target_id: int
    target_name: str
    frequency: str
    weekday: str
    send_hour: int
    timezone: str
    max_items: int
    send_when_empty: bool
    activated_at: datetime


def next_subscriber_ids(
    session: Session, *, after: int, limit: int, frequency: str | None
) -> list[int]:
    """The next `limit` subscribers (by id, after `after`) with an active alert: planning
    walks subscribers in keyset order, one chunk per transaction, so it never holds a
    cursor open across commits and its memory does not grow with the subscriber count.
    The walk goes along the subscribers' primary key and probes each one's alerts, so a
    chunk costs the same at the start and at the end of the table."""
    active = select(Alert.id).where(
        Alert.subscriber_id == Subscriber.id,
        Alert.status == AlertStatus.active,
        Alert.activated_at.is_not(None),
    )
    if frequency is not None:
        active = active.where(Alert.frequency == frequency)
    statement = (
        select(Subscriber.id)
        .where(Subscriber.id > after, Subscriber.mail_status != AddressStatus.bounced,
               active.exists())
        .order_by(Subscriber.id)
        .limit(limit)
    )
    return list(session.scalars(statement))


def active_alerts(
    session: Session, subscriber_ids: Sequence[int], frequency: str | None
) -> list[DueAlert]:
    """The active alerts of these subscribers. Selected by subscriber only, and filtered
    here: a condition on `status` would let SQLite walk the status index (every active
    alert) instead of the few rows of these subscribers."""
    statement = (
        select(
            Alert.id, Alert.subscriber_id, Alert.target_id, Target.name, Alert.frequency,
            Alert.weekday, Alert.send_hour, Alert.timezone, Alert.max_items,
            Alert.send_when_empty, Alert.activated_at, Alert.status,
        )
        .join(Target, Target.id == Alert.target_id)
        .where(Alert.subscriber_id.in_(subscriber_ids))
        .order_by(Alert.subscriber_id, Alert.id)
    )
    # The columns are DueAlert's fields in order, then the status (plain tuples: the
    # rows' named access costs more than building the alert).
    return [
        DueAlert(*row[:11])
        for row in cast(list[Any], session.execute(statement).all())
        if row[11] == AlertStatus.active and row[10] is not None
        and (frequency is None or row[4] == frequency)
    ]


def planned_keys(session: Session, keys: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in chunked(keys):
        found.update(session.scalars(select(Digest.key).where(Digest.key.in_(chunk))))
    return found


def last_slot_at(session: Session, alert_ids: Sequence[int]) -> dict[int, datetime]:
    """The slot of each alert's latest planned digest (sent, empty or pending)."""
    found: dict[int, datetime] = {}
    for chunk in chunked(alert_ids):
        statement = (
            select(DigestAlert.alert_id, func.max(Digest.slot_at))
            .join(Digest, Digest.id == DigestAlert.digest_id)
            .where(DigestAlert.alert_id.in_(chunk))
            .group_by(DigestAlert.alert_id)
        )
        found.update({alert_id: at for alert_id, at in session.execute(statement)})
    return found


def sort_moment(section: Section, published_at: datetime | None, created_at: datetime) -> datetime:
    """What "newest first" means: a trial update by when it happened, anything else by
    its publication date when it has one."""
    if section is Section.trial_updates or published_at is None:
        return created_at
    return published_at


# The digest order, computed in SQL so planning ranks and records ten thousand alerts'
# events without a Python round trip per event (compose.order_key is the same order):
# section (new trials, trial updates, publications, news), then newest first (a trial
# update by when it happened, anything else by publication date when it has one), then
# the later event first.
_SECTION = case(
    (and_(Item.kind == "trial", ItemEvent.kind == "updated"), 1),
    (Item.kind == "trial", 0),
    (Item.kind == "publication", 2),
    else_=3,
)
_SORT_AT = case(
    (or_(and_(Item.kind == "trial", ItemEvent.kind == "updated"),
         Item.published_at.is_(None)), ItemEvent.created_at),
    else_=Item.published_at,
)
_RANK = func.row_number().over(
    partition_by=Alert.id, order_by=(_SECTION, _SORT_AT.desc(), ItemEvent.id.desc())
)
SECTIONS: tuple[Section, ...] = tuple(Section)  # index = the SQL section number


def _undelivered(alert_ids: Sequence[int] | None, *, since: datetime, until: datetime) -> Any:
    """The events of each alert's target created at or after the alert's activation (and
    `since`) and at or before `until`, that no digest has delivered to that alert yet.

    The NOT EXISTS on the (alert_id, event_id) unique index is what guarantees nothing
    goes out twice; `since` (see service.SCAN_GRACE) only keeps the scan from growing with
    the target's history. `alert_ids` None: the caller joins what selects the alerts."""
    statement = (
        select(Alert.id.label("alert_id"), ItemEvent.id.label("event_id"),
               _SECTION.label("section"))
        .select_from(Alert)
        .join(ItemEvent, and_(ItemEvent.target_id == Alert.target_id,
                              ItemEvent.created_at >= Alert.activated_at))
        .join(Item, Item.id == ItemEvent.item_id)
        # Only items still matched to the target: one a rematch unlinked is not mailed.
        .join(ItemTarget, and_(ItemTarget.item_id == ItemEvent.item_id,
                               ItemTarget.target_id == ItemEvent.target_id))
        .where(
            ItemEvent.created_at >= since,
            ItemEvent.created_at <= until,
            ~exists().where(DigestEntry.alert_id == Alert.id,
                            DigestEntry.event_id == ItemEvent.id),
        )
    )
    return statement if alert_ids is None else statement.where(Alert.id.in_(alert_ids))


def undelivered_counts(
    session: Session, alert_ids: Sequence[int], *, since: datetime, until: datetime
) -> dict[int, dict[Section, int]]:
    """alert id -> undelivered events per section (alerts with none are left out)."""
    counts: dict[int, dict[Section, int]] = {}
    for chunk in chunked(alert_ids):
        base = _undelivered(chunk, since=since, until=until).subquery()
        statement = select(base.c.alert_id, base.c.section, func.count()).group_by(
            base.c.alert_id, base.c.section
        )
        for alert_id, section, count in session.execute(statement):
            counts.setdefault(alert_id, {})[SECTIONS[section]] = int(count)
    return counts


def undelivered_ranked(
    session: Session, alert_id: int, *, since: datetime, until: datetime
) -> list[tuple[int, bool]]:
    """One alert's undelivered events in digest order: (event id, shown within
    max_items). The preview's selection, the same statement planning records."""
    ranked = (
        _undelivered([alert_id], since=since, until=until)
        .add_columns(_RANK.label("rank"), Alert.max_items.label("max_items"))
        .subquery()
    )
    statement = select(ranked.c.event_id, ranked.c.rank <= ranked.c.max_items).order_by(
        ranked.c.rank
    )
    return [(event_id, bool(shown)) for event_id, shown in session.execute(statement)]


def record_entries(
    session: Session, digest_ids: Sequence[int], *, since: datetime, until: datetime
) -> None:
    """Record, for the freshly planned digests (their DigestAlert rows written), every
    undelivered event of each of their alerts, shown or past max_items, in one
    INSERT ... SELECT: the events never travel through Python."""
    for chunk in chunked(digest_ids):
        ranked = (
            _undelivered(None, since=since, until=until)
            .add_columns(DigestAlert.digest_id.label("digest_id"), _RANK.label("rank"),
                         Alert.max_items.label("max_items"))
            .join(DigestAlert, and_(DigestAlert.alert_id == Alert.id,
                                    DigestAlert.digest_id.in_(chunk)))
            .subquery()
        )
        # ON CONFLICT: another sender planning a different slot for the same alert at
        # the same moment (two clocks either side of a slot) delivers an event once,
        # in whichever digest records it first. (SQLite needs a WHERE to parse the
        # upsert of an INSERT ... SELECT.)
        session.execute(
            _insert_for(session)(entries_t)
            .from_select(
                ["digest_id", "alert_id", "event_id", "shown"],
                select(ranked.c.digest_id, ranked.c.alert_id, ranked.c.event_id,
                       ranked.c.rank <= ranked.c.max_items).where(true()),
            )
            .on_conflict_do_nothing(index_elements=["alert_id", "event_id"])
        )


def _insert_for(session: Session) -> Any:
    return postgresql.insert if _is_postgres(session) else sqlite.insert


def insert_digests(session: Session, rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Insert digest rows, skipping keys that exist (another process or an earlier run
    planned them): key -> id of the rows this call inserted, and only those."""
    if not rows:
        return {}
    # One compiled statement, executed for many parameter sets (SQLAlchemy batches them
    # into multi-row INSERT ... RETURNING); `.values([...])` would recompile every time.
    statement = (
        _insert_for(session)(digests_t)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(digests_t.c.key, digests_t.c.id)
    )
    return {key: digest_id for key, digest_id in session.execute(statement, list(rows))}


def insert_rows(session: Session, table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """A plain executemany insert (digest alerts and entries of freshly inserted digests:
    a conflict there is a real error and rolls the plan back)."""
    if rows:
        session.execute(table.insert(), list(rows))


# --- leases and outcomes --------------------------------------------------------------


def cancel_for_bounced(session: Session, *, reason: str) -> int:
    """Pending digests of addresses that bounced are not sent (nothing more goes to a
    bounced address)."""
    bounced = select(Subscriber.id).where(Subscriber.mail_status == AddressStatus.bounced)
    result = session.execute(
        update(digests_t)
        .where(digests_t.c.status == PENDING, digests_t.c.subscriber_id.in_(bounced))
        .values(status=CANCELLED, last_error=reason, **leases.freed())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def claim(
    session: Session,
    *,
    owner: str,
    after_id: int,
    limit: int,
    now: datetime,
    lease_until: datetime,
    frequency: str | None,
) -> list[int]:
    """Lease up to `limit` pending digests with ids above `after_id` to `owner`.

    A digest is free when nobody holds it or its lease expired (a sender killed
    mid-batch). The UPDATE re-checks that under the row lock, so two senders never both
    hold one; on PostgreSQL, SKIP LOCKED lets them take different rows without waiting.
    SQLite writers are serialised by BEGIN IMMEDIATE."""
    free = leases.is_free(digests_t, now)
    pick = (
        select(digests_t.c.id)
        .where(digests_t.c.status == PENDING, digests_t.c.id > after_id, free)
        .order_by(digests_t.c.id)
        .limit(limit)
    )
    if frequency is not None:
        pick = pick.where(digests_t.c.frequency == frequency)
    if _is_postgres(session):
        pick = pick.with_for_update(skip_locked=True)
    statement = (
        update(digests_t)
        .where(digests_t.c.id.in_(pick.scalar_subquery()), digests_t.c.status == PENDING, free)
        .values(**leases.taken(owner, until=lease_until))
        .returning(digests_t.c.id)
    )
    return sorted(session.scalars(statement))


def _owned(digest_id: int, owner: str) -> Any:
    return and_(
        digests_t.c.id == digest_id,
        digests_t.c.status == PENDING,
        leases.is_held_by(digests_t, owner),
    )


#: One compiled statement for every acceptance (executed for many at once).
_MARK_SENT = (
    update(digests_t)
    .where(
        digests_t.c.id == bindparam("b_id"),
        digests_t.c.status == PENDING,
        digests_t.c.lease_owner == bindparam("b_owner"),
    )
    .values(
        status=SENT,
        sent_at=bindparam("b_at", type_=digests_t.c.sent_at.type),
        subject=bindparam("b_subject"),
        attempts=digests_t.c.attempts + 1,
        last_error=None,
        **leases.freed(),
    )
)


def mark_sent(
    session: Session | Connection, accepted: Sequence[tuple[int, str]], *, owner: str,
    at: datetime,
) -> int:
    """Record that the SMTP server accepted these (digest id, subject). Returns how many
    were still this sender's to record (a lost lease leaves the row to its holder)."""
    if not accepted:
        return 0
    result = session.execute(
        _MARK_SENT,
        [{"b_id": digest_id, "b_owner": owner, "b_at": at, "b_subject": subject}
         for digest_id, subject in accepted],
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def mark_retry(
    session: Session, digest_id: int, *, owner: str, error: str, give_up_after: int
) -> str:
    """A temporary refusal: the digest stays pending for the next run, unless it has
    now been tried `give_up_after` times. Returns the resulting status."""
    attempts = session.scalar(
        select(digests_t.c.attempts).where(_owned(digest_id, owner))
    )
    if attempts is None:
        return PENDING
    status = FAILED if attempts + 1 >= give_up_after else PENDING
    session.execute(
        update(digests_t)
        .where(_owned(digest_id, owner))
        .values(status=status, attempts=attempts + 1, last_error=error, **leases.freed())
    )
    return status


def mark_failed(
    session: Session,
    digest_id: int,
    *,
    owner: str,
    error: str,
    status: str = FAILED,
    count_attempt: bool = True,
) -> None:
    values: dict[str, Any] = {
        "status": status, "last_error": error, **leases.freed(),
    }
    if count_attempt:
        values["attempts"] = digests_t.c.attempts + 1
    session.execute(update(digests_t).where(_owned(digest_id, owner)).values(**values))


def bounce_subscriber(session: Session, subscriber_id: int, *, error: str, at: datetime) -> None:
    session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .values(mail_status=AddressStatus.bounced, mail_error=error, mail_error_at=at)
    )


def release(session: Session, digest_ids: Iterable[int], *, owner: str) -> None:
    """Give back leases of digests this sender claimed but did not finish."""
    ids = sorted(digest_ids)
    for chunk in chunked(ids):
        leases.free(session, digests_t, digests_t.c.id.in_(chunk),
                    digests_t.c.status == PENDING, owner=owner)


def count_pending(session: Session, frequency: str | None) -> int:
    statement = select(func.count()).select_from(digests_t).where(digests_t.c.status == PENDING)
    if frequency is not None:
        statement = statement.where(digests_t.c.frequency == frequency)
    return int(session.scalar(statement) or 0)


# --- what a digest shows --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventRow:
    """An event with its item and the terms that matched it for the event's target."""

    event_id: int
    event_kind: str
    changes: list[dict[str, Any]]
    created_at: datetime
    target_id: int
    source: str
    external_id: str
    item_kind: str
    title: str
    url: str
    published_at: datetime | None
    first_seen_at: datetime
    feed_title: str | None
    matched_terms: list[str]
    evidence: str
    evidence_field: str
    highlights: list[list[int]]
    #: What a digest line shows beside the title: PubMed authors, journal and date;
    #: ClinicalTrials.gov phases, overall status and lead sponsor.
    authors: list[str]
    journal: str | None
    pub_date: str | None
    phases: list[str]
    overall_status: str | None
    lead_sponsor: str | None
    #: ClinicalTrials.gov intervention names (a trial's drugs).
    interventions: list[str]

    @property
    def section(self) -> Section:
        return section_of(self.item_kind, self.event_kind)

    @property
    def sort_at(self) -> datetime:
        return sort_moment(self.section, self.published_at, self.created_at)


def _event_columns() -> tuple[Any, ...]:
    return (
        ItemEvent.id, ItemEvent.kind, ItemEvent.changes, ItemEvent.created_at,
        ItemEvent.target_id, Item.source, Item.external_id, Item.kind, Item.title, Item.url,
        Item.published_at, Item.first_seen_at, Item.data["feed_title"].as_string(),
        ItemTarget.matched_terms, ItemTarget.evidence, ItemTarget.evidence_field,
        ItemTarget.highlights, Item.data["authors"],
        # The abbreviation a reference list uses ("J Clin Oncol"), else the full title.
        func.coalesce(func.nullif(Item.data["journal_abbrev"].as_string(), ""),
                      Item.data["journal"].as_string()),
        Item.data["pub_date"].as_string(), Item.data["phases"],
        Item.data["overall_status"].as_string(), Item.data["lead_sponsor"].as_string(),
        Item.data["interventions"],
    )


def _events_select() -> Any:
    """Events with their item and its link to the event's target: an item no longer
    matched to the target (a rematch unlinked it) is not shown."""
    return (
        select(*_event_columns())
        .join(Item, Item.id == ItemEvent.item_id)
        .join(
            ItemTarget,
            and_(ItemTarget.item_id == Item.id, ItemTarget.target_id == ItemEvent.target_id),
        )
    )


#: Positions of the list-valued columns of `_event_columns`, empty when NULL.
_LIST_COLUMNS = (2, 13, 16, 17, 20, 23)


def _event_row(row: Any) -> EventRow:
    values = list(row)
    for index in _LIST_COLUMNS:
        values[index] = values[index] if isinstance(values[index], list) else []
    return EventRow(*values)


def events_by_id(session: Session, event_ids: Iterable[int]) -> dict[int, EventRow]:
    found: dict[int, EventRow] = {}
    for chunk in chunked(sorted(set(event_ids))):
        for row in session.execute(_events_select().where(ItemEvent.id.in_(chunk))):
            event = _event_row(row)
            found[event.event_id] = event
    return found


def target_events_since(
    session: Session, target_id: int, since: datetime, limit: int
) -> list[EventRow]:
    """A target's events since `since`, newest first (the "N more" page)."""
    statement = (
        _events_select()
        .where(ItemEvent.target_id == target_id, ItemEvent.created_at >= since)
        .order_by(ItemEvent.created_at.desc(), ItemEvent.id.desc())
        .limit(limit)
    )
    return [_event_row(row) for row in session.execute(statement)]


@dataclass(frozen=True, slots=True)
class DigestHead:
    digest_id: int
    key: str
    message_id: str
    subscriber_id: int
    email: str
    frequency: str
    slot_at: datetime


@dataclass(frozen=True, slots=True)
class DigestAlertRow:
    digest_id: int
    alert_id: int
    alert_status: str
    timezone: str
    target_id: int
    target_slug: str
    target_name: str


@dataclass(frozen=True, slots=True)
class EntryCount:
    digest_id: int
    alert_id: int
    shown: bool
    section: Section
    count: int
    oldest: datetime


@dataclass(frozen=True, slots=True)
class SourceRow:
    target_id: int
    source: str
    last_success_at: datetime | None
    consecutive_failures: int
    last_error: str | None
    warnings: list[str]


@dataclass
class DigestData:
    """The rows behind a chunk of digests, fetched with one query per kind of row."""

    heads: list[DigestHead]
    alerts: list[DigestAlertRow]
    counts: list[EntryCount]
    #: (digest_id, alert_id) -> the ids of the events shown, comma-separated, in no order.
    shown: dict[tuple[int, int], str]
    events: dict[int, EventRow]
    sources: list[SourceRow]


# The statements behind a chunk of digests, built once: the ids go in as one expanding
# parameter, so a chunk neither rebuilds nor re-keys a statement per query.
_IDS: BindParameter[list[int]] = bindparam("ids", expanding=True)
_HEADS = (
    select(Digest.id, Digest.key, Digest.message_id, Digest.subscriber_id,
           Subscriber.email, Digest.frequency, Digest.slot_at)
    .join(Subscriber, Subscriber.id == Digest.subscriber_id)
    .where(Digest.id.in_(_IDS))
    .order_by(Digest.id)
)
_ALERTS = (
    select(DigestAlert.digest_id, Alert.id, Alert.status, Alert.timezone, Target.id,
           Target.slug, Target.name)
    .join(Alert, Alert.id == DigestAlert.alert_id)
    .join(Target, Target.id == Alert.target_id)
    .where(DigestAlert.digest_id.in_(_IDS))
)
_COUNTS = (
    select(DigestEntry.digest_id, DigestEntry.alert_id, DigestEntry.shown, Item.kind,
           ItemEvent.kind, func.count(), func.min(ItemEvent.created_at))
    .join(ItemEvent, ItemEvent.id == DigestEntry.event_id)
    .join(Item, Item.id == ItemEvent.item_id)
    .where(DigestEntry.digest_id.in_(_IDS))
    .group_by(DigestEntry.digest_id, DigestEntry.alert_id, DigestEntry.shown,
              Item.kind, ItemEvent.kind)
)
# The shown events of each (digest, alert) as one "id,id,..." string: one row per alert
# instead of one per event (the rows, not the query, are what a chunk costs), and a
# ready key for the digests that show the same events (views.build_views).
_SHOWN = (
    select(DigestEntry.digest_id, DigestEntry.alert_id,
           func.aggregate_strings(DigestEntry.event_id.cast(String), ","))
    .where(DigestEntry.digest_id.in_(_IDS), DigestEntry.shown.is_(True))
    .group_by(DigestEntry.digest_id, DigestEntry.alert_id)
)


def load_digest_data(session: Session, digest_ids: Sequence[int]) -> DigestData:
    """The rows behind these digests (at most CHUNK of them), through the session's
    connection: Core rows, none of the ORM's result handling, fetched all at once."""
    ids = {"ids": list(digest_ids)}
    connection = session.connection()
    heads = [DigestHead(*row) for row in connection.execute(_HEADS, ids).all()]
    alerts = [DigestAlertRow(*row) for row in connection.execute(_ALERTS, ids).all()]
    counts = [
        EntryCount(digest_id, alert_id, bool(shown), section_of(item_kind, event_kind),
                   int(count), oldest)
        for digest_id, alert_id, shown, item_kind, event_kind, count, oldest
        in connection.execute(_COUNTS, ids).all()
    ]
    shown = {(digest_id, alert_id): event_ids
             for digest_id, alert_id, event_ids in connection.execute(_SHOWN, ids).all()}
    events = events_by_id(
        session, {int(e) for event_ids in set(shown.values()) for e in event_ids.split(",")}
    )
    target_ids = sorted({row.target_id for row in alerts})
    return DigestData(heads, alerts, counts, shown, events,
                      _source_rows(session, target_ids) if target_ids else [])


def _source_rows(session: Session, target_ids: Sequence[int]) -> list[SourceRow]:
    """The health of each source for each target: the source's catalogue-wide poll (the
    state without a target) where there is one, since it serves every target, else the
    target's own poll."""
    rows = session.execute(
        select(SourceState.target_id, SourceState.source, SourceState.last_success_at,
               SourceState.consecutive_failures, SourceState.last_error, SourceState.warnings)
        .where(or_(SourceState.target_id.in_(target_ids), SourceState.target_id.is_(None)))
        .order_by(SourceState.target_id, SourceState.source)
    ).all()
    catalogue = {row.source: row for row in rows if row.target_id is None}
    found = []
    for target_id, source, last_success, failures, last_error, warnings in rows:
        if target_id is None or source in catalogue:
            continue
        found.append(SourceRow(target_id, source, last_success, failures or 0, last_error,
                               warnings or []))
    for target_id in target_ids:
        for row in catalogue.values():
            found.append(SourceRow(target_id, row.source, row.last_success_at,
                                   row.consecutive_failures or 0, row.last_error,
                                   row.warnings or []))
    return sorted(found, key=lambda row: (row.target_id, row.source))


# --- the admin's view -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestRecord:
    id: int
    key: str
    email: str
    frequency: str
    slot_at: datetime
    status: str
    attempts: int
    last_error: str | None
    subject: str | None
    item_count: int
    created_at: datetime
    sent_at: datetime | None
    mail_status: str


def list_digests(
    session: Session, *, status: str | None, before_id: int | None, limit: int
) -> list[DigestRecord]:
    """Digests newest first, for the operator (`GET /api/v1/digests?status=failed`)."""
    statement = (
        select(Digest.id, Digest.key, Subscriber.email, Digest.frequency, Digest.slot_at,
               Digest.status, Digest.attempts, Digest.last_error, Digest.subject,
               Digest.item_count, Digest.created_at, Digest.sent_at, Subscriber.mail_status)
        .join(Subscriber, Subscriber.id == Digest.subscriber_id)
        .order_by(Digest.id.desc())
        .limit(limit)
    )
    if status is not None:
        statement = statement.where(Digest.status == status)
    if before_id is not None:
        statement = statement.where(Digest.id < before_id)
    return [DigestRecord(*row) for row in session.execute(statement)]  # type: ignore[call-arg]


def digest_alert_ids(session: Session, digest_ids: Sequence[int]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for chunk in chunked(digest_ids):
        for digest_id, alert_id in session.execute(
            select(DigestAlert.digest_id, DigestAlert.alert_id)
            .where(DigestAlert.digest_id.in_(chunk))
            .order_by(DigestAlert.alert_id)
        ):
            found.setdefault(digest_id, []).append(alert_id)
    return found
