"""The poll cycle with scripted adapters: what is stored, when the cursor moves, how
failures are recorded and how leases keep pollers apart."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from alerts.errors import NotFound
from alerts.items import repository as items_repository
from alerts.polling import repository
from alerts.polling import service as polling_service
from alerts.polling.schemas import HELD, NO_FEEDS, NOT_CONFIGURED, NOT_DUE, UNCHANGED
from alerts.sources.base import PollResult, RetryLater, SourceError, SourceName
from db.models import Item, ItemEvent, SourceState
from tests.conftest import ON_POSTGRES
from tests.fakes.adapters import FakeSource, article, entry, install, result, trial
from tests.rules import needs_variant_rule
from tests.test_polling.conftest import (
    NOW,
    SLUG,
    Run,
    add_target,
    events,
    links,
    rejected,
    report_for,
    state_of,
    stored_ids,
)

HER2_TITLE = "Zongertinib in HER2 exon 20 insertion-mutant NSCLC"
OTHER_TITLE = "Pharmacokinetics of trastuzumab deruxtecan in mice"


def pubmed_source(*steps: object) -> FakeSource:
    return FakeSource(SourceName.pubmed, {SLUG: list(steps)})  # type: ignore[arg-type]


# -- storing ------------------------------------------------------------------------------


def test_a_first_poll_stores_items_links_and_one_new_event_each(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = pubmed_source(result(article("1", HER2_TITLE), article("2", OTHER_TITLE),
                                  cursor={"window_end": "2026-06-01"}))
    install(monkeypatch, source)

    [report] = run(source=SourceName.pubmed)

    assert (report.new, report.updated, report.failed, report.skipped) == (1, 0, False, False)
    # Both are stored; the target's rule linked the first and rejected the second (a
    # broad upstream query gives recall, the local rule decides).
    assert stored_ids(session, "pubmed") == {"1", "2"}
    assert list(links(session)) == ["1"]
    assert "zongertinib" in [term.lower() for term in links(session)["1"]]
    assert rejected(session) == {"2"}
    assert events(session) == [("1", "new", [])]
    state = state_of(session, "pubmed")
    assert state.cursor == {"window_end": "2026-06-01"}
    assert state.last_success_at == NOW
    assert state.next_poll_at == NOW + timedelta(minutes=60)
    assert (state.polls_total, state.failures_total, state.consecutive_failures) == (1, 0, 0)
    assert (state.lease_owner, state.lease_expires_at) == (None, None)


def test_a_second_poll_of_the_same_items_adds_nothing(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = pubmed_source(result(article("1", HER2_TITLE), article("2", OTHER_TITLE)))
    install(monkeypatch, source)
    run()

    [second] = [r for r in run() if r.source == SourceName.pubmed]

    assert (second.new, second.updated) == (0, 0)
    assert session.scalar(select(func.count()).select_from(Item)) == 2
    assert len(events(session)) == 1
    # The adapter was told both ids are decided (matched or rejected), so PubMed need
    # not fetch them again.
    assert source.calls[1].known == {"1", "2"}
    assert source.calls[0].known == set()


def test_an_item_stored_for_one_target_is_still_fetched_and_linked_for_another(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_target(session, "her2-other", pubmed_query="HER2")
    shared = article("1", HER2_TITLE)
    source = FakeSource(SourceName.pubmed, {SLUG: [result(shared)],
                                            "her2-other": [result(shared)]})
    install(monkeypatch, source)

    run(source=SourceName.pubmed, target_slug=SLUG)
    [report] = run(source=SourceName.pubmed, target_slug="her2-other")

    # "Known" means stored AND decided for this target: otherwise PubMed would skip it.
    assert source.calls[1].known == set()
    assert report.new == 1
    assert events(session, "her2-other") == [("1", "new", [])]
    assert session.scalar(select(func.count()).select_from(Item)) == 1


def test_the_first_poll_looks_back_and_later_polls_resume_from_the_cursor(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = pubmed_source(result(cursor={"window_end": "2026-06-01"}))
    install(monkeypatch, source)
    run()
    run()
    first, second = source.calls
    assert (first.cursor, first.since) == ({}, NOW - timedelta(days=7))
    assert second.cursor == {"window_end": "2026-06-01"}


def test_a_failure_while_storing_stores_nothing_and_keeps_the_cursor(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = pubmed_source(result(cursor={"window_end": "A"}),
                           result(article("1", HER2_TITLE), cursor={"window_end": "B"}))
    install(monkeypatch, source)
    run()

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(items_repository, "add_events", broken)
    [report] = run(source=SourceName.pubmed)

    assert report.failed and report.error == "storing failed: RuntimeError: disk full"
    assert stored_ids(session, "pubmed") == set()  # the items went with the events
    state = state_of(session, "pubmed")
    assert state.cursor == {"window_end": "A"}
    assert (state.consecutive_failures, state.lease_owner) == (1, None)


def test_the_cursor_advances_only_on_success(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, pubmed_source(
        result(cursor={"window_end": "A"}),
        RetryLater("pubmed esearch: HTTP 503", seconds=1),
        result(cursor={"window_end": "C"}),
    ))
    cursors = []
    for _ in range(3):
        run(source=SourceName.pubmed)
        cursors.append(state_of(session, "pubmed").cursor)
    assert cursors == [{"window_end": "A"}, {"window_end": "A"}, {"window_end": "C"}]


def test_upstream_unchanged_is_a_successful_skip(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, FakeSource(SourceName.ctgov, {SLUG: [
        PollResult(items=[], cursor={"data_timestamp": "T"}, skipped=True, requests=1),
    ]}))
    [report] = run(source=SourceName.ctgov)
    assert (report.skipped, report.reason, report.failed, report.requests) == (
        True, UNCHANGED, False, 1)
    assert state_of(session, "ctgov").last_success_at == NOW


def test_warnings_are_reported_and_kept_for_the_operator(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    warning = 'PubMed dropped the phrase "p.E1317Q" from the query'
    install(monkeypatch, pubmed_source(result(warnings=[warning])))
    [report] = run(source=SourceName.pubmed)
    assert report.warnings == [warning]
    assert state_of(session, "pubmed").warnings == [warning]


# -- failures -----------------------------------------------------------------------------


def pubmed_failing_beside_ctgov(monkeypatch: pytest.MonkeyPatch) -> None:
    install(
        monkeypatch,
        pubmed_source(SourceError("pubmed esearch: HTTP 400 bad term")),
        FakeSource(SourceName.ctgov, {SLUG: [result(trial("NCT01"))]}),
    )


def test_a_failing_source_is_recorded_while_the_others_succeed(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    pubmed_failing_beside_ctgov(monkeypatch)
    reports = run()

    pubmed, ctgov = report_for(reports, "pubmed"), report_for(reports, "ctgov")
    assert (pubmed.failed, pubmed.error) == (True, "pubmed esearch: HTTP 400 bad term")
    assert (ctgov.failed, ctgov.new) == (False, 1)
    state = state_of(session, "pubmed")
    assert state.last_error == "pubmed esearch: HTTP 400 bad term"
    assert state.last_error_at == NOW
    assert (state.consecutive_failures, state.failures_total, state.polls_total) == (1, 1, 1)
    assert state.next_poll_at == NOW + timedelta(minutes=60)
    assert (state.lease_owner, state.cursor) == (None, {})
    assert stored_ids(session, "ctgov") == {"NCT01"}


def test_a_failure_the_database_cannot_record_costs_the_other_sources_nothing(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    pubmed_failing_beside_ctgov(monkeypatch)

    def unreachable(*_args: object, **_kwargs: object) -> object:
        raise OperationalError("UPDATE source_states ...", {}, Exception("connection lost"))

    monkeypatch.setattr(repository, "record_failure", unreachable)
    reports = run()

    pubmed = report_for(reports, "pubmed")
    assert (pubmed.failed, pubmed.error, pubmed.next_poll_at) == (
        True, "pubmed esearch: HTTP 400 bad term", None)
    assert not report_for(reports, "ctgov").failed
    assert stored_ids(session, "ctgov") == {"NCT01"}
    # Not recorded: the lease stays until it expires, then the state is polled again.
    assert state_of(session, "pubmed").lease_owner == "test"


def test_a_password_in_an_error_never_reaches_the_recorded_state(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, pubmed_source(SourceError(
        "pubmed esearch: https://me:hunter2@eutils.example/esearch.fcgi refused")))

    [report] = run(source=SourceName.pubmed)

    expected = "pubmed esearch: https://eutils.example/esearch.fcgi refused"
    assert report.error == state_of(session, "pubmed").last_error == expected


@pytest.mark.parametrize(
    ("failures_before", "delay"),
    [
        (0, timedelta(minutes=60)),
        (1, timedelta(minutes=120)),
        (2, timedelta(minutes=240)),
        (4, timedelta(minutes=960)),
        (5, timedelta(hours=24)),  # 32 h, capped
        (40, timedelta(hours=24)),
    ],
)
def test_failures_back_off_exponentially_up_to_a_day(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch,
    failures_before: int, delay: timedelta,
) -> None:
    install(monkeypatch, pubmed_source(SourceError("down")))
    run(source=SourceName.pubmed)  # creates the state
    session.execute(update(SourceState).where(SourceState.source == "pubmed")
                    .values(consecutive_failures=failures_before))
    [report] = run(source=SourceName.pubmed)
    state = state_of(session, "pubmed")
    assert state.consecutive_failures == failures_before + 1
    assert state.next_poll_at == report.next_poll_at == NOW + delay


@pytest.mark.parametrize(
    ("retry_after", "delay"),
    [(7200.0, timedelta(hours=2)), (5.0, timedelta(minutes=60))],
    ids=["longer-than-backoff", "shorter-than-backoff"],
)
def test_retry_later_is_respected(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch,
    retry_after: float, delay: timedelta,
) -> None:
    install(monkeypatch, pubmed_source(RetryLater("HTTP 429", seconds=retry_after)))
    [report] = run(source=SourceName.pubmed)
    assert report.failed and report.error == "HTTP 429"
    assert state_of(session, "pubmed").next_poll_at == NOW + delay


def test_an_unexpected_exception_is_logged_reported_and_contained(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    install(
        monkeypatch,
        pubmed_source(KeyError("PubmedArticleSet")),
        FakeSource(SourceName.ctgov, {SLUG: [result(trial("NCT01"))]}),
    )
    with caplog.at_level(logging.INFO, logger="alerts.polling"):
        reports = run()
    pubmed = report_for(reports, "pubmed")
    assert pubmed.failed and pubmed.error == "unexpected KeyError: 'PubmedArticleSet'"
    assert report_for(reports, "ctgov").new == 1
    [crash] = [r for r in caplog.records if r.getMessage().startswith("poll.crashed")]
    assert crash.exc_info is not None  # the traceback is in the log
    assert any(r.getMessage().startswith("poll.done source=ctgov target=her2-exon20 new=1")
               for r in caplog.records)
    assert state_of(session, "pubmed").consecutive_failures == 1


def test_a_success_after_failures_resets_the_streak_but_not_the_totals(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, pubmed_source(SourceError("a"), SourceError("b"), result()))
    for _ in range(3):
        run(source=SourceName.pubmed)
    state = state_of(session, "pubmed")
    assert (state.consecutive_failures, state.failures_total, state.polls_total) == (0, 2, 3)
    assert state.last_error == "b"  # kept as history; last_success_at is later


# -- what is kept for a target -------------------------------------------------------------

KEPT = [
    pytest.param("Zongertinib in HER2 exon 20 insertion NSCLC", True),
    pytest.param("Sevabertinib (BAY 2927088) shows activity in pretreated patients", True),
    pytest.param("ERBB2 ex20ins and YVMA: outcomes in lung adenocarcinoma", True,
                 marks=needs_variant_rule),
]
DROPPED = [
    "EGFR exon 20 insertion NSCLC treated with amivantamab",
    "HER2-amplified breast cancer treated with trastuzumab deruxtecan",
    "HER2-positive breast cancer treated with trastuzumab deruxtecan",
    "MET exon 20 skipping in lung cancer",
    "Pyrotinib in HER2-positive metastatic breast cancer",
    "Poziotinib and mobocertinib in EGFR exon 20 insertion NSCLC",
]


@pytest.mark.parametrize(("title", "kept"), KEPT + [(t, False) for t in DROPPED])
def test_feed_entries_are_linked_only_when_they_match_the_target(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch, title: str, kept: bool
) -> None:
    install(monkeypatch, FakeSource(SourceName.rss, {SLUG: [result(entry("e1", title))]}))
    [report] = run(source=SourceName.rss)
    assert report.new == int(kept)
    assert stored_ids(session, "rss") == {"e1"}  # stored either way, with the decision
    assert ("e1" in links(session)) is kept
    assert ("e1" in rejected(session)) is not kept
    if kept:
        assert links(session)["e1"]  # the matched terms are stored with the link


def test_feed_entries_match_on_their_summary_too(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, FakeSource(SourceName.rss, {SLUG: [result(
        entry("e1", "Phase 2 results announced", "Zongertinib met its primary endpoint."),
    )]}))
    run(source=SourceName.rss)
    assert [term.lower() for term in links(session)["e1"]] == ["zongertinib"]


# -- trials -------------------------------------------------------------------------------


def test_a_changed_trial_gets_an_update_event_for_every_linked_target(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_target(session, "her2-other", ctgov_term="HER2")
    before = trial("NCT01", "RECRUITING", phases=["PHASE1"], countries=["Japan"])
    after = trial("NCT01", "ACTIVE_NOT_RECRUITING", phases=["PHASE1", "PHASE2"],
                  countries=["Japan"])
    script = {SLUG: [result(before), result(after)], "her2-other": [result(before),
                                                                    result(after)]}
    install(monkeypatch, FakeSource(SourceName.ctgov, script))
    run(source=SourceName.ctgov)

    reports = run(source=SourceName.ctgov)

    # The first target polled updates the stored trial; the second finds it current.
    assert sorted(r.updated for r in reports) == [0, 1]
    changes = [
        {"field": "Overall status", "old": "RECRUITING", "new": "ACTIVE_NOT_RECRUITING"},
        {"field": "Phases", "old": "PHASE1", "new": "PHASE1, PHASE2"},
    ]
    for slug in (SLUG, "her2-other"):
        assert events(session, slug) == [("NCT01", "new", []), ("NCT01", "updated", changes)]
    stored = session.scalars(select(Item).where(Item.external_id == "NCT01")).one()
    assert stored.data["tracked"]["overall_status"] == "ACTIVE_NOT_RECRUITING"
    assert stored.updated_at == NOW


def test_a_trial_whose_lists_only_changed_order_is_not_updated(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, FakeSource(SourceName.ctgov, {SLUG: [
        result(trial("NCT01", countries=["Japan", "France"])),
        result(trial("NCT01", countries=["France", "Japan"])),
    ]}))
    run()
    [report] = run(source=SourceName.ctgov)
    assert report.updated == 0
    assert [kind for _id, kind, _c in events(session)] == ["new"]


def test_a_trial_newly_found_for_a_target_gets_new_not_updated_there(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_target(session, "her2-other", ctgov_term="HER2")
    install(monkeypatch, FakeSource(SourceName.ctgov, {
        SLUG: [result(trial("NCT01", "RECRUITING"))],
        "her2-other": [result(), result(trial("NCT01", "COMPLETED"))],
    }))
    run(source=SourceName.ctgov)
    run(source=SourceName.ctgov, target_slug="her2-other")
    assert [kind for _id, kind, _c in events(session, "her2-other")] == ["new"]
    assert [kind for _id, kind, _c in events(session, SLUG)] == ["new", "updated"]


# -- which states are polled ----------------------------------------------------------------


def test_a_source_without_a_query_for_the_target_is_skipped_without_a_state(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, FakeSource(SourceName.pubmed, {}), FakeSource(SourceName.rss, {}))
    reports = run(source=None, target_slug=SLUG)
    assert report_for(reports, "pubmed").reason == NOT_CONFIGURED
    assert report_for(reports, "rss").reason == NO_FEEDS
    assert session.scalar(select(func.count()).select_from(SourceState)
                          .where(SourceState.source == "pubmed")) == 0


def test_an_unknown_target_is_not_found(run: Run) -> None:
    with pytest.raises(NotFound, match="unknown target 'nope'"):
        run(target_slug="nope")


def test_a_state_leased_by_another_poller_is_skipped(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = pubmed_source(result(article("1", HER2_TITLE)))
    install(monkeypatch, source)
    run(source=SourceName.pubmed)
    session.execute(update(SourceState).where(SourceState.source == "pubmed").values(
        lease_owner="scheduler-2", lease_expires_at=NOW + timedelta(minutes=5)))

    [report] = run(source=SourceName.pubmed)

    assert (report.skipped, report.reason) == (True, HELD)
    assert len(source.calls) == 1
    assert state_of(session, "pubmed").lease_owner == "scheduler-2"


def test_an_expired_lease_is_reclaimed(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = pubmed_source(result())
    install(monkeypatch, source)
    run(source=SourceName.pubmed)
    session.execute(update(SourceState).where(SourceState.source == "pubmed").values(
        lease_owner="killed-process", lease_expires_at=NOW - timedelta(seconds=1)))

    [report] = run(source=SourceName.pubmed)

    assert not report.skipped and len(source.calls) == 2
    assert state_of(session, "pubmed").lease_owner is None


def test_a_lease_taken_over_while_fetching_is_not_released_by_the_old_owner(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow_fetch(_query: object, _cursor: object) -> PollResult:
        # Our lease expired mid-fetch and another process claimed the state.
        session.execute(update(SourceState).where(SourceState.source == "pubmed").values(
            lease_owner="other", lease_expires_at=NOW + timedelta(minutes=10)))
        return result(article("1", HER2_TITLE))

    install(monkeypatch, pubmed_source(slow_fetch))
    [report] = run(source=SourceName.pubmed)
    assert report.new == 1
    assert state_of(session, "pubmed").lease_owner == "other"


@pytest.mark.parametrize(
    ("next_poll_in", "polled"),
    [(None, True), (timedelta(minutes=-1), True), (timedelta(0), True),
     (timedelta(minutes=1), False)],
    ids=["never-polled", "overdue", "due-now", "not-due"],
)
def test_due_only_polls_the_states_whose_time_has_come(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch,
    next_poll_in: timedelta | None, polled: bool,
) -> None:
    source = pubmed_source(result())
    install(monkeypatch, source)
    repository.ensure_states(session, [("pubmed", _seeded_id(session))])
    session.execute(update(SourceState).where(SourceState.source == "pubmed").values(
        next_poll_at=None if next_poll_in is None else NOW + next_poll_in))

    [report] = run(source=SourceName.pubmed, due_only=True)

    assert (len(source.calls) == 1) is polled
    assert report.skipped is not polled
    if not polled:
        assert report.reason == NOT_DUE


def test_without_due_only_a_state_that_is_not_due_is_polled(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = pubmed_source(result())
    install(monkeypatch, source)
    run(source=SourceName.pubmed)  # next poll in an hour
    run(source=SourceName.pubmed)
    assert len(source.calls) == 2


def test_ensuring_states_twice_makes_one_row(session: Session) -> None:
    target_id = _seeded_id(session)
    first = repository.ensure_states(session, [("pubmed", target_id)])
    second = repository.ensure_states(session, [("pubmed", target_id), ("ctgov", target_id)])
    assert first[("pubmed", target_id)] == second[("pubmed", target_id)]
    assert session.scalar(select(func.count()).select_from(SourceState)) == 2


@pytest.mark.skipif(not ON_POSTGRES, reason="advisory locks are PostgreSQL's; SQLite "
                    "deployments run one process")
def test_a_rate_limited_source_locked_by_another_process_is_skipped(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch, engine: Engine
) -> None:
    pubmed = pubmed_source(result())
    rss = FakeSource(SourceName.rss, {SLUG: [result()]})
    install(monkeypatch, pubmed, rss)
    with engine.connect() as other_process:
        key = repository.lock_key("pubmed")
        assert other_process.execute(text(f"SELECT pg_try_advisory_lock({key})")).scalar()
        reports = run()
        other_process.execute(text(f"SELECT pg_advisory_unlock({key})"))
    assert report_for(reports, "pubmed").reason == HELD
    assert pubmed.calls == []
    assert not report_for(reports, "rss").skipped  # feeds have no shared rate limit
    # ... and the lock is ours again once the other process let go.
    assert not report_for(run(source=SourceName.pubmed), "pubmed").skipped


# -- backfill -------------------------------------------------------------------------------


def test_a_backfill_searches_from_since_and_keeps_an_existing_cursor(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = pubmed_source(
        result(cursor={"window_end": "2026-06-01"}),
        result(article("1", HER2_TITLE), cursor={"window_end": "backfill"}),
    )
    install(monkeypatch, source)
    run(source=SourceName.pubmed)
    since = NOW - timedelta(days=400)

    [report] = run(source=SourceName.pubmed, since=since)

    assert (source.calls[1].cursor, source.calls[1].since) == ({}, since)
    assert report.new == 1
    assert state_of(session, "pubmed").cursor == {"window_end": "2026-06-01"}


def test_a_backfill_of_a_never_polled_source_sets_its_cursor(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, pubmed_source(result(cursor={"window_end": "2026-06-01"})))
    run(source=SourceName.pubmed, since=NOW - timedelta(days=30))
    assert state_of(session, "pubmed").cursor == {"window_end": "2026-06-01"}


def test_progress_reaches_the_caller(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, pubmed_source(result(article("1", HER2_TITLE))))
    seen: list[tuple[str, int, int | None]] = []
    run(source=SourceName.pubmed, progress=lambda what, done, total: seen.append(
        (what, done, total)))
    assert seen == [("pubmed items", 1, 1)]


def _seeded_id(session: Session) -> int:
    from db.models import Target

    return session.scalars(select(Target.id).where(Target.slug == SLUG)).one()


def test_events_are_created_at_storage_time(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, pubmed_source(result(article("1", HER2_TITLE))))
    run(source=SourceName.pubmed)
    assert session.scalars(select(ItemEvent.created_at)).all() == [NOW]


def test_a_long_fetch_keeps_renewing_its_lease(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    renewals: list[tuple[str, object]] = []
    real_renew = repository.renew_lease

    def recording(session: Session, state_id: int, owner: str, *, expires_at: object) -> bool:
        renewals.append((owner, expires_at))
        return real_renew(session, state_id, owner, expires_at=expires_at)

    async def slow_fetch(_query: object, _cursor: object) -> PollResult:
        await asyncio.sleep(0.2)  # about 20 renewal periods at the patched rate
        return result(article("1", HER2_TITLE))

    monkeypatch.setattr(repository, "renew_lease", recording)
    monkeypatch.setattr(polling_service, "LEASE_RENEWAL", 0.01 / 600)  # every 10 ms
    install(monkeypatch, pubmed_source(slow_fetch))

    [report] = run(source=SourceName.pubmed)

    assert report.new == 1
    assert renewals and {owner for owner, _at in renewals} == {"test"}
    assert renewals[0][1] == NOW + timedelta(seconds=600)  # now + lease_seconds
    assert state_of(session, "pubmed").lease_owner is None  # released after storing
