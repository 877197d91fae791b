"""The jobs are thin: each calls its one service with this process's owner and the
clock's now, and returns the figures of its log line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.digests.delivery.send import SendReport
from alerts.mail.mailbox import MailboxMailer
from alerts.polling.schemas import HELD, NOT_DUE, UNCHANGED, SourceReport
from alerts.sources.base import SourceName
from db.clock import frozen_clock
from db.models import SchedulerHeartbeat
from scheduler import jobs
from scheduler.jobs import JobContext
from tests.conftest import make_settings

NOW = datetime(2026, 3, 29, 6, 0, 30, tzinfo=UTC)
OWNER = "web1-4242-a1b2c3"


@pytest.fixture
def ctx(tmp_path: Path, isolated: tuple[Engine, sessionmaker[Session]], db_url: str) -> JobContext:
    _engine, factory = isolated
    return JobContext(
        settings=make_settings(tmp_path, db_url),
        session_factory=factory,
        mailer=MailboxMailer(tmp_path / "mailbox"),
        owner=OWNER,
        started_at=NOW - timedelta(hours=1),
    )


class Recorder:
    """Stands in for a service: remembers how it was called, answers `result`."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        return self.result


def test_poll_asks_only_for_due_sources_as_this_owner(
    ctx: JobContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    everything = [
        SourceReport(SourceName.pubmed, "*", new=4, next_poll_at=NOW),
        SourceReport(SourceName.ctgov, "*", failed=True, error="HTTP 503"),
        SourceReport(SourceName.rss, "*", skipped=True, reason=HELD),
    ]
    first_histories = [
        SourceReport(SourceName.ctgov, "kras-g12c", skipped=True, reason=UNCHANGED),
        SourceReport(SourceName.rss, "her2-exon20", updated=1, new=2),
        SourceReport(SourceName.pubmed, "kras-g12c", skipped=True, reason=NOT_DUE),
    ]
    poll_catalogue, poll = Recorder(everything), Recorder(first_histories)
    monkeypatch.setattr(jobs, "poll_catalogue", poll_catalogue)
    monkeypatch.setattr(jobs, "poll", poll)

    fields = jobs.poll_due_sources(ctx)

    assert poll_catalogue.calls == [((ctx.session_factory, ctx.settings),
                                     {"owner": OWNER, "due_only": True})]
    assert poll.calls == [((ctx.session_factory, ctx.settings),
                           {"owner": OWNER, "due_only": True, "alongside_catalogue": True})]
    assert fields == {"polled": 4, "failed": 1, "new": 6, "updated": 1, "held": 1}


def test_digests_are_sent_for_the_clock_s_now_as_this_owner(
    ctx: JobContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    send_due = Recorder(SendReport(planned=3, empty=1, sent=2, deferred=1, pending=1,
                                   addresses=2))
    monkeypatch.setattr(jobs, "send_due", send_due)

    with frozen_clock(NOW):
        fields = jobs.send_due_digests(ctx)

    assert send_due.calls == [((ctx.session_factory, ctx.settings, ctx.mailer),
                               {"now": NOW, "owner": OWNER})]
    assert fields == {"planned": 3, "empty": 1, "sent": 2, "deferred": 1, "failed": 0,
                      "cancelled": 0, "pending": 1}


def test_a_digest_run_that_stopped_early_says_why(
    ctx: JobContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "send_due", Recorder(SendReport(error="SMTP unreachable")))
    assert jobs.send_due_digests(ctx)["error"] == "SMTP unreachable"


def test_the_outbox_is_flushed_as_this_owner(
    ctx: JobContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    flush = Recorder(2)
    monkeypatch.setattr(jobs, "flush_outbox", flush)

    with frozen_clock(NOW):
        fields = jobs.flush_pending_mail(ctx)

    assert flush.calls == [((ctx.session_factory, ctx.mailer), {"owner": OWNER, "now": NOW})]
    assert fields == {"sent": 2}


def test_the_heartbeat_is_committed_and_removed_on_a_clean_stop(ctx: JobContext) -> None:
    with frozen_clock(NOW):
        jobs.write_heartbeat(ctx)
    with frozen_clock(NOW + timedelta(minutes=1)):
        jobs.write_heartbeat(ctx)
    with ctx.session_factory() as session:
        (row,) = session.scalars(select(SchedulerHeartbeat)).all()
        assert (row.owner, row.started_at, row.seen_at) == (
            OWNER, ctx.started_at, NOW + timedelta(minutes=1))

    jobs.remove_heartbeat(ctx)
    with ctx.session_factory() as session:
        assert session.scalars(select(SchedulerHeartbeat)).all() == []
