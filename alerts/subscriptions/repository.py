"""Queries for subscribers, alerts and personal tokens. Every query says what it loads
(relationships are `lazy="raise"`); nothing here commits.

A `deleted` alert (DELETE /api/v1/alerts/{id}) is kept for the record of what it was
sent, but no query here returns it except `find_alert`, which re-uses its row when its
subscriber subscribes to the target again."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from db.models import Alert, ApiToken, Item, ItemTarget, OutboundMail, Subscriber, Target

#: The status of an alert its owner deleted: invisible to them, never mailed.
DELETED = "deleted"


def find_subscriber(session: Session, email: str) -> Subscriber | None:
    return session.scalars(select(Subscriber).where(Subscriber.email == email)).one_or_none()


def get_subscriber(session: Session, subscriber_id: int) -> Subscriber | None:
    return session.get(Subscriber, subscriber_id)


def get_or_create_subscriber(session: Session, email: str) -> Subscriber:
    """The subscriber of `email`, created when new. Two requests signing up the same new
    address at once both end with the one row: the loser's insert is undone by its
    savepoint and it reads the winner's."""
    subscriber = find_subscriber(session, email)
    if subscriber is not None:
        return subscriber
    try:
        with session.begin_nested():
            subscriber = Subscriber(email=email)
            session.add(subscriber)
    except IntegrityError:
        subscriber = find_subscriber(session, email)
        if subscriber is None:
            raise
    return subscriber


#: Alerts with what their API shape needs (address and target slug) loaded up front.
_ANY_ALERT = select(Alert).options(joinedload(Alert.subscriber), joinedload(Alert.target))
_ALERTS = _ANY_ALERT.where(Alert.status != DELETED)


def get_alert(session: Session, alert_id: int) -> Alert | None:
    """An alert with its subscriber and target loaded."""
    return session.scalars(_ALERTS.where(Alert.id == alert_id)).one_or_none()


def find_alert(session: Session, subscriber_id: int, target_id: int) -> Alert | None:
    """The subscriber's alert on the target, deleted ones included (the row is re-used)."""
    return session.scalars(
        _ANY_ALERT.where(Alert.subscriber_id == subscriber_id, Alert.target_id == target_id)
    ).one_or_none()


def alerts_by_ids(session: Session, alert_ids: Sequence[int]) -> list[Alert]:
    if not alert_ids:
        return []
    return list(
        session.scalars(_ALERTS.where(Alert.id.in_(alert_ids)).order_by(Alert.id))
    )


def alerts_of(session: Session, subscriber_id: int) -> list[Alert]:
    """A subscriber's alerts, every status, in the catalogue's order."""
    return list(
        session.scalars(
            _ALERTS
            .join(Alert.target)
            .where(Alert.subscriber_id == subscriber_id)
            .order_by(Target.name, Alert.id)
        )
    )


def alerts_page(
    session: Session,
    *,
    subscriber_id: int | None,
    email: str | None,
    after_id: int,
    limit: int,
) -> list[Alert]:
    """Up to `limit + 1` alerts with ids above `after_id` (the extra one says whether
    there is a next page), optionally only one subscriber's or one address's."""
    query = _ALERTS.where(Alert.id > after_id)
    if subscriber_id is not None:
        query = query.where(Alert.subscriber_id == subscriber_id)
    if email is not None:
        query = query.join(Alert.subscriber).where(Subscriber.email == email)
    return list(session.scalars(query.order_by(Alert.id).limit(limit + 1)))


def latest_items(
    session: Session, target_ids: Sequence[int], per_target: int
) -> dict[int, list[Item]]:
    """The newest stored items of each target (by publication date, else first seen)."""
    newest = func.coalesce(Item.published_at, Item.first_seen_at)
    result: dict[int, list[Item]] = {}
    for target_id in target_ids:
        result[target_id] = list(
            session.scalars(
                select(Item)
                .join(ItemTarget, ItemTarget.item_id == Item.id)
                .where(ItemTarget.target_id == target_id)
                .order_by(newest.desc(), Item.id.desc())
                .limit(per_target)
            )
        )
    return result


def find_token(session: Session, token_hash: str) -> ApiToken | None:
    return session.scalars(
        select(ApiToken).where(ApiToken.token_hash == token_hash)
    ).one_or_none()


def count_mails_since(session: Session, recipient: str, kind: str, since: datetime) -> int:
    """Transactional mails of `kind` queued for `recipient` since `since` (rate limits)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(OutboundMail)
            .where(
                OutboundMail.recipient == recipient,
                OutboundMail.kind == kind,
                OutboundMail.created_at >= since,
            )
        )
        or 0
    )


def delete_tokens(session: Session, subscriber_id: int, token_id: int | None = None) -> int:
    """Revoke the subscriber's personal tokens (only `token_id` when given)."""
    statement = delete(ApiToken).where(ApiToken.subscriber_id == subscriber_id)
    if token_id is not None:
        statement = statement.where(ApiToken.id == token_id)
    result = session.execute(statement.execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]


def erase_subscriber(session: Session, subscriber: Subscriber) -> None:
    """Delete the subscriber and everything stored about them: their alerts, tokens and
    digests (with what each delivered) go with the row (ON DELETE CASCADE), and the
    transactional mails to the address, sent or not, are deleted by address."""
    email = subscriber.email
    session.execute(
        delete(OutboundMail).where(OutboundMail.recipient == email)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(Subscriber).where(Subscriber.id == subscriber.id)
        .execution_options(synchronize_session=False)
    )
    session.expunge(subscriber)
