"""A poll interrupted by the worst that can happen to its process loses nothing and
doubles nothing:

- SIGKILL of `alerts scheduler` while both API sources are mid-fetch: a restarted
  scheduler takes the states over once the dead process's leases expired, and every
  item is stored, linked and announced once.
- The database unreachable for a while (a TCP proxy in front of PostgreSQL, cut while
  the fetch is in flight and restored later): the scheduler keeps running through the
  outage and finishes the work once the database is back.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, make_url, select
from sqlalchemy.orm import Session, sessionmaker

from db.clock import utc_now
from db.models import Item, ItemEvent, ItemRejection, ItemTarget, SourceState
from tests.conftest import ON_POSTGRES
from tests.fakes.tcp_proxy import TcpProxy
from tests.fakes.upstream import CTGOV_PATH, PUBMED_PATH, FakeUpstream, hold
from tests.test_scheduler.conftest import Processes, service_env

pytestmark = pytest.mark.slow

#: The second call of each source's poll: its first call succeeded, so the poll holds
#: its lease and has something in hand when the blow falls.
HELD_PATHS = (f"{PUBMED_PATH}/efetch.fcgi", f"{CTGOV_PATH}/studies")


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def upstream(release: threading.Event) -> Iterator[FakeUpstream]:
    """The recorded payloads, dated today; EFetch and the CT.gov search are held until
    `release` is set."""
    with FakeUpstream(posted_on=date.today()) as fake:
        for path in HELD_PATHS:
            fake.misbehave(path, hold(release))
        yield fake


def _mid_fetch(upstream: FakeUpstream) -> bool:
    return all(upstream.requests_to(path.rsplit("/", 1)[1]) for path in HELD_PATHS)


def _everything_stored(factory: sessionmaker[Session], upstream: FakeUpstream) -> bool:
    with factory() as session:
        unpolled = session.scalar(
            select(func.count()).where(SourceState.last_success_at.is_(None)))
        stored = dict(session.execute(
            select(Item.source, func.count()).group_by(Item.source)).all())
    return unpolled == 0 and stored == {
        "pubmed": len(upstream.pmids), "ctgov": len(upstream.nct_ids)}


def _assert_each_item_once(factory: sessionmaker[Session], upstream: FakeUpstream) -> None:
    with factory() as session:
        items = len(upstream.pmids) + len(upstream.nct_ids)
        assert session.scalar(select(func.count()).select_from(Item)) == items
        # Each item decided once for the target: linked (with one `new` event) or
        # rejected by the target's rule.
        linked = session.scalar(select(func.count()).select_from(ItemTarget))
        rejected = session.scalar(select(func.count()).select_from(ItemRejection))
        assert linked + rejected == items
        events = session.execute(
            select(ItemEvent.item_id, ItemEvent.target_id, ItemEvent.kind)).all()
        assert len(events) == len(set(events)) == linked
        assert {kind for _item, _target, kind in events} <= {"new"}


def _wait_for_leases_to_expire(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        leased_until = session.scalar(select(func.max(SourceState.lease_expires_at)))
    assert leased_until is not None and leased_until > utc_now()
    while utc_now() <= leased_until:
        time.sleep(0.2)


@dataclass
class Scene:
    processes: Processes
    upstream: FakeUpstream
    release: threading.Event
    db_url: str
    factory: sessionmaker[Session]
    home: Path

    def env(self, db_url: str) -> dict[str, str]:
        return service_env(db_url, self.home, pubmed_base_url=self.upstream.pubmed_base_url,
                           ctgov_base_url=self.upstream.ctgov_base_url)


@pytest.fixture
def scene(
    processes: Processes,
    upstream: FakeUpstream,
    release: threading.Event,
    db_url: str,
    isolated: tuple[Engine, sessionmaker[Session]],
    tmp_path: Path,
) -> Scene:
    return Scene(processes, upstream, release, db_url, isolated[1], tmp_path)


def test_sigkill_mid_poll_then_restart_stores_each_item_once(scene: Scene) -> None:
    processes, upstream, release, factory = (
        scene.processes, scene.upstream, scene.release, scene.factory)
    env = scene.env(scene.db_url)

    first = processes.start("first", "scheduler", env=env)
    processes.wait_until("both sources mid-fetch", lambda: _mid_fetch(upstream))
    first.send(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    upstream.clear_failures()
    release.set()  # the held answers go to a dead process

    # Killed mid-poll: nothing stored, both states still leased to the dead process.
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Item)) == 0
        owners = set(session.scalars(select(SourceState.lease_owner)))
    assert len(owners) == 1 and None not in owners
    _wait_for_leases_to_expire(factory)

    second = processes.start("second", "scheduler", env=env)
    processes.wait_until("every item stored", lambda: _everything_stored(factory, upstream))
    second.send(signal.SIGTERM)
    assert second.wait() == 0, second.log()

    _assert_each_item_once(factory, upstream)


@pytest.mark.postgres
@pytest.mark.skipif(
    not ON_POSTGRES,
    reason="needs PostgreSQL: an SQLite database is a file in the process, it cannot become "
    "unreachable over the network",
)
def test_the_database_unreachable_mid_poll_then_back_loses_and_doubles_nothing(
    scene: Scene,
) -> None:
    processes, upstream, release, factory = (
        scene.processes, scene.upstream, scene.release, scene.factory)
    database = make_url(scene.db_url)
    with TcpProxy(database.host or "127.0.0.1", database.port or 5432) as proxy:
        proxied = database.set(host="127.0.0.1", port=proxy.port)
        env = scene.env(proxied.render_as_string(hide_password=False))
        scheduler = processes.start("scheduler", "scheduler", env=env)
        processes.wait_until("both sources mid-fetch", lambda: _mid_fetch(upstream))

        proxy.cut()
        upstream.clear_failures()
        release.set()  # the fetches end while the database is gone: storing fails
        processes.wait_until(
            "the scheduler to meet the outage",
            lambda: scheduler.lines("poll.failure_not_recorded")
            and len(scheduler.lines("scheduler.job_failed")) >= 2,
        )
        assert _mid_fetch(upstream)
        with factory() as session:
            assert session.scalar(select(func.count()).select_from(Item)) == 0

        proxy.restore()
        processes.wait_until("every item stored after the outage",
                             lambda: _everything_stored(factory, upstream), timeout=90)
        assert scheduler.popen.poll() is None, "the scheduler survived the outage"
        scheduler.send(signal.SIGTERM)
        assert scheduler.wait() == 0, scheduler.log()

    _assert_each_item_once(factory, upstream)
