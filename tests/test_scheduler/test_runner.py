"""The APScheduler setup: periods from the settings, coalesced runs that never overlap
themselves, a catch-up run in order at start, and a stop that lets running work end."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.mail.mailbox import MailboxMailer
from alerts.ops.metrics import Metrics
from db.clock import utc_now
from db.models import SchedulerHeartbeat
from scheduler.jobs import Job, JobContext, JobFields, write_heartbeat
from scheduler.runner import CATCH_UP, SchedulerRunner, job_periods, warn_if_single_scheduler_only
from tests.conftest import make_settings

OWNER = "test-1-abcdef"


@pytest.fixture
def ctx(tmp_path: Path, isolated: tuple[Engine, sessionmaker[Session]], db_url: str) -> JobContext:
    _engine, factory = isolated
    return JobContext(
        settings=make_settings(tmp_path, db_url, scheduler_tick_seconds=7,
                               digest_check_minutes=2),
        session_factory=factory,
        mailer=MailboxMailer(tmp_path / "mailbox"),
        owner=OWNER,
        started_at=utc_now(),
    )


class FakeJobs:
    """Jobs that record their runs; `hold` keeps a job running until released."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.started = {name: threading.Event() for name in ("poll", "digests", "outbox")}
        self.release = threading.Event()
        self.hold: set[str] = set()
        self.fail: set[str] = set()

    def job(self, name: str) -> Job:
        def run(_ctx: JobContext) -> JobFields:
            self.started[name].set()
            if name in self.hold:
                assert self.release.wait(timeout=30)
            if name in self.fail:
                raise RuntimeError("database went away")
            self.runs.append(name)
            return {"done": 1}

        return run

    def table(self) -> dict[str, Job]:
        table = {name: self.job(name) for name in self.started}
        table["heartbeat"] = write_heartbeat
        return table


@pytest.fixture
def fake() -> FakeJobs:
    return FakeJobs()


@pytest.fixture
def runner(ctx: JobContext, fake: FakeJobs) -> Iterator[SchedulerRunner]:
    runner = SchedulerRunner(ctx, metrics=Metrics(), jobs=fake.table())
    yield runner
    if runner.running:
        fake.release.set()
        runner.stop()


def test_periods_come_from_the_settings(ctx: JobContext) -> None:
    assert job_periods(ctx.settings) == {
        "poll": timedelta(seconds=7),
        "digests": timedelta(minutes=2),
        "outbox": timedelta(seconds=7),
        "heartbeat": timedelta(seconds=7),
    }


def test_every_job_coalesces_and_never_overlaps_itself(
    runner: SchedulerRunner, fake: FakeJobs
) -> None:
    runner.start()
    jobs = {job.id: job for job in runner.scheduler.get_jobs()}
    assert set(jobs) == {"poll", "digests", "outbox", "heartbeat"}
    for name, period in job_periods(runner.ctx.settings).items():
        job = jobs[name]
        assert isinstance(job.trigger, IntervalTrigger)
        assert job.trigger.interval == period
        assert job.coalesce is True
        assert job.max_instances == 1
        assert job.misfire_grace_time == int(period.total_seconds())


def test_start_runs_a_catch_up_in_order_and_writes_a_heartbeat(
    runner: SchedulerRunner, fake: FakeJobs, ctx: JobContext
) -> None:
    runner.start()
    assert fake.started["outbox"].wait(timeout=30)
    runner.stop()
    assert fake.runs[: len(CATCH_UP)] == list(CATCH_UP)


def test_a_running_job_is_not_started_again(
    runner: SchedulerRunner, fake: FakeJobs, caplog: pytest.LogCaptureFixture
) -> None:
    fake.hold.add("poll")
    first = threading.Thread(target=runner.run_job, args=["poll"])
    first.start()
    assert fake.started["poll"].wait(timeout=30)

    with caplog.at_level(logging.INFO, logger="scheduler.runner"):
        assert runner.run_job("poll") is False
    fake.release.set()
    first.join(timeout=30)

    assert fake.runs == ["poll"]
    assert f"scheduler.job_skipped name=poll owner={OWNER} reason=\"still running\"" in caplog.text
    assert runner.metrics is not None
    runs = runner.metrics.job_runs
    assert runs.labels(job="poll", outcome="skipped")._value.get() == 1
    assert runs.labels(job="poll", outcome="ok")._value.get() == 1


def test_a_failing_run_is_logged_and_the_next_one_runs(
    runner: SchedulerRunner, fake: FakeJobs, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail.add("digests")
    with caplog.at_level(logging.INFO, logger="scheduler.runner"):
        assert runner.run_job("digests") is False
        fake.fail.clear()
        assert runner.run_job("digests") is True
    failed, done = [r for r in caplog.records if "digests" in r.getMessage()]
    assert failed.levelno == logging.ERROR and failed.exc_info is not None
    assert failed.getMessage().startswith(
        f"scheduler.job_failed name=digests owner={OWNER} error=RuntimeError seconds=")
    assert done.getMessage().startswith(f"scheduler.job name=digests owner={OWNER} done=1 ")


def test_stop_waits_for_the_running_unit_of_work(
    runner: SchedulerRunner, fake: FakeJobs, ctx: JobContext
) -> None:
    fake.hold.add("poll")
    runner.start()
    assert fake.started["poll"].wait(timeout=30)
    stopper = threading.Thread(target=runner.stop)
    stopper.start()
    stopper.join(timeout=0.2)
    assert stopper.is_alive()  # the poll is still held: stop has not returned
    assert fake.runs == []

    fake.release.set()
    stopper.join(timeout=30)
    assert not stopper.is_alive()
    # The poll finished; the catch-up stopped there instead of going on to digests.
    assert fake.runs == ["poll"]
    assert not runner.running
    with ctx.session_factory() as session:
        assert session.scalars(select(SchedulerHeartbeat.owner)).all() == []


@pytest.mark.parametrize(
    ("url", "warned"),
    [("sqlite:///./var/alerts.db", True), ("postgresql+psycopg://u@h/alerts", False)],
)
def test_sqlite_says_one_scheduler_is_the_supported_setup(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, url: str, warned: bool
) -> None:
    with caplog.at_level(logging.WARNING, logger="scheduler.runner"):
        assert warn_if_single_scheduler_only(make_settings(tmp_path, url)) is warned
    assert ("one scheduler process is the supported setup" in caplog.text) is warned
