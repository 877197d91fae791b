"""The catalogue-wide poll (alerts.polling.sweep) against the recorded payloads on a
loopback PubMed and ClinicalTrials.gov: one search per source serves every target, what
matched is stored with links and events, what did not is kept for a bounded window, and
a new target is back-filled from that window without a request upstream."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.items.match_fields import match_input
from alerts.items.service import rematch
from alerts.matching import compile_rule
from alerts.polling.schemas import CATALOGUE, HELD, SourceReport
from alerts.polling.service import poll, source_statuses
from alerts.polling.sweep import RuleCache, poll_catalogue
from alerts.sources.base import SourceName
from alerts.targets.catalogue import load_catalogue
from alerts.targets.service import add_feed
from alerts.targets.sync import sync_catalogue
from db.models import (
    Item,
    ItemEvent,
    ItemRejection,
    ItemTarget,
    SourceState,
    Target,
    UnmatchedItem,
)
from db.session import make_engine, make_sessionmaker, transaction
from tests.conftest import make_settings
from tests.fakes.upstream import PUBMED_PATH, FakeUpstream
from tests.test_polling.conftest import NOW, add_target, events, links

RETENTION_DAYS = 14
Sweep = Callable[..., list[SourceReport]]

NEWS = b"""<?xml version="1.0"?>
<rss version="2.0"><channel><title>Oncology news</title><link>http://news.test/</link>
<item><guid>zongertinib-1</guid><title>Zongertinib shrinks HER2 exon 20 insertion NSCLC</title>
<link>http://news.test/1</link><description>HER2 exon 20 insertion mutations.</description></item>
<item><guid>weather-1</guid><title>Rain expected on Tuesday</title>
<link>http://news.test/2</link><description>Nothing about any target.</description></item>
</channel></rss>"""


@pytest.fixture
def no_real_adapters() -> None:
    """Overrides the package's scripted fakes: the real adapters, against a FakeUpstream."""


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(posted_on=NOW.date()) as fake:
        yield fake


def settings_for(tmp_path: Path, database_url: str, upstream: FakeUpstream,
                 **overrides: Any) -> Settings:
    return make_settings(
        tmp_path, database_url, pubmed_base_url=upstream.pubmed_base_url,
        ctgov_base_url=upstream.ctgov_base_url, http_max_retries=0,
        unmatched_retention_days=RETENTION_DAYS, **overrides,
    )


@pytest.fixture
def sweep(
    session_factory: sessionmaker[Session], tmp_path: Path, shared_url: str,
    upstream: FakeUpstream, move_clock: Any,
) -> Sweep:
    """poll_catalogue() on the test's rolled-back transaction at the frozen time, with a
    compiled catalogue of its own."""
    rules = RuleCache()

    def run(**kwargs: Any) -> list[SourceReport]:
        kwargs.setdefault("owner", "test")
        return poll_catalogue(session_factory, settings_for(tmp_path, shared_url, upstream),
                              rules=rules, **kwargs)

    return run


def by_source(reports: list[SourceReport]) -> dict[str, SourceReport]:
    assert {r.target for r in reports} == {CATALOGUE}
    return {str(r.source): r for r in reports}


def add_whole_catalogue(session: Session) -> None:
    sync_catalogue(session, load_catalogue(), now=NOW)


def add_synthetic_targets(session: Session, count: int) -> None:
    """Targets derived from the catalogue's entries under names no record uses."""
    entries = load_catalogue().entries
    for number in range(count):
        entry = entries[number % len(entries)]
        session.add(Target(
            slug=f"{entry.slug}-synthetic-{number}", name=f"{entry.name} {number}",
            match_terms={**entry.rule_definition(), "genes": [f"SYN{number}X"],
                         "drugs": [{"name": f"synthomab{number}", "codes": [],
                                    "brands": [], "shared_with": []}]},
        ))
    session.flush()


def requests_by_path(upstream: FakeUpstream) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in upstream.requests]


def linked_pairs(session: Session) -> set[tuple[str, str]]:
    rows = session.execute(
        select(Item.external_id, Target.slug)
        .join(ItemTarget, ItemTarget.item_id == Item.id)
        .join(Target, Target.id == ItemTarget.target_id)
    )
    return {(external_id, slug) for external_id, slug in rows}


