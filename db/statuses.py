"""The status values stored in the database, each set defined once.

They are `StrEnum`s: a member compares equal to its stored string and binds as it, so
queries, models and API schemas all use these (the API's `AlertStatus` and
`DigestStatus` are these very classes). The strings are what the rows hold; renaming
one takes a migration.
"""

from __future__ import annotations

from enum import StrEnum


class AlertStatus(StrEnum):
    """`alerts.status`: one subscriber's alert for one target."""

    pending = "pending"  # waiting for the address to be confirmed
    active = "active"
    paused = "paused"
    unsubscribed = "unsubscribed"  # kept for the record, re-used on re-subscription


class DigestStatus(StrEnum):
    """`digests.status`: one digest of one subscriber for one slot."""

    pending = "pending"  # planned, not accepted by the SMTP server yet
    sent = "sent"
    failed = "failed"  # refused for good (or given up after many temporary refusals)
    empty = "empty"  # nothing new and no send_when_empty: recorded, not sent
    cancelled = "cancelled"  # the address bounced or every alert ended before sending


class MailStatus(StrEnum):
    """`outbound_mails.status`: one transactional mail of the outbox."""

    pending = "pending"  # not accepted by the SMTP server yet (maybe waiting for a retry)
    sent = "sent"
    failed = "failed"  # refused for good, or given up after the last retry


class AddressStatus(StrEnum):
    """`subscribers.mail_status`: whether mail to the address is still sent."""

    ok = "ok"
    bounced = "bounced"  # refused for good by the relay; until the owner confirms again
