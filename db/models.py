"""The tables of Target Alerts.

Relationships are `lazy="raise"`: every query says what it loads, so an N+1 query
fails loudly in tests instead of quietly in production.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.base import Base, TimestampMixin
from db.clock import utc_now
from db.statuses import AddressStatus, AlertStatus, DigestStatus, MailStatus
from db.types import JSONType, UTCDateTime

# SQLite only makes INTEGER PRIMARY KEY an auto-increment rowid; PostgreSQL gets BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Target(TimestampMixin, Base):
    """A drug-discovery target people subscribe to, with how each source searches it."""

    __tablename__ = "targets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    #: PubMed ESearch `term`; no PubMed polling when empty.
    pubmed_query: Mapped[str | None] = mapped_column(Text)
    #: ClinicalTrials.gov `query.term` and `query.intr`; no polling when both are empty.
    ctgov_term: Mapped[str | None] = mapped_column(Text)
    ctgov_intr: Mapped[str | None] = mapped_column(Text)
    #: The local match rule's definition: the rule keys of the target's catalogue entry
    #: (genes, variant terms and patterns, drugs ...), or the older
    #: {"genes", "mutations", "drugs"}; read through alerts.matching.compile_rule.
    match_terms: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    #: Where the synonyms and drugs come from (the catalogue entry's `sources`).
    sources: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    #: "file" (the catalogue file owns it) or "local" (added by `alerts targets add` or
    #: the admin API: `alerts targets sync` never touches it).
    origin: Mapped[str] = mapped_column(
        String(8), nullable=False, default="file", server_default="file"
    )
    #: The catalogue file's entry as the last sync applied it (null until then): a target
    #: whose entry differs from it was edited locally, and sync keeps that edit.
    file_entry: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    feeds: Mapped[list[Feed]] = relationship(back_populates="target", lazy="raise")


class TargetChange(Base):
    """Who changed which target, when, and how: the entry before and after (null before an
    add, null after a removal). Written in the transaction of the change itself. Keyed by
    slug, not by a foreign key, so a removed target's history stays."""

    __tablename__ = "target_changes"
    __table_args__ = (Index("ix_target_changes_slug_id", "target_slug", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    target_slug: Mapped[str] = mapped_column(String(64), nullable=False)
    action: Mapped[str] = mapped_column(String(8), nullable=False)  # add | edit | remove
    #: "catalogue sync", "<os user> (command line)" or "admin token <fingerprint>".
    changed_by: Mapped[str] = mapped_column(String(200), nullable=False)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, nullable=False)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class Feed(TimestampMixin, Base):
    """An RSS/Atom feed attached to a target, or to the whole catalogue (`target_id`
    NULL: fetched once per cycle and matched against every target), with its HTTP
    caching state."""

    __tablename__ = "feeds"
    __table_args__ = (
        UniqueConstraint("target_id", "url"),
        # NULLs are distinct in a unique constraint: a catalogue feed's URL needs its own.
        Index("uq_feeds_catalogue_url", "url", unique=True,
              sqlite_where=text("target_id IS NULL"),
              postgresql_where=text("target_id IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    target_id: Mapped[int | None] = mapped_column(
        ForeignKey("targets.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(Text, nullable=False)
    title: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    #: SHA-256 of the last body, so a server without validators costs no parse either.
    content_hash: Mapped[str | None] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    last_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    target: Mapped[Target | None] = relationship(back_populates="feeds", lazy="raise")


class Item(Base):
    """One upstream record (article, study, feed entry), stored once per source."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    external_id: Mapped[str] = mapped_column(String(512), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    summary: Mapped[str] = mapped_column(Text, nullable=False, default="")
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_seen_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utc_now, index=True
    )
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Parsed source fields (authors, journal, DOI; trial status, phases ...).
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)


class ItemTarget(Base):
    """An item the target's rule MATCHED, with the words and the evidence that decided it.

    This is the link every reader follows (items API, pages, digests): a row here means
    "shown for the target". An item the rule rejected is in `item_rejections` instead, so
    no reader can show a rejected item by forgetting a filter. A (item, target) pair is
    in at most one of the two tables; alerts.items.service is the one writer of both.
    """

    __tablename__ = "item_targets"
    __table_args__ = (
        UniqueConstraint("item_id", "target_id"),
        #: The item list's ORDER BY (newest link first, then item id), for keyset pages.
        Index("ix_item_targets_target_created_item", "target_id", "created_at", "item_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), nullable=False)
    target_id: Mapped[int] = mapped_column(
        ForeignKey("targets.id", ondelete="CASCADE"), nullable=False
    )
    matched_terms: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    #: The sentence or field value that decided the match ("" for links made before
    #: evidence was recorded), the field it comes from, and the [start, end) spans of the
    #: matched words inside it.
    evidence: Mapped[str] = mapped_column(Text, nullable=False, default="")
    evidence_field: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    highlights: Mapped[list[list[int]]] = mapped_column(JSONType, nullable=False, default=list)
    #: When the item was first seen for the target (kept when a rematch moves the pair
    #: between matched and rejected): the items API's sort key.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, nullable=False)
    #: When the rule last decided this pair.
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, nullable=False)


class ItemRejection(Base):
    """An item seen for a target that the target's rule rejected: never linked, shown or
    mailed, but kept so `alerts targets rematch` can decide it again without refetching."""

    __tablename__ = "item_rejections"
    __table_args__ = (
        UniqueConstraint("item_id", "target_id"),
        Index("ix_item_rejections_target_id", "target_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), nullable=False)
    target_id: Mapped[int] = mapped_column(
        ForeignKey("targets.id", ondelete="CASCADE"), nullable=False
    )
    #: When the item was first seen for the target (see ItemTarget.created_at).
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, nullable=False)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, nullable=False)


class ItemEvent(Base):
    """Something a subscriber of a target should hear about: an item is new for the
    target, or a known trial changed (`changes`: [{field, old, new}, ...])."""

    __tablename__ = "item_events"
    __table_args__ = (Index("ix_item_events_target_created", "target_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), nullable=False, index=True
    )
    target_id: Mapped[int] = mapped_column(
        ForeignKey("targets.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # "new" | "updated"
    changes: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, nullable=False)

    item: Mapped[Item] = relationship(lazy="raise")


class SourceState(Base):
    """Where polling of one source for one target stands; the database is the schedule.
    The row with no target is the source's catalogue-wide poll (alerts.polling.sweep):
    one per source."""

    __tablename__ = "source_states"
    __table_args__ = (
        UniqueConstraint("source", "target_id"),
        Index("uq_source_states_catalogue_source", "source", unique=True,
              sqlite_where=text("target_id IS NULL"),
              postgresql_where=text("target_id IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    target_id: Mapped[int | None] = mapped_column(ForeignKey("targets.id", ondelete="CASCADE"))
    #: Adapter-specific resume point (e.g. last window end, CT.gov dataTimestamp).
    cursor: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    consecutive_failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: Lifetime counters, read by /metrics from any process.
    polls_total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failures_total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: Non-fatal upstream warnings, e.g. PubMed phrases it silently dropped.
    warnings: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    #: A scheduler's claim on this row; expires so a killed process frees it.
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class UnmatchedItem(Base):
    """A record a catalogue-wide poll fetched that matched no target, kept for
    ALERTS_UNMATCHED_RETENTION_DAYS so that a new or edited target is back-filled from it
    without refetching (alerts.items.service.rematch_target). `payload` is the parsed
    record as an `items` row would hold it; a record that matches later moves to `items`."""

    __tablename__ = "unmatched_items"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    external_id: Mapped[str] = mapped_column(String(512), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    #: When a poll last fetched it; rows older than the retention are pruned.
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)


class Subscriber(TimestampMixin, Base):
    """An email address; verified once its owner clicked a confirmation link."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: An AddressStatus: "bounced" after a permanent SMTP refusal of the address.
    mail_status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=AddressStatus.ok
    )
    mail_error: Mapped[str | None] = mapped_column(Text)
    mail_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ApiToken(TimestampMixin, Base):
    """A personal API token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Alert(TimestampMixin, Base):
    """A subscriber's subscription to one target, and when its digests are due."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("subscriber_id", "target_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    target_id: Mapped[int] = mapped_column(
        ForeignKey("targets.id", ondelete="CASCADE"), nullable=False
    )
    frequency: Mapped[str] = mapped_column(String(8), nullable=False)  # daily | weekly
    weekday: Mapped[str] = mapped_column(String(9), nullable=False, default="monday")
    send_hour: Mapped[int] = mapped_column(Integer, nullable=False, default=8)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    max_items: Mapped[int] = mapped_column(Integer, nullable=False, default=50)
    send_when_empty: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    #: An AlertStatus.
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=AlertStatus.pending, index=True
    )
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    subscriber: Mapped[Subscriber] = relationship(lazy="raise")
    target: Mapped[Target] = relationship(lazy="raise")


class Digest(TimestampMixin, Base):
    """One email to one subscriber for one delivery slot.

    `key` (subscriber, frequency, slot) is unique: planning the same slot twice, from
    two processes or two runs, yields one row, and so one email. A row is `pending`
    until the SMTP server accepted it, then `sent`; `failed` after a permanent refusal.
    """

    __tablename__ = "digests"
    __table_args__ = (Index("ix_digests_status_lease", "status", "lease_expires_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    frequency: Mapped[str] = mapped_column(String(8), nullable=False)
    slot_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    #: A DigestStatus.
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=DigestStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    message_id: Mapped[str] = mapped_column(String(255), nullable=False)
    subject: Mapped[str | None] = mapped_column(Text)
    item_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DigestAlert(Base):
    """The alerts a digest covers (its List-Unsubscribe link ends all of them)."""

    __tablename__ = "digest_alerts"
    __table_args__ = (UniqueConstraint("digest_id", "alert_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    digest_id: Mapped[int] = mapped_column(
        ForeignKey("digests.id", ondelete="CASCADE"), nullable=False
    )
    alert_id: Mapped[int] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False, index=True
    )


class DigestEntry(Base):
    """An event delivered to an alert by a digest; unique per (alert, event), so no
    event is ever delivered twice to the same alert."""

    __tablename__ = "digest_entries"
    __table_args__ = (UniqueConstraint("alert_id", "event_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    digest_id: Mapped[int] = mapped_column(
        ForeignKey("digests.id", ondelete="CASCADE"), nullable=False, index=True
    )
    alert_id: Mapped[int] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False
    )
    event_id: Mapped[int] = mapped_column(
        ForeignKey("item_events.id", ondelete="CASCADE"), nullable=False
    )
    #: False when the event went past `max_items` and is only behind the "more" link.
    shown: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class OutboundMail(TimestampMixin, Base):
    """A transactional mail (confirmation, API token) kept until the server accepts it."""

    __tablename__ = "outbound_mails"
    __table_args__ = (
        Index("ix_outbound_mails_status", "status", "lease_expires_at"),
        # The per-address rate limit counts recent mails of a kind to one recipient.
        Index("ix_outbound_mails_recipient_kind_created", "recipient", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    recipient: Mapped[str] = mapped_column(String(320), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)  # RFC 5322 text
    #: A MailStatus.
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=MailStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReaderLabel(Base):
    """A reader's verdict on an item shown for a target ("not relevant"), from the link
    in a digest. It changes nothing for other readers: it is evidence for the match
    rule's evaluation. Erasing the reader keeps the label but forgets who gave it."""

    __tablename__ = "reader_labels"
    __table_args__ = (UniqueConstraint("item_id", "target_id", "subscriber_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), nullable=False
    )
    target_id: Mapped[int] = mapped_column(
        ForeignKey("targets.id", ondelete="CASCADE"), nullable=False, index=True
    )
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL")
    )
    label: Mapped[str] = mapped_column(String(16), nullable=False)  # "not_relevant"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, nullable=False)

    item: Mapped[Item] = relationship(lazy="raise")
    target: Mapped[Target] = relationship(lazy="raise")


class SchedulerHeartbeat(Base):
    """Each scheduler process's last sign of life, for /metrics and operators."""

    __tablename__ = "scheduler_heartbeats"

    owner: Mapped[str] = mapped_column(String(128), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utc_now)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utc_now)


class MailRequest(Base):
    """One request to a route that sends mail, for the throttles per client and overall.

    `client` is a keyed hash of the client's address, not the address itself; rows
    older than the throttle window are pruned."""

    __tablename__ = "mail_requests"
    __table_args__ = (Index("ix_mail_requests_client_created", "client", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utc_now, nullable=False, index=True
    )