def count(session: Session, model: type[Any]) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model)) or 0


# -- one cycle, every target -------------------------------------------------------------


@pytest.mark.parametrize("extra_targets", [0, 54, 499], ids=["1", "55", "500"])
def test_one_cycle_serves_every_target_with_the_same_requests(
    session: Session, sweep: Sweep, upstream: FakeUpstream, extra_targets: int
) -> None:
    if extra_targets:
        add_whole_catalogue(session)
        add_synthetic_targets(session, extra_targets - 54)
    assert count(session, Target) == 1 + extra_targets

    reports = by_source(sweep())

    # Whatever the catalogue holds: one ESearch and one EFetch (10 records, one batch),
    # the registry's version and one page of studies (20 studies); no feed.
    assert sorted(requests_by_path(upstream)) == [
        ("GET", "/api/v2/studies"), ("GET", "/api/v2/version"),
        ("GET", "/entrez/eutils/efetch.fcgi"), ("GET", "/entrez/eutils/esearch.fcgi"),
    ]
    assert (reports["pubmed"].requests, reports["ctgov"].requests) == (2, 2)
    assert reports["rss"].skipped
    # ... and every target was served: the whole catalogue finds more than one target.
    served = {slug for _item, slug in linked_pairs(session)}
    if extra_targets:
        assert {"her2", "her3", "pd-1-pd-l1", "egfr-sensitising"} <= served
    else:
        assert served == set()


def test_the_esearch_keeps_its_result_on_the_history_server_and_efetch_pages_through_it(
    sweep: Sweep, upstream: FakeUpstream
) -> None:
    sweep(source=SourceName.pubmed)
    [search] = upstream.requests_to("esearch.fcgi")
    assert (search.params["term"], search.params["datetype"], search.params["usehistory"]) \
        == ("all[sb]", "edat", "y")
    assert (search.params["mindate"], search.params["maxdate"]) == ("2026/05/25", "2026/06/01")
    [fetch] = upstream.requests_to("efetch.fcgi")
    assert "id" not in fetch.params
    assert (fetch.params["query_key"], fetch.params["retstart"], fetch.params["retmax"]) \
        == ("1", "0", str(len(upstream.pmids)))


def test_items_are_stored_only_for_the_targets_that_match_them(
    session: Session, sweep: Sweep, upstream: FakeUpstream
) -> None:
    add_whole_catalogue(session)
    reports = by_source(sweep())

    pairs = linked_pairs(session)
    stored = set(session.scalars(select(Item.external_id)))
    kept = set(session.scalars(select(UnmatchedItem.external_id)))
    # Every fetched record is either an item linked to a target, or in the window.
    assert stored == {item for item, _slug in pairs}
    assert stored | kept == set(upstream.pmids) | set(upstream.nct_ids)
    assert not stored & kept
    # No rejection per target: storage grows with what matched.
    assert count(session, ItemRejection) == 0
    # Each link is the target's own rule's decision, with its evidence and one `new` event.
    rules = {t.slug: compile_rule(t.match_terms) for t in session.scalars(select(Target))}
    for item in session.scalars(select(Item)):
        for slug in {s for i, s in pairs if i == item.external_id}:
            assert rules[slug].match(match_input(item)).matched, (item.external_id, slug)
    assert count(session, ItemEvent) == len(pairs)
    assert {kind for _i, kind, _c in events(session, "her2")} == {"new"}
    assert reports["pubmed"].new + reports["ctgov"].new == len(pairs)
    evidence = session.scalars(select(ItemTarget.evidence)).all()
    assert all(evidence)


def test_a_second_cycle_fetches_no_known_record_again_and_announces_nothing_twice(
    session: Session, sweep: Sweep, upstream: FakeUpstream, move_clock: Any
) -> None:
    add_whole_catalogue(session)
    sweep()
    first = count(session, ItemEvent)
    move_clock(NOW + timedelta(hours=2))
    upstream.requests.clear()

    reports = by_source(sweep(now=NOW + timedelta(hours=2)))

    # PubMed: the overlapping window lists the same records, all stored or kept: no
    # EFetch. ClinicalTrials.gov: the registry did not change, no search.
    assert sorted(r.path for r in upstream.requests) == [
        "/api/v2/version", "/entrez/eutils/esearch.fcgi"]
    assert reports["ctgov"].skipped and count(session, ItemEvent) == first


