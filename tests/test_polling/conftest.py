from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.polling.schemas import SourceReport
from alerts.polling.service import poll
from alerts.sources.base import SourceName
from db.clock import frozen_clock
from db.models import Feed, Item, ItemEvent, ItemRejection, ItemTarget, SourceState, Target
from tests.fakes.adapters import FakeSource, install

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
SLUG = "her2-exon20"


@pytest.fixture(autouse=True)
def no_real_adapters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every source is a scripted fake configured for no target, unless a test installs
    its own: no test of this package reaches for the network by accident."""
    install(monkeypatch, *(FakeSource(name, {}) for name in SourceName))


@pytest.fixture
def move_clock() -> Iterator[Callable[[datetime], None]]:
    """`utc_now()` frozen at NOW; call the fixture's value to move it."""
    with frozen_clock(NOW) as move:
        yield move


Run = Callable[..., list[SourceReport]]


@pytest.fixture
def run(
    session_factory: sessionmaker[Session], settings: Settings, move_clock: Any
) -> Run:
    """poll() on the test's rolled-back transaction, as owner "test", at the frozen time."""

    def run_poll(**kwargs: Any) -> list[SourceReport]:
        kwargs.setdefault("owner", "test")
        return poll(session_factory, settings, **kwargs)

    return run_poll


def report_for(reports: list[SourceReport], source: str, target: str = SLUG) -> SourceReport:
    [found] = [r for r in reports if r.source == source and r.target == target]
    return found


def state_of(session: Session, source: str, target: str = SLUG) -> SourceState:
    session.expire_all()
    return session.scalars(
        select(SourceState).join(Target, Target.id == SourceState.target_id)
        .where(SourceState.source == source, Target.slug == target)
    ).one()


def stored_ids(session: Session, source: str) -> set[str]:
    return set(session.scalars(select(Item.external_id).where(Item.source == source)))


def links(session: Session, target: str = SLUG) -> dict[str, list[str]]:
    """external id -> matched terms of the items linked to `target`."""
    rows = session.execute(
        select(Item.external_id, ItemTarget.matched_terms)
        .join(ItemTarget, ItemTarget.item_id == Item.id)
        .join(Target, Target.id == ItemTarget.target_id)
        .where(Target.slug == target)
    )
    return {external_id: terms for external_id, terms in rows}


def rejected(session: Session, target: str = SLUG) -> set[str]:
    """External ids of the items the target's rule rejected."""
    return set(session.scalars(
        select(Item.external_id)
        .join(ItemRejection, ItemRejection.item_id == Item.id)
        .join(Target, Target.id == ItemRejection.target_id)
        .where(Target.slug == target)
    ))


def events(session: Session, target: str = SLUG) -> list[tuple[str, str, list[Any]]]:
    """(external id, kind, changes) of the target's events, in order."""
    rows = session.execute(
        select(Item.external_id, ItemEvent.kind, ItemEvent.changes)
        .join(ItemEvent, ItemEvent.item_id == Item.id)
        .join(Target, Target.id == ItemEvent.target_id)
        .where(Target.slug == target)
        .order_by(ItemEvent.id)
    )
    return [(external_id, kind, changes) for external_id, kind, changes in rows]


def add_target(session: Session, slug: str, **fields: Any) -> Target:
    target = Target(
        slug=slug, name=slug.upper(), description="",
        match_terms=fields.pop("match_terms", {"genes": ["HER2"], "mutations": ["exon 20"],
                                                "drugs": ["zongertinib"]}),
        **fields,
    )
    session.add(target)
    session.flush()
    return target


def add_feed(session: Session, target_slug: str, url: str, **fields: Any) -> Feed:
    target = session.scalars(select(Target).where(Target.slug == target_slug)).one()
    feed = Feed(target_id=target.id, url=url, **fields)
    session.add(feed)
    session.flush()
    return feed
