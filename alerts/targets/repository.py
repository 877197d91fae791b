"""Queries on targets and their feeds. No business rules here: those live in service.py."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import BigInteger, Text, cast, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from db.models import Alert, Feed, Target, TargetChange
from db.statuses import AlertStatus


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
        if feed.target_id is not None:  # always: the query asks for targets' feeds
            feeds[feed.target_id].append(feed)
    return feeds


def feed_counts(session: Session) -> dict[int, int]:
    """Enabled feeds per target id (targets without feeds are absent)."""
    rows = session.execute(
        select(Feed.target_id, func.count())
        .where(Feed.enabled.is_(True))
        .group_by(Feed.target_id)
    )
    return {target_id: count for target_id, count in rows if target_id is not None}


def feed_by_url(session: Session, target_id: int | None, url: str) -> Feed | None:
    """The target's feed at `url` (None: the catalogue's own feed at `url`)."""
    owner = Feed.target_id.is_(None) if target_id is None else Feed.target_id == target_id
    return session.scalars(select(Feed).where(owner, Feed.url == url)).one_or_none()


def catalogue_feeds(session: Session) -> list[Feed]:
    """The enabled feeds of the whole catalogue (no target), in the order they were added."""
    return list(session.scalars(
        select(Feed).where(Feed.target_id.is_(None), Feed.enabled.is_(True)).order_by(Feed.id)
    ))


def by_slugs(session: Session, slugs: Iterable[str]) -> dict[str, Target]:
    """The targets among `slugs` (callers bound how many), by slug."""
    wanted = list(dict.fromkeys(slugs))
    if not wanted:
        return {}
    return {t.slug: t for t in session.scalars(select(Target).where(Target.slug.in_(wanted)))}


def search_rows(session: Session) -> Sequence[tuple[int, str, str, str, Any]]:
    """What the search index is built from: id, slug, name, description, match_terms."""
    return session.execute(
        select(Target.id, Target.slug, Target.name, Target.description, Target.match_terms)
    ).tuples().all()


class _Checksum(FunctionElement[int]):
    """A 32-bit checksum of a text, computed by the database."""

    type = BigInteger()
    inherit_cache = True


@compiles(_Checksum, "postgresql")
def _checksum_postgresql(element: _Checksum, compiler: SQLCompiler, **kw: Any) -> str:
    return f"('x' || substr(md5({compiler.process(element.clauses, **kw)}), 1, 8))::bit(32)::bigint"


@compiles(_Checksum, "sqlite")
def _checksum_sqlite(element: _Checksum, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{_SQLITE_CRC32}({compiler.process(element.clauses, **kw)})"


_SQLITE_CRC32 = "target_alerts_crc32"


def _crc32(text: str | None) -> int:
    return zlib.crc32((text or "").encode("utf-8", "surrogatepass"))


def catalogue_version(session: Session) -> tuple[Any, ...]:
    """A value that changes whenever a target is added, removed or changed: the count,
    the highest id and the sum of a checksum of each row's slug, name, description and
    match terms, computed in one aggregate by the database (the table has no
    modification time to read instead)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        # SQLite has no hash function of its own; this connection gets one.
        connection.connection.driver_connection.create_function(  # type: ignore[union-attr]
            _SQLITE_CRC32, 1, _crc32, deterministic=True
        )
    content = (Target.slug + "\x1f" + Target.name + "\x1f" + Target.description + "\x1f"
               + cast(Target.match_terms, Text))
    count, highest, checksum = session.execute(
        select(func.count(), func.max(Target.id), func.sum(_Checksum(content)))
    ).one()
    return count, highest, int(checksum or 0)


def most_followed(session: Session, limit: int) -> list[int]:
    """Ids of the `limit` targets with the most active alerts, most first, ties by id
    (targets without an active alert are not among them)."""
    rows = session.execute(
        select(Alert.target_id, func.count().label("n"))
        .where(Alert.status == AlertStatus.active)
        .group_by(Alert.target_id)
        .order_by(func.count().desc(), Alert.target_id)
        .limit(limit)
    )
    return [target_id for target_id, _ in rows]


def changes_of(session: Session, slug: str) -> list[TargetChange]:
    """The recorded changes of the target `slug`, oldest first."""
    return list(session.scalars(
        select(TargetChange).where(TargetChange.target_slug == slug).order_by(TargetChange.id)
    ))


def last_removed(session: Session, slugs: Iterable[str]) -> set[str]:
    """Among `slugs`, those whose latest recorded change is a removal."""
    wanted = list(dict.fromkeys(slugs))
    if not wanted:
        return set()
    latest = (
        select(TargetChange.target_slug, func.max(TargetChange.id).label("last_id"))
        .where(TargetChange.target_slug.in_(wanted))
        .group_by(TargetChange.target_slug)
        .subquery()
    )
    rows = session.scalars(
        select(TargetChange.target_slug)
        .join(latest, TargetChange.id == latest.c.last_id)
        .where(TargetChange.action == "remove")
    )
    return set(rows)
