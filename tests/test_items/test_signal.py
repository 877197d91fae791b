"""Per source, through the real path (the adapter's parser, the ingest, the digest):
relevant items kept, each decoy family rejected, and the evidence sentence in the
rendered digest.

The decisions are the shipped catalogue's HER2 exon 20 rule's, asked through the
match-rule interface. The relevant items here name a target-specific drug (which counts
alone) or only the variant (those run when the rule in the tree reads variant terms);
the decoys are the families the rule must reject: HER2-positive and HER2-low disease
with or without a drug of HER2-amplified disease, EGFR exon 20 insertions with HER2
amplification, HER2 mutations outside exon 20, and negations."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.digests.delivery.render import render_digest
from alerts.digests.views import load_views
from alerts.items.match_fields import match_input
from alerts.items.service import ingest
from alerts.matching import compile_rule
from alerts.sources.base import FetchedItem, SourceName
from alerts.sources.ctgov import parse_study
from alerts.sources.feedparse import parse_feed
from alerts.sources.pubmed import parse_efetch
from db.clock import frozen_clock
from db.models import Digest, Item, ItemRejection, ItemTarget, Target
from tests.planning import plan_due
from tests.rules import HER2_SLUG, needs_variant_rule
from tests.test_digests.factories import Factory

DATA = Path(__file__).resolve().parents[1] / "data"
SIGNAL = DATA / "signal"
FOUND_AT = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
SLOT = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def pubmed_items() -> list[FetchedItem]:
    return [*parse_efetch((SIGNAL / "pubmed_efetch.xml").read_bytes()),
            *parse_efetch((DATA / "upstream/pubmed/efetch_her2_tdxd_32306807.xml").read_bytes())]


def ctgov_items() -> list[FetchedItem]:
    studies = json.loads((SIGNAL / "ctgov_studies.json").read_text())["studies"]
    return [item for study in studies if (item := parse_study(study)) is not None]


def rss_items() -> list[FetchedItem]:
    url = "https://news.example.org/feed.xml"
    return list(parse_feed((SIGNAL / "news.xml").read_bytes(), url).items)


ITEMS = {SourceName.pubmed: pubmed_items, SourceName.ctgov: ctgov_items,
         SourceName.rss: rss_items}
RELEVANT = {
    SourceName.pubmed: ["90000001", "90000002"],  # drug in the abstract; in the substances
    # Code name with its generic name; the generic name only as an other name.
    SourceName.ctgov: ["NCT90000001", "NCT90000002", "NCT90000003"],
    SourceName.rss: ["https://news.example.org/2025/08/zongertinib-approval",  # brand
                     "https://news.example.org/2025/05/bayer-priority"],  # in the content
}
DECOYS = {
    # HER2-positive + PIK3CA mutation; EGFR ex20ins + HER2 amplification; HER2 L755S;
    # "without HER2 mutations"; T-DXd in HER2-positive tumours (a recorded record).
    SourceName.pubmed: ["90000011", "90000012", "90000013", "90000014", "32306807"],
    # T-DXd in HER2-positive gastric; EGFR exon 20 (HER2 excluded); pyrotinib HER2-low.
    SourceName.ctgov: ["NCT90000011", "NCT90000012", "NCT90000013"],
    # HER2-low T-DXd; EGFR exon 20 with HER2 amplification mentioned.
    SourceName.rss: ["https://news.example.org/2025/01/enhertu-low",
                     "https://news.example.org/2024/03/rybrevant"],
}


def her2(session: Session) -> Target:
    return session.scalars(select(Target).where(Target.slug == HER2_SLUG)).one()


def decided(session: Session, target: Target) -> tuple[set[str], set[str]]:
    """(linked, rejected) external ids for the target."""
    found = []
    for table in (ItemTarget, ItemRejection):
        found.append(set(session.scalars(
            select(Item.external_id).join(table, table.item_id == Item.id)
            .where(table.target_id == target.id))))
    return found[0], found[1]


@pytest.mark.parametrize("source", list(SourceName))
def test_each_source_keeps_the_relevant_items_and_rejects_every_decoy(
    session: Session, source: SourceName
) -> None:
    target = her2(session)
    items = ITEMS[source]()
    assert {i.external_id for i in items} >= set(RELEVANT[source]) | set(DECOYS[source])

    ingest(session, source=source, target_id=target.id, match_terms=target.match_terms,
           fetched=items, now=FOUND_AT)

    linked, rejected = decided(session, target)
    # Every item is decided once, and as the rule interface decides it.
    rule = compile_rule(target.match_terms)
    assert linked | rejected == {i.external_id for i in items} and not linked & rejected
    assert linked == {i.external_id for i in items if rule.match(match_input(i)).matched}
    assert set(RELEVANT[source]) <= linked
    assert not set(DECOYS[source]) & linked


@pytest.mark.parametrize(
    ("source", "external_id"),
    [(SourceName.pubmed, "90000003")],  # "ERBB2 exon 20 insertions (ex20ins)", no drug
)
@needs_variant_rule
def test_a_variant_named_without_a_drug_is_kept(
    session: Session, source: SourceName, external_id: str
) -> None:
    target = her2(session)
    ingest(session, source=source, target_id=target.id, match_terms=target.match_terms,
           fetched=ITEMS[source](), now=FOUND_AT)
    assert external_id in decided(session, target)[0]


def _without_substances(item: FetchedItem) -> FetchedItem:
    return replace(item, data={**item.data, "substances": []})


def _without_other_names(item: FetchedItem) -> FetchedItem:
    return replace(item, data={**item.data, "intervention_other_names": []})


def _teaser_only(item: FetchedItem) -> FetchedItem:
    return replace(item, summary=item.data["teaser"], data={**item.data, "teaser": None})


@pytest.mark.parametrize(
    ("source", "external_id", "without_the_field"),
    [
        (SourceName.pubmed, "90000002", _without_substances),
        (SourceName.ctgov, "NCT90000003", _without_other_names),
        (SourceName.rss, "https://news.example.org/2025/05/bayer-priority", _teaser_only),
    ],
)
def test_each_source_gives_the_rule_the_field_that_decides(
    session: Session, source: SourceName, external_id: str,
    without_the_field: Callable[[FetchedItem], FetchedItem],
) -> None:
    """The PubMed record names the drug only among its substances, the study only as an
    intervention's other name, the news entry only in its content (not its teaser)."""
    rule = compile_rule(her2(session).match_terms)
    [item] = [i for i in ITEMS[source]() if i.external_id == external_id]
    assert rule.match(match_input(item)).matched
    assert not rule.match(match_input(without_the_field(item))).matched