def test_a_trial_change_reaches_every_target_linked_to_it(
    session: Session, sweep: Sweep, upstream: FakeUpstream, move_clock: Any
) -> None:
    add_whole_catalogue(session)
    sweep()
    upstream.set_study_status("NCT06382129", "COMPLETED")
    move_clock(NOW + timedelta(hours=2))

    by_source(sweep(now=NOW + timedelta(hours=2), source=SourceName.ctgov))

    for slug in ("her3", "pd-1-pd-l1"):
        updated = [(i, c) for i, kind, c in events(session, slug) if kind == "updated"]
        assert [i for i, _c in updated] == ["NCT06382129"]
        assert updated[0][1][0]["new"] == "COMPLETED"


# -- the kept window ---------------------------------------------------------------------


def test_unmatched_records_are_kept_for_the_window_then_pruned(
    session: Session, sweep: Sweep, move_clock: Any
) -> None:
    sweep()  # the suite's catalogue: her2-exon20 alone matches none of the records
    assert count(session, Item) == 0
    assert count(session, UnmatchedItem) == 30
    assert set(session.scalars(select(UnmatchedItem.seen_at))) == {NOW}

    within = NOW + timedelta(days=RETENTION_DAYS)
    move_clock(within)
    sweep(now=within)
    assert count(session, UnmatchedItem) == 30

    after = within + timedelta(days=1)
    move_clock(after)
    sweep(now=after)
    assert count(session, UnmatchedItem) == 0


def test_a_new_target_is_back_filled_from_the_window_without_a_request_or_an_event(
    session: Session, sweep: Sweep, upstream: FakeUpstream
) -> None:
    sweep()
    assert count(session, UnmatchedItem) == 30
    fetched = len(upstream.requests)

    report = sync_catalogue(session, load_catalogue(), now=NOW + timedelta(hours=1))

    assert len(upstream.requests) == fetched  # nothing refetched
    pairs = linked_pairs(session)
    assert {("32306807", "her2"), ("NCT06382129", "her3"), ("NCT06382129", "pd-1-pd-l1"),
            ("NCT04795661", "pd-1-pd-l1")} <= pairs
    assert report.rematched["her2"].backfilled == 1
    assert "added her2 (back-filled 1 from the kept window)" in report.lines()
    # Out of the window into the items, first seen when the window saw them, no event:
    # they are as old as the window (the rule for old items newly matched).
    assert count(session, UnmatchedItem) == 30 - len({item for item, _slug in pairs})
    assert set(session.scalars(select(ItemTarget.created_at))) == {NOW}
    assert count(session, ItemEvent) == 0


def test_a_record_a_target_s_own_poll_stores_leaves_the_window(
    session: Session, sweep: Sweep, session_factory: sessionmaker[Session],
    tmp_path: Path, shared_url: str, upstream: FakeUpstream,
) -> None:
    sweep(source=SourceName.pubmed)
    assert count(session, UnmatchedItem) == len(upstream.pmids)

    poll(session_factory, settings_for(tmp_path, shared_url, upstream), owner="test",
         source=SourceName.pubmed, target_slug="her2-exon20", now=NOW)

    # The first history decided every record for the target: items now, not in the window.
    assert set(session.scalars(select(Item.external_id))) == set(upstream.pmids)
    assert count(session, UnmatchedItem) == 0


def test_rematch_back_fills_from_items_other_targets_matched(
    session: Session, sweep: Sweep, upstream: FakeUpstream
) -> None:
    add_whole_catalogue(session)
    sweep()
    her2 = session.scalars(select(Target).where(Target.slug == "her2")).one()
    add_target(session, "her2-again", match_terms=dict(her2.match_terms))
    fetched = len(upstream.requests)

    counts = rematch(session, "her2-again", now=NOW + timedelta(hours=1))

    assert len(upstream.requests) == fetched
    assert set(links(session, "her2-again")) == set(links(session, "her2"))
    assert counts.backfilled == counts.newly_matched == len(links(session, "her2"))
    assert events(session, "her2-again") == []


