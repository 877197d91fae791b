"""Queries on targets and their feeds. No business rules here: those live in service.py."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Feed, Target


def by_slug(session: Session, slug: str) -> Target | None:
    return session.scalars(select(Target).where(Target.slug == slug)).one_or_none()


def all_targets(session: Session) -> list[Target]:
    return list(session.scalars(select(Target).order_by(Target.slug)))


def enabled_feeds(session: Session, target_ids: Sequence[int]) -> dict[int, list[Feed]]:
    """Enabled feeds per target id, in the order they were added."""
    feeds: dict[int, list[Feed]] = {target_id: [] for target_id in target_ids}
    if not target_ids:
        return feeds
    rows = session.scalars(
        select(Feed)
        .where(Feed.target_id.in_(target_ids), Feed.enabled.is_(True))
        .order_by(Feed.target_id, Feed.id)
    )
    for feed in rows:
        feeds[feed.target_id].append(feed)
    return feeds


def feed_counts(session: Session) -> dict[int, int]:
    """Enabled feeds per target id (targets without feeds are absent)."""
    rows = session.execute(
        select(Feed.target_id, func.count())
        .where(Feed.enabled.is_(True))
        .group_by(Feed.target_id)
    )
    return {target_id: count for target_id, count in rows}


def feed_by_url(session: Session, target_id: int, url: str) -> Feed | None:
    return session.scalars(
        select(Feed).where(Feed.target_id == target_id, Feed.url == url)
    ).one_or_none()
