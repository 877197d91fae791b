"""Queries of reader labels."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, joinedload

from alerts.items.repository import insert_ignoring_conflicts
from db.models import ReaderLabel


def add_label(
    session: Session, *, item_id: int, target_id: int, subscriber_id: int, label: str
) -> None:
    """Record the label once per reader: clicking twice, or in two mails, keeps one row."""
    insert_ignoring_conflicts(
        session,
        ReaderLabel,
        [{"item_id": item_id, "target_id": target_id, "subscriber_id": subscriber_id,
          "label": label}],
        ("item_id", "target_id", "subscriber_id"),
    )


def _labels() -> Select[ReaderLabel]:
    return select(ReaderLabel).options(
        joinedload(ReaderLabel.item), joinedload(ReaderLabel.target)
    )


def labels_page(
    session: Session, *, target_id: int | None, before_id: int | None, limit: int
) -> Sequence[ReaderLabel]:
    """Labels newest first, `limit` of them, older than `before_id` when given."""
    query = _labels().order_by(ReaderLabel.id.desc()).limit(limit)
    if target_id is not None:
        query = query.where(ReaderLabel.target_id == target_id)
    if before_id is not None:
        query = query.where(ReaderLabel.id < before_id)
    return session.scalars(query).all()


def all_labels(session: Session, *, target_id: int | None) -> Sequence[ReaderLabel]:
    query = _labels().order_by(ReaderLabel.id)
    if target_id is not None:
        query = query.where(ReaderLabel.target_id == target_id)
    return session.scalars(query).all()
