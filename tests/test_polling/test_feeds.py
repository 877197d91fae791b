"""Feed state after a poll: HTTP validators, per-feed health, permanent redirects and 410."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.sources.base import FeedOutcome, FeedStatus, PollResult, SourceName, TargetQuery
from db.models import Feed
from tests.fakes.adapters import FakeSource, entry, install
from tests.test_polling.conftest import NOW, SLUG, Run, add_feed, links, state_of

OLD = "https://news.example/old.xml"
NEW = "https://news.example/new.xml"


def outcomes(*by_url: tuple[str, dict[str, Any]]) -> Any:
    """A script step answering one FeedOutcome per listed feed URL."""

    def step(query: TargetQuery, _cursor: Mapping[str, Any]) -> PollResult:
        ids = {ref.url: ref.feed_id for ref in query.feeds}
        feeds = [FeedOutcome(feed_id=ids[url], **fields) for url, fields in by_url]
        return PollResult(items=[], cursor={}, feeds=feeds)

    return step


def feed(session: Session, feed_id: int) -> Feed:
    session.expire_all()
    return session.get_one(Feed, feed_id)


def poll_feeds(run: Run, monkeypatch: pytest.MonkeyPatch, *steps: Any) -> FakeSource:
    source = FakeSource(SourceName.rss, {SLUG: list(steps)})
    install(monkeypatch, source)
    for _ in steps:
        run(source=SourceName.rss)
    return source


def test_a_fetched_feed_keeps_its_validators_and_title(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = add_feed(session, SLUG, OLD)
    poll_feeds(run, monkeypatch, outcomes((OLD, {
        "status": FeedStatus.ok, "etag": '"v1"', "last_modified": "Mon, 01 Jun 2026 07:00:00 GMT",
        "content_hash": "ab" * 32, "title": "HER2 news",
        "items": [entry("e1", "Zongertinib approved")],
    })))
    after = feed(session, stored.id)
    assert (after.etag, after.last_modified, after.content_hash, after.title) == (
        '"v1"', "Mon, 01 Jun 2026 07:00:00 GMT", "ab" * 32, "HER2 news")
    assert (after.last_fetched_at, after.last_success_at, after.last_error) == (NOW, NOW, None)
    assert links(session) == {"e1": ["Zongertinib"]}  # a feed outcome's entries are stored


def test_one_failing_feed_is_counted_on_that_feed_and_the_poll_succeeds(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad, good = add_feed(session, SLUG, OLD), add_feed(session, SLUG, NEW)
    failing = (OLD, {"status": FeedStatus.failed, "error": "feed old.xml: HTTP 404"})
    fine = (NEW, {"status": FeedStatus.not_modified, "etag": '"v2"'})
    poll_feeds(run, monkeypatch, outcomes(failing, fine), outcomes(failing, fine))

    assert (feed(session, bad.id).consecutive_failures, feed(session, bad.id).last_error) == (
        2, "feed old.xml: HTTP 404")
    assert feed(session, bad.id).enabled
    assert (feed(session, good.id).consecutive_failures, feed(session, good.id).etag) == (
        0, '"v2"')
    assert state_of(session, "rss").consecutive_failures == 0


def test_a_permanent_redirect_moves_the_feed(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = add_feed(session, SLUG, OLD)
    poll_feeds(run, monkeypatch,
               outcomes((OLD, {"status": FeedStatus.not_modified, "new_url": NEW})))
    after = feed(session, stored.id)
    assert (after.url, after.enabled) == (NEW, True)


def test_a_redirect_to_a_feed_the_target_has_disables_the_old_entry(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    moved, kept = add_feed(session, SLUG, OLD), add_feed(session, SLUG, NEW)
    poll_feeds(run, monkeypatch, outcomes(
        (OLD, {"status": FeedStatus.ok, "new_url": NEW}),
        (NEW, {"status": FeedStatus.ok}),
    ))
    after = feed(session, moved.id)
    assert (after.url, after.enabled) == (OLD, False)
    assert after.disabled_reason == f"moved permanently to {NEW}, which the target already has"
    assert feed(session, kept.id).enabled


def test_a_gone_feed_is_disabled_and_no_longer_polled(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone, alive = add_feed(session, SLUG, OLD), add_feed(session, SLUG, NEW)
    source = poll_feeds(
        run, monkeypatch,
        outcomes((OLD, {"status": FeedStatus.gone, "error": "HTTP 410 Gone"}),
                 (NEW, {"status": FeedStatus.not_modified})),
        outcomes((NEW, {"status": FeedStatus.not_modified})),
    )
    after = feed(session, gone.id)
    assert (after.enabled, after.disabled_reason) == (False, "HTTP 410 Gone")
    assert [call.feeds for call in source.calls] == [(gone.id, alive.id), (alive.id,)]


def test_a_target_whose_feeds_are_all_disabled_is_not_polled_for_rss(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_feed(session, SLUG, OLD, enabled=False, disabled_reason="HTTP 410 Gone")
    source = FakeSource(SourceName.rss, {SLUG: [PollResult(items=[], cursor={})]})
    # A real FeedSource is configured only for a target with feeds to fetch.
    source.is_configured_for = lambda query: bool(query.feeds)  # type: ignore[method-assign]
    install(monkeypatch, source)
    [report] = run(source=SourceName.rss)
    assert (report.skipped, source.calls) == (True, [])
    assert session.scalars(select(Feed.enabled)).all() == [False]


def test_a_redirect_with_credentials_to_a_feed_the_target_has_keeps_them_out_of_the_reason(
    run: Run, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_new = "https://me:hunter2@news.example/new.xml"
    moved = add_feed(session, SLUG, "https://me:hunter2@news.example/old.xml")
    add_feed(session, SLUG, secret_new)
    poll_feeds(run, monkeypatch, outcomes(
        ("https://me:hunter2@news.example/old.xml",
         {"status": FeedStatus.ok, "new_url": secret_new}),
        (secret_new, {"status": FeedStatus.ok}),
    ))
    assert feed(session, moved.id).disabled_reason == (
        f"moved permanently to {NEW}, which the target already has")
