"""Several pollers at once: whatever the interleaving, every item is stored once, every
(item, target) gets exactly one `new` event, and a trial change makes one `updated` event.

These tests commit for real, each on a database of its own (`db_url`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.items import repository as items_repository
from alerts.items.service import ingest
from alerts.polling.service import poll
from alerts.sources.base import FetchedItem, SourceName
from db.models import Item, ItemEvent, ItemRejection, ItemTarget, Target
from db.session import make_engine, make_sessionmaker, transaction
from tests.conftest import ON_POSTGRES, make_settings
from tests.fakes.adapters import article, trial
from tests.fakes.upstream import FakeUpstream

ROOT = Path(__file__).resolve().parents[2]
SLUG = "her2-exon20"
NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def no_real_adapters() -> None:
    """Overrides the package's scripted fakes: these pollers use the real adapters,
    against a FakeUpstream."""


@pytest.fixture
def database(db_url: str) -> Iterator[tuple[Engine, sessionmaker[Session]]]:
    engine = make_engine(db_url)
    yield engine, make_sessionmaker(engine)
    engine.dispose()


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released at the same instant; their results (or raise the
    first error)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def worker(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[index] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    return results


def assert_stored_once_with_one_new_event(factory: sessionmaker[Session]) -> int:
    """Each item once and decided once per target it was polled for (linked XOR
    rejected); each link exactly one `new` event, a rejected item none. Returns the item
    count."""
    with factory() as session:
        duplicates = session.execute(
            select(Item.source, Item.external_id).group_by(Item.source, Item.external_id)
            .having(func.count() > 1)
        ).all()
        new_events = session.execute(
            select(ItemEvent.item_id, ItemEvent.target_id, func.count())
            .where(ItemEvent.kind == "new")
            .group_by(ItemEvent.item_id, ItemEvent.target_id)
        ).all()
        linked = {(item_id, target) for item_id, target in session.execute(
            select(ItemTarget.item_id, ItemTarget.target_id))}
        rejected = {(item_id, target) for item_id, target in session.execute(
            select(ItemRejection.item_id, ItemRejection.target_id))}
        items = session.scalar(select(func.count()).select_from(Item)) or 0
    assert duplicates == []
    assert linked.isdisjoint(rejected)
    assert len(linked | rejected) == items  # one target: every item decided once
    assert sorted(count for *_pair, count in new_events) == [1] * len(linked)
    assert {(item_id, target) for item_id, target, _n in new_events} == linked
    return items


def links_count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(ItemTarget)) or 0


def target_id(factory: sessionmaker[Session]) -> tuple[int, dict[str, list[str]]]:
    with factory() as session:
        target = session.scalars(select(Target).where(Target.slug == SLUG)).one()
        return target.id, target.match_terms


def store(factory: sessionmaker[Session], items: list[FetchedItem]) -> int:
    tid, terms = target_id(factory)
    with transaction(factory) as session:
        return ingest(session, source=items[0].source, target_id=tid, match_terms=terms,
                      fetched=items, now=NOW).new


def test_concurrent_stores_of_one_batch_make_one_item_and_one_event_each(
    database: tuple[Engine, sessionmaker[Session]],
) -> None:
    _engine, factory = database
    batch = [article(str(n), f"Zongertinib in HER2 exon 20, report {n}") for n in range(300)]
    news = together(*(lambda: store(factory, batch) for _ in range(4)))
    assert sum(news) == 300  # each link is new for exactly one of the writers
    assert assert_stored_once_with_one_new_event(factory) == 300


def test_a_trial_change_stored_by_two_writers_makes_one_update_event(
    database: tuple[Engine, sessionmaker[Session]],
) -> None:
    _engine, factory = database
    store(factory, [trial("NCT01", "RECRUITING")])
    tid, terms = target_id(factory)
    changed = [trial("NCT01", "COMPLETED")]

    # Writer A stores the change and holds its transaction open; writer B stores the same
    # change meanwhile and must wait (row lock on PostgreSQL, BEGIN IMMEDIATE on SQLite),
    # then find the stored copy current.
    first = factory()
    counts_a = ingest(first, source=SourceName.ctgov, target_id=tid, match_terms=terms,
                      fetched=changed, now=NOW)
    outcome_b: list[int] = []
    writer_b = threading.Thread(target=lambda: outcome_b.append(
        _store_updates(factory, tid, terms, changed)))
    writer_b.start()
    time.sleep(0.3)  # let B reach its lock; the outcome does not depend on it
    first.commit()
    first.close()
    writer_b.join(timeout=60)

    assert (counts_a.updated, outcome_b) == (1, [0])
    with factory() as session:
        kinds = session.scalars(select(ItemEvent.kind).order_by(ItemEvent.id)).all()
    assert kinds == ["new", "updated"]


@pytest.mark.skipif(not ON_POSTGRES, reason="SQLite serialises writers at BEGIN IMMEDIATE, "
                    "so this interleaving cannot happen there")
def test_a_writer_reading_the_trial_after_anothers_uncommitted_update_waits_for_it(
    database: tuple[Engine, sessionmaker[Session]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """B has passed its insert-or-ignore before A updates the trial; B's read of the
    stored copy must wait for A (FOR UPDATE) instead of reading the old committed one."""
    _engine, factory = database
    store(factory, [trial("NCT01", "RECRUITING")])
    tid, terms = target_id(factory)
    changed = [trial("NCT01", "COMPLETED")]
    real_read = items_repository.lock_item_data
    b_reads, a_updated = threading.Event(), threading.Event()

    def read_after_a(session: Session, source: str, ids: list[str]) -> Any:
        if threading.current_thread().name == "writer-b":
            b_reads.set()
            a_updated.wait(30)
        return real_read(session, source, ids)

    monkeypatch.setattr(items_repository, "lock_item_data", read_after_a)
    outcome_b: list[int] = []
    writer_b = threading.Thread(name="writer-b", target=lambda: outcome_b.append(
        _store_updates(factory, tid, terms, changed)))
    writer_b.start()
    assert b_reads.wait(30)
    with transaction(factory) as first:
        counts_a = ingest(first, source=SourceName.ctgov, target_id=tid, match_terms=terms,
                          fetched=changed, now=NOW)
        a_updated.set()
        time.sleep(0.3)  # B now blocks on the row lock (or, without it, reads stale data)
    writer_b.join(timeout=60)

    assert (counts_a.updated, outcome_b) == (1, [0])
    with factory() as session:
        assert session.scalars(select(ItemEvent.kind).order_by(ItemEvent.id)).all() == [
            "new", "updated"]


def _store_updates(
    factory: sessionmaker[Session], tid: int, terms: dict[str, list[str]],
    items: list[FetchedItem],
) -> int:
    with transaction(factory) as session:
        return ingest(session, source=SourceName.ctgov, target_id=tid, match_terms=terms,
                      fetched=items, now=NOW).updated


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(posted_on=datetime.now(UTC).date()) as upstream:
        yield upstream


def fake_settings(tmp_path: Path, db_url: str, fake: FakeUpstream) -> Settings:
    return make_settings(
        tmp_path, db_url, pubmed_base_url=fake.pubmed_base_url,
        ctgov_base_url=fake.ctgov_base_url, ncbi_api_key="test-key",
    )


@pytest.mark.slow
def test_two_pollers_in_threads_store_everything_once(
    database: tuple[Engine, sessionmaker[Session]], db_url: str, tmp_path: Path,
    fake: FakeUpstream,
) -> None:
    _engine, factory = database
    settings = fake_settings(tmp_path, db_url, fake)
    reports = together(
        lambda: poll(factory, settings, owner="poller-a"),
        lambda: poll(factory, settings, owner="poller-b"),
    )
    assert not any(r.failed for rs in reports for r in rs), reports
    assert assert_stored_once_with_one_new_event(factory) == len(fake.pmids) + len(
        fake.nct_ids)
    assert sum(r.new for rs in reports for r in rs) == links_count(factory)


@pytest.mark.slow
@pytest.mark.skipif(not ON_POSTGRES, reason="several poller processes need PostgreSQL; a "
                    "SQLite deployment runs one (the threaded test covers SQLite)")
def test_two_alerts_poll_processes_at_once_store_everything_once(
    database: tuple[Engine, sessionmaker[Session]], db_url: str, tmp_path: Path,
    fake: FakeUpstream,
) -> None:
    _engine, factory = database
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ALERTS_DATABASE_URL": db_url,
        "ALERTS_VAR_DIR": str(tmp_path / "var"),
        "ALERTS_NCBI_API_KEY": "test-key",
        **fake.env(),
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "alerts.cli", "poll"], cwd=tmp_path, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    for stdout, _stderr in outputs:
        assert "failed" not in stdout and "Traceback" not in stdout + _stderr
    assert assert_stored_once_with_one_new_event(factory) == len(fake.pmids) + len(
        fake.nct_ids)
