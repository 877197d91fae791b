"""Decisions stored per (item, target), and `rematch`: a changed rule applied to the
stored items both ways, without refetching and without mailing old items as new.

The rules here are small definitions in the older {"genes", "mutations", "drugs"} shape
that alerts.matching accepts; each test first asks the rule interface what it decides,
so the tests hold whatever the rule's wording."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.digests.views import load_views
from alerts.errors import NotFound
from alerts.items.match_fields import match_input
from alerts.items.schemas import ItemOut
from alerts.items.service import ingest, rematch, target_items
from alerts.matching import compile_rule
from alerts.sources.base import FetchedItem
from db.clock import frozen_clock
from db.models import Digest, Item, ItemEvent, ItemRejection, ItemTarget, Target
from tests.fakes.adapters import article, entry
from tests.planning import plan_due
from tests.test_digests.factories import Factory

T0 = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
ZONGERTINIB: dict[str, Any] = {"genes": [], "mutations": [], "drugs": ["zongertinib"]}
SEVABERTINIB: dict[str, Any] = {"genes": [], "mutations": [], "drugs": ["sevabertinib"]}

ABOUT_ZONGERTINIB = article("1", "Zongertinib in pretreated NSCLC")
ABOUT_SEVABERTINIB = article("2", "Sevabertinib in pretreated NSCLC")
ABOUT_NEITHER = article("3", "Pharmacokinetics of an antibody in mice")


def listed(session: Session, slug: str) -> list[ItemOut]:
    """The target's item list as the documented model reads it."""
    return target_items(session, slug).data


@pytest.fixture
def target(session: Session) -> Target:
    target = Target(slug="drug-watch", name="Drug watch", description="",
                    pubmed_query="x", match_terms=ZONGERTINIB)
    session.add(target)
    session.flush()
    return target


def decides(definition: dict[str, Any], item: FetchedItem) -> bool:
    return compile_rule(definition).match(match_input(item)).matched


@pytest.fixture(autouse=True)
def the_rules_decide_as_the_tests_assume() -> None:
    assert [decides(ZONGERTINIB, i) for i in (ABOUT_ZONGERTINIB, ABOUT_SEVABERTINIB,
                                              ABOUT_NEITHER)] == [True, False, False]
    assert [decides(SEVABERTINIB, i) for i in (ABOUT_ZONGERTINIB, ABOUT_SEVABERTINIB,
                                               ABOUT_NEITHER)] == [False, True, False]


def store(session: Session, target: Target, at: datetime, *items: FetchedItem) -> Any:
    return ingest(session, source=items[0].source, target_id=target.id,
                  match_terms=target.match_terms, fetched=items, now=at)


def decisions(session: Session, target: Target) -> dict[str, tuple[str, datetime]]:
    """external id -> ("matched" | "rejected", first seen for the target)."""
    found: dict[str, tuple[str, datetime]] = {}
    for table, word in ((ItemTarget, "matched"), (ItemRejection, "rejected")):
        rows = session.execute(
            select(Item.external_id, table.created_at).join(table, table.item_id == Item.id)
            .where(table.target_id == target.id))
        for external_id, at in rows:
            assert external_id not in found, "a pair is matched or rejected, never both"
            found[external_id] = (word, at)
    return found


def new_events(session: Session, target: Target) -> list[str]:
    return list(session.scalars(
        select(Item.external_id).join(ItemEvent, ItemEvent.item_id == Item.id)
        .where(ItemEvent.target_id == target.id, ItemEvent.kind == "new")
        .order_by(ItemEvent.id)))


