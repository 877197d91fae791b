"""SIGTERM (and SIGINT) let the current unit of work finish, then the process exits 0:
`docker stop` during a poll loses nothing and leaves no lease behind."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Item, SchedulerHeartbeat, SourceState
from tests.fakes.upstream import FakeUpstream, RecordedRequest
from tests.test_scheduler.conftest import Processes, service_env


class HeldUpstream(FakeUpstream):
    """The fake upstream, except that requests to `hold` wait until `release` is set."""

    def __init__(self, hold: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hold = hold
        self.holding = threading.Event()
        self.release = threading.Event()

    def _answer(
        self, request: RecordedRequest, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        if request.path.endswith(self.hold):
            self.holding.set()
            self.release.wait(timeout=60)
        return super()._answer(request, headers)


@pytest.fixture
def upstream() -> Iterator[HeldUpstream]:
    with HeldUpstream("/esearch.fcgi", posted_on=date.today()) as fake:
        yield fake
        fake.release.set()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_a_poll_lets_the_poll_finish_and_exits_0(
    processes: Processes,
    upstream: HeldUpstream,
    db_url: str,
    isolated: tuple[Engine, sessionmaker[Session]],
    tmp_path: Path,
    sig: signal.Signals,
) -> None:
    env = service_env(db_url, tmp_path, **{
        "pubmed_base_url": upstream.pubmed_base_url,
        "ctgov_base_url": upstream.ctgov_base_url,
    })
    scheduler = processes.start("scheduler", "scheduler", env=env)
    processes.wait_until("the PubMed search to be in flight", upstream.holding.is_set)

    scheduler.send(sig)
    # The process took the signal and is stopping, while the poll is still held.
    processes.wait_until("the scheduler to begin stopping",
                         lambda: scheduler.lines("scheduler.stopping"))
    assert scheduler.popen.poll() is None

    upstream.release.set()
    assert scheduler.wait() == 0, scheduler.log()

    log = scheduler.log()
    assert log.index(" scheduler.stopping") < log.index(" scheduler.job name=poll")
    assert log.index(" scheduler.job name=poll") < log.index(" scheduler.stopped")
    # The catch-up run stopped after the poll: no digest run began once asked to stop.
    assert scheduler.lines("scheduler.job name=digests") == []

    _engine, factory = isolated
    with factory() as session:
        # The whole catalogue's poll and the target's first history: each finished once.
        states = session.scalars(select(SourceState).where(SourceState.source == "pubmed")).all()
        assert sorted(state.target_id is None for state in states) == [False, True]
        for pubmed in states:
            assert pubmed.last_success_at is not None and pubmed.polls_total == 1
            assert (pubmed.lease_owner, pubmed.lease_expires_at) == (None, None)
        stored = session.scalars(select(Item.external_id).where(Item.source == "pubmed")).all()
        assert sorted(stored) == sorted(upstream.pmids)
        assert session.scalars(select(SchedulerHeartbeat)).all() == []