def test_a_catalogue_feed_is_fetched_once_and_matched_against_every_target(
    session: Session, sweep: Sweep, upstream: FakeUpstream
) -> None:
    add_whole_catalogue(session)
    url = upstream.add_feed("oncology", NEWS)
    add_feed(session, None, url)

    reports = by_source(sweep(source=SourceName.rss))

    assert len(upstream.requests_to("/feeds/oncology.xml")) == 1
    assert reports["rss"].new >= 2
    assert {slug for item, slug in linked_pairs(session) if "zongertinib-1" in item} \
        >= {"her2-exon20", "her2"}
    assert session.scalars(select(UnmatchedItem.payload["title"].as_string())).all() == [
        "Rain expected on Tuesday"]


# -- leases, failures, operators ---------------------------------------------------------


def test_a_catalogue_state_held_by_a_live_lease_is_left_alone_until_it_expires(
    session: Session, sweep: Sweep, upstream: FakeUpstream, move_clock: Any
) -> None:
    """A process that died mid-poll holds its lease until it expires: nobody polls the
    source meanwhile; afterwards it is taken over and stores each record once."""
    sweep(source=SourceName.pubmed)  # makes the state row
    session.execute(update(SourceState).where(SourceState.target_id.is_(None)).values(
        lease_owner="dead", lease_expires_at=NOW + timedelta(minutes=10),
        cursor={}, next_poll_at=None))
    session.execute(update(UnmatchedItem).values(seen_at=NOW))
    upstream.requests.clear()

    [held] = sweep(source=SourceName.pubmed)
    assert (held.skipped, held.reason, upstream.requests) == (True, HELD, [])

    move_clock(NOW + timedelta(minutes=11))
    [taken] = sweep(source=SourceName.pubmed, now=NOW + timedelta(minutes=11))
    assert not taken.failed and taken.requests > 0
    state = session.scalars(select(SourceState).where(SourceState.target_id.is_(None))).one()
    assert (state.lease_owner, state.last_success_at) == (None, NOW + timedelta(minutes=11))
    assert count(session, UnmatchedItem) == len(upstream.pmids)


def test_a_failing_source_is_recorded_with_backoff_and_shown_as_the_catalogue(
    session: Session, sweep: Sweep, upstream: FakeUpstream, move_clock: Any,
    settings: Settings,
) -> None:
    upstream.fail(f"{PUBMED_PATH}/esearch.fcgi", 500)
    [first] = sweep(source=SourceName.pubmed)
    assert first.failed and "500" in (first.error or "")
    later = NOW + timedelta(hours=1)
    move_clock(later)
    [second] = sweep(source=SourceName.pubmed, now=later)
    assert second.failed

    state = session.scalars(select(SourceState).where(SourceState.target_id.is_(None))).one()
    assert state.consecutive_failures == 2
    assert state.next_poll_at == later + timedelta(hours=2)  # 1 h, then doubled
    assert (state.lease_owner, state.cursor) == (None, {})
    [status] = [s for s in source_statuses(session, settings) if s.target == CATALOGUE]
    assert (status.source, status.consecutive_failures) == ("pubmed", 2)


def test_two_processes_polling_the_catalogue_at_once_store_and_announce_once(
    db_url: str, tmp_path: Path, upstream: FakeUpstream
) -> None:
    """Real commits, two owners at the same instant: the lease lets one poll each
    source; every (item, target) has one `new` event."""
    engine = make_engine(db_url)
    try:
        factory = make_sessionmaker(engine)
        with transaction(factory) as session:
            add_whole_catalogue(session)
        settings = settings_for(tmp_path, db_url, upstream)
        barrier = threading.Barrier(2)
        results: dict[str, list[SourceReport]] = {}

        def run(owner: str) -> None:
            barrier.wait()
            results[owner] = poll_catalogue(factory, settings, owner=owner, now=NOW,
                                            rules=RuleCache())

        threads = [threading.Thread(target=run, args=(o,)) for o in ("one", "two")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

        polled = [r for reports in results.values() for r in reports
                  if not r.skipped and not r.failed]
        assert sorted(str(r.source) for r in polled) == ["ctgov", "pubmed"]
        with factory() as session:
            announced = session.execute(
                select(ItemEvent.item_id, ItemEvent.target_id, ItemEvent.kind)).all()
            assert len(announced) == len(set(announced)) == count(session, ItemTarget) > 0
    finally:
        engine.dispose()