def test_ingest_links_the_matched_and_keeps_the_rejected_with_the_decision(
    session: Session, target: Target
) -> None:
    counts = store(session, target, T0, ABOUT_ZONGERTINIB, ABOUT_SEVABERTINIB, ABOUT_NEITHER)
    assert (counts.new, counts.rejected) == (1, 2)
    assert decisions(session, target) == {"1": ("matched", T0), "2": ("rejected", T0),
                                          "3": ("rejected", T0)}
    assert new_events(session, target) == ["1"]
    link = session.scalars(select(ItemTarget).where(ItemTarget.target_id == target.id)).one()
    decision = compile_rule(ZONGERTINIB).match(match_input(ABOUT_ZONGERTINIB))
    assert (link.matched_terms, link.evidence, link.evidence_field, link.highlights) == (
        list(decision.terms), decision.evidence, decision.field,
        [list(span) for span in decision.highlights])
    assert [i.external_id for i in listed(session, target.slug)] == ["1"]

    # Stored again: nothing changes, nothing is announced twice.
    assert store(session, target, T0 + timedelta(hours=1), ABOUT_ZONGERTINIB,
                 ABOUT_SEVABERTINIB).new == 0
    assert new_events(session, target) == ["1"]


def test_a_rejected_item_whose_text_changed_upstream_is_linked_and_announced(
    session: Session, target: Target
) -> None:
    store(session, target, T0, entry("e1", "Lung cancer news roundup"))
    later = T0 + timedelta(days=1)
    counts = store(session, target, later, entry("e1", "Lung cancer news roundup",
                                                  "Zongertinib was approved today."))
    assert counts.new == 1
    assert decisions(session, target) == {"e1": ("matched", later)}


def test_rematch_moves_items_both_ways_keeping_when_they_were_first_seen(
    session: Session, target: Target
) -> None:
    store(session, target, T0, ABOUT_ZONGERTINIB, ABOUT_SEVABERTINIB, ABOUT_NEITHER)
    target.match_terms = SEVABERTINIB
    later = T0 + timedelta(days=2)

    counts = rematch(session, target.slug, now=later)

    assert (counts.kept, counts.newly_matched, counts.newly_rejected,
            counts.still_rejected) == (0, 1, 1, 1)
    assert decisions(session, target) == {"1": ("rejected", T0), "2": ("matched", T0),
                                          "3": ("rejected", T0)}
    assert new_events(session, target) == ["1"]  # no event for the newly matched item
    page = listed(session, target.slug)
    assert [(i.external_id, i.first_seen_at) for i in page] == [("2", T0)]
    assert "sevabertinib" in page[0].evidence.lower()

    # Back again: the same rule decides the same way; a second run changes nothing.
    target.match_terms = ZONGERTINIB
    assert rematch(session, target.slug, now=later).newly_matched == 1
    again = rematch(session, target.slug, now=later)
    assert (again.kept, again.newly_matched, again.newly_rejected) == (1, 0, 0)
    assert decisions(session, target)["1"] == ("matched", T0)


def test_rematch_of_an_unknown_target_is_not_found(session: Session) -> None:
    with pytest.raises(NotFound):
        rematch(session, "nope", now=T0)


def test_after_a_rematch_the_next_digest_holds_new_items_only(
    session: Session, session_factory: sessionmaker[Session], settings: Settings,
    target: Target,
) -> None:
    """The zongertinib item was announced (its event not yet mailed) and the sevabertinib
    one rejected; the rule then changes to sevabertinib. The next digest holds neither:
    the first is no longer about the target, the second is old. A new item is in it."""
    make = Factory(session)
    reader = make.subscriber("reader@example.org")
    make.alert(reader, target, frequency="daily", send_hour=8,
               activated_at=T0 - timedelta(days=1))
    store(session, target, T0, ABOUT_ZONGERTINIB, ABOUT_SEVABERTINIB)
    target.match_terms = SEVABERTINIB
    rematch(session, target.slug, now=T0 + timedelta(hours=1))
    fresh = article("4", "Sevabertinib granted priority review")
    store(session, target, T0 + timedelta(hours=1, minutes=30), fresh)

    slot = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    with frozen_clock(slot):
        plan_due(session_factory, settings, now=slot)
    digest_id = session.scalars(select(Digest.id).where(
        Digest.subscriber_id == reader.id)).one()
    [view] = load_views(session, settings, [digest_id])
    shown = [item.title for s in view.sections for g in s.groups for item in g.items]
    assert shown == ["Sevabertinib granted priority review"]
    assert view.total == 1
