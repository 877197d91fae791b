"""Every poll of a (source, target) ends by ALERTS_POLL_DEADLINE_SECONDS: a fetch that
would never end is a recorded failure with backoff, the other sources go on, and the
lease is not renewed beyond the deadline."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.polling import repository
from alerts.polling import service as polling_service
from alerts.polling.service import poll
from alerts.sources.base import PollResult, SourceName
from tests.conftest import make_settings
from tests.fakes.adapters import FakeSource, article, install, result, trial
from tests.test_polling.conftest import NOW, SLUG, report_for, state_of, stored_ids

DEADLINE = 0.3


@pytest.fixture
def short(tmp_path: Path, shared_url: str) -> Settings:
    """Settings whose polls and feeds have DEADLINE seconds."""
    return make_settings(tmp_path, shared_url, poll_deadline_seconds=DEADLINE,
                         feed_deadline_seconds=DEADLINE)


async def never_ends(_query: object, _cursor: object) -> PollResult:
    """An upstream that keeps the connection busy for ever (one byte at a time)."""
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


def test_a_poll_past_its_deadline_is_a_recorded_failure_and_the_others_go_on(
    session: Session, session_factory: sessionmaker[Session], short: Settings,
    monkeypatch: pytest.MonkeyPatch, move_clock: Any,
) -> None:
    settings = short
    install(
        monkeypatch,
        FakeSource(SourceName.pubmed, {SLUG: [never_ends]}),
        FakeSource(SourceName.ctgov, {SLUG: [result(trial("NCT1"))]}),
    )

    reports = poll(session_factory, settings, owner="test")

    pubmed = report_for(reports, SourceName.pubmed)
    assert pubmed.failed
    assert pubmed.error == f"pubmed poll: gave up after the {DEADLINE:g} s deadline"
    state = state_of(session, "pubmed")
    assert state.last_error == pubmed.error
    assert state.consecutive_failures == 1
    assert state.next_poll_at == NOW + timedelta(minutes=settings.poll_interval_minutes)
    assert (state.lease_owner, state.lease_expires_at) == (None, None)
    assert not report_for(reports, SourceName.ctgov).failed
    assert stored_ids(session, "ctgov") == {"NCT1"}


def test_the_lease_is_renewed_up_to_the_deadline_and_not_beyond(
    session: Session, session_factory: sessionmaker[Session], short: Settings,
    monkeypatch: pytest.MonkeyPatch, move_clock: Any,
) -> None:
    settings = short
    renewals: list[datetime] = []
    real_renew = repository.renew_lease

    def recording(session: Session, state_id: int, owner: str, *, expires_at: datetime) -> bool:
        renewals.append(expires_at)
        return real_renew(session, state_id, owner, expires_at=expires_at)

    monkeypatch.setattr(repository, "renew_lease", recording)
    monkeypatch.setattr(polling_service, "LEASE_RENEWAL", 0.01 / 600)  # every 10 ms
    install(monkeypatch, FakeSource(SourceName.pubmed, {SLUG: [never_ends]}))

    [report] = poll(session_factory, settings, owner="test", source=SourceName.pubmed)
    count = len(renewals)

    assert report.failed
    assert renewals, "the lease was renewed while the fetch ran"
    # The lease (600 s) would reach far beyond; renewals stop at the deadline.
    assert max(renewals) == NOW + timedelta(seconds=DEADLINE)
    assert state_of(session, "pubmed").lease_owner is None
    asyncio.run(asyncio.sleep(0.05))
    assert len(renewals) == count  # nothing renews a finished poll


def test_a_backfill_has_no_deadline(
    session: Session, session_factory: sessionmaker[Session], tmp_path: Path,
    shared_url: str, monkeypatch: pytest.MonkeyPatch, move_clock: Any,
) -> None:
    settings = make_settings(tmp_path, shared_url, poll_deadline_seconds=0.05,
                             feed_deadline_seconds=0.05)

    async def slow(_query: object, _cursor: object) -> PollResult:
        await asyncio.sleep(0.2)
        return result(article("1", "HER2 exon 20"))

    install(monkeypatch, FakeSource(SourceName.pubmed, {SLUG: [slow]}))

    [report] = poll(session_factory, settings, owner="test", source=SourceName.pubmed,
                    since=NOW - timedelta(days=365))

    assert not report.failed and report.new == 1


def test_the_deadlines_default_to_a_quarter_hour_per_poll_and_two_minutes_per_feed() -> None:
    fields = Settings.model_fields
    assert fields["poll_deadline_seconds"].default == 900
    assert fields["feed_deadline_seconds"].default == 120


def test_the_feed_deadline_must_fit_in_the_poll_deadline(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="ALERTS_FEED_DEADLINE_SECONDS must not exceed"):
        make_settings(tmp_path, "sqlite://", poll_deadline_seconds=10, feed_deadline_seconds=20)