def test_the_digest_shows_each_matched_items_evidence_with_its_words_marked(
    session: Session, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    target = her2(session)
    make = Factory(session)
    reader = make.subscriber("reader@example.org")
    make.alert(reader, target, frequency="daily", send_hour=8,
               activated_at=FOUND_AT - timedelta(days=1))
    rule = compile_rule(target.match_terms)
    matched = []
    for source, load in ITEMS.items():
        items = load()
        ingest(session, source=source, target_id=target.id, match_terms=target.match_terms,
               fetched=items, now=FOUND_AT)
        matched += [(i, d) for i in items if (d := rule.match(match_input(i))).matched]
    assert len(matched) >= 6

    with frozen_clock(SLOT):
        plan_due(session_factory, settings, now=SLOT)
    digest_id = session.scalars(select(Digest.id).where(
        Digest.subscriber_id == reader.id)).one()
    [view] = load_views(session, settings, [digest_id])
    mail = message_from_bytes(render_digest(view, settings, date=SLOT).data,
                              policy=policy.default)
    text = mail.get_body(("plain",)).get_content().replace("\n    ", " ")  # type: ignore[union-attr]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for item, decision in matched:
        start, end = decision.highlights[0]
        word = " ".join(decision.evidence[start:end].split())
        assert f"**{word}**" in text, (item.external_id, word)
        assert f">{escape(word)}</strong>" in html, (item.external_id, word)
    assert "Heymach JV et al. | N Engl J Med | 2025" in text
    assert "Phase 1 | Recruiting | Boehringer Ingelheim" in text
    for decoy in DECOYS.values():
        for external_id in decoy:
            assert external_id not in text


@pytest.mark.parametrize("source", list(SourceName))
def test_a_stored_item_reads_for_the_rule_as_it_did_when_fetched(
    session: Session, source: SourceName
) -> None:
    """A rematch decides on the stored row what the ingest decided on the fetched item."""
    target = her2(session)
    items = ITEMS[source]()
    ingest(session, source=source, target_id=target.id, match_terms=target.match_terms,
           fetched=items, now=FOUND_AT)
    for item in items:
        stored = session.scalars(select(Item).where(
            Item.source == source, Item.external_id == item.external_id)).one()
        assert match_input(stored) == match_input(item), item.external_id
