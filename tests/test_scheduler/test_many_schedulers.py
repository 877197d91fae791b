"""Three `alerts scheduler` processes on one PostgreSQL database double nothing: every
due subscriber gets exactly one digest and every item is stored (and announced) once.
Nothing here coordinates them but the database: leases, unique digest keys, SKIP LOCKED
claims and a per-source advisory lock."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Digest, Item, ItemEvent, ItemRejection, ItemTarget, SourceState
from tests.conftest import ON_POSTGRES
from tests.fakes.smtp import SmtpServer
from tests.fakes.upstream import FakeUpstream
from tests.test_scheduler.conftest import Processes, seed_due_subscribers, service_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(
        not ON_POSTGRES,
        reason="several schedulers are supported on PostgreSQL only (on SQLite: one)",
    ),
]

SCHEDULERS = 3
SUBSCRIBERS = 40


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(posted_on=date.today()) as fake:
        yield fake


def test_three_schedulers_send_each_digest_once_and_store_each_item_once(
    processes: Processes,
    smtp_server: SmtpServer,
    upstream: FakeUpstream,
    db_url: str,
    isolated: tuple[Engine, sessionmaker[Session]],
    tmp_path: Path,
) -> None:
    _engine, factory = isolated
    emails = seed_due_subscribers(factory, SUBSCRIBERS)
    env = service_env(db_url, tmp_path, smtp_host="127.0.0.1", smtp_port=smtp_server.port,
                      pubmed_base_url=upstream.pubmed_base_url,
                      ctgov_base_url=upstream.ctgov_base_url)
    schedulers = [
        processes.start(f"scheduler{n}", "scheduler", env=env) for n in range(SCHEDULERS)
    ]

    def everything_done() -> bool:
        # Every process ran its digest job at least once (so all three competed for the
        # same slots), and all the mail and the polls are through.
        if not all(s.lines("scheduler.job name=digests") for s in schedulers):
            return False
        with factory() as session:
            sent = session.scalar(select(func.count()).where(Digest.status == "sent"))
            unpolled = session.scalar(
                select(func.count()).where(SourceState.last_success_at.is_(None)))
        return sent == SUBSCRIBERS and unpolled == 0

    processes.wait_until("the schedulers to finish the due work", everything_done)
    for scheduler in schedulers:
        scheduler.send(signal.SIGTERM)
    for scheduler in schedulers:
        assert scheduler.wait() == 0, scheduler.log()

    # Each subscriber: exactly one digest, on the SMTP server and in the database.
    assert Counter(str(m["To"]) for m in smtp_server.handler.messages()) == Counter(emails)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Digest)) == SUBSCRIBERS

        # Each item: stored once, decided once for the target (linked or rejected), each
        # link announced once.
        stored = Counter(session.scalars(select(Item.source)).all())
        assert stored == {"pubmed": len(upstream.pmids), "ctgov": len(upstream.nct_ids)}
        linked = session.scalar(select(func.count()).select_from(ItemTarget))
        rejected = session.scalar(select(func.count()).select_from(ItemRejection))
        assert linked + rejected == sum(stored.values())
        assert session.scalar(
            select(func.count()).where(ItemEvent.kind == "new")) == linked

        # Each source was polled by one process only, whichever got it first: once for the
        # whole catalogue, once for the target's first history.
        polls = sorted(session.execute(select(
            SourceState.source, SourceState.target_id.is_(None), SourceState.polls_total)).all())
        assert polls == [("ctgov", False, 1), ("ctgov", True, 1),
                         ("pubmed", False, 1), ("pubmed", True, 1)]
    assert len(upstream.requests_to("/esearch.fcgi")) == 2

    owners = {s.lines("scheduler.started")[0].split("owner=")[1].split()[0] for s in schedulers}
    assert len(owners) == SCHEDULERS
