"""The APScheduler setup: which job runs how often, and how a scheduler starts and stops.

- Every job is an interval job with `coalesce=True` (runs missed while the process was
  busy or suspended collapse into one), a misfire grace of one period, `max_instances=1`
  and a process-local lock, so a slow run never overlaps itself (not even with the
  catch-up run below); a tick that finds its job still running is skipped and logged.
- At start, one catch-up run goes through poll -> digests -> outbox, in that order (in a
  thread of its own, beside the interval jobs, under the same per-job locks): a
  digest slot missed while the service was down goes out at once, with what was
  published meanwhile, instead of one interval later.
- Stopping (SIGTERM/SIGINT for `alerts scheduler`, the API's shutdown for `alerts run`):
  no new run starts, running ones finish their unit of work (`shutdown(wait=True)`), and
  the heartbeat row is removed. A SIGKILL skips all that; the leases the dead process
  held expire and another scheduler (or this one, restarted) takes the work over.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from alerts.config import Settings
from alerts.mail.factory import make_mailer
from alerts.ops.logging import format_event, log_event
from alerts.ops.metrics import Metrics
from db.clock import utc_now
from db.leases import new_owner
from db.session import make_sessionmaker
from scheduler.jobs import JOBS, Job, JobContext, remove_heartbeat

logger = logging.getLogger(__name__)

#: The jobs a catch-up run goes through at start, in this order.
CATCH_UP = ("poll", "digests", "outbox")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def job_periods(settings: Settings) -> dict[str, timedelta]:
    """How often each job runs. Polls are checked every tick (what is due is in the
    database); digests every ALERTS_DIGEST_CHECK_MINUTES."""
    tick = timedelta(seconds=settings.scheduler_tick_seconds)
    return {
        "poll": tick,
        "digests": timedelta(minutes=settings.digest_check_minutes),
        "outbox": tick,
        "heartbeat": tick,
    }


class SchedulerRunner:
    """One process's scheduler: a BackgroundScheduler whose jobs report through logs
    and (optionally) metrics."""

    def __init__(
        self,
        ctx: JobContext,
        *,
        metrics: Metrics | None = None,
        jobs: Mapping[str, Job] = JOBS,
    ) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.jobs = dict(jobs)
        self.stopping = threading.Event()
        self._locks = {name: threading.Lock() for name in self.jobs}
        self._catch_up: threading.Thread | None = None
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=len(self.jobs) + 1)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    def run_job(self, name: str) -> bool:
        """Run one job now unless it is already running in this process; True when it
        ran to the end. Never raises: a failed run is logged and the next tick retries."""
        lock = self._locks[name]
        if not lock.acquire(blocking=False):
            log_event(logger, "scheduler.job_skipped", name=name, owner=self.ctx.owner,
                      reason="still running")
            self._observe(name, "skipped")
            return False
        started = time.perf_counter()
        try:
            fields = self.jobs[name](self.ctx)
        except Exception as exc:
            seconds = time.perf_counter() - started
            log_event(logger, "scheduler.job_failed", level=logging.ERROR, exc_info=True,
                      name=name, owner=self.ctx.owner, error=type(exc).__name__,
                      seconds=f"{seconds:.3f}")
            self._observe(name, "error", seconds)
            return False
        finally:
            lock.release()
        seconds = time.perf_counter() - started
        logger.info(format_event("scheduler.job", name=name, owner=self.ctx.owner, **fields,
                                 seconds=f"{seconds:.3f}"))
        self._observe(name, "ok", seconds)
        return True

    def catch_up(self, names: Sequence[str] = CATCH_UP) -> None:
        """Run the given jobs once, in order; stops between jobs when asked to stop."""
        for name in names:
            if self.stopping.is_set():
                return
            self.run_job(name)

    def start(self) -> None:
        """Schedule every job and start the scheduler thread; returns at once."""
        now = datetime.now(UTC)
        for name, period in job_periods(self.ctx.settings).items():
            if name not in self.jobs:
                continue
            self.scheduler.add_job(
                self.run_job,
                IntervalTrigger(seconds=period.total_seconds(), timezone=UTC),
                args=[name],
                id=name,
                name=name,
                misfire_grace_time=max(1, int(period.total_seconds())),
                # The heartbeat says "alive" at once; the others start with the catch-up.
                next_run_time=now if name == "heartbeat" else now + period,
            )
        self.scheduler.start()
        periods = job_periods(self.ctx.settings)
        log_event(
            logger, "scheduler.started", owner=self.ctx.owner,
            tick_seconds=int(periods["poll"].total_seconds()),
            digest_check_seconds=int(periods["digests"].total_seconds()),
            database=self.ctx.settings.database_url.split(":", 1)[0].split("+", 1)[0],
        )
        # A thread of its own rather than a one-off APScheduler job: a one-off job that
        # fires while the scheduler shuts down trips APScheduler's own bookkeeping.
        self._catch_up = threading.Thread(
            target=self.catch_up, args=[[n for n in CATCH_UP if n in self.jobs]],
            name="scheduler-catch-up", daemon=True,
        )
        self._catch_up.start()

    def stop(self) -> None:
        """Start no new run, wait for the running ones to finish, drop the heartbeat."""
        self.stopping.set()
        if self.scheduler.running:
            log_event(logger, "scheduler.stopping", owner=self.ctx.owner)
            self.scheduler.shutdown(wait=True)
        if self._catch_up is not None:
            self._catch_up.join()
        try:
            remove_heartbeat(self.ctx)
        except Exception as exc:  # the row then ages out of /metrics within a day
            log_event(logger, "scheduler.heartbeat_not_removed", level=logging.WARNING,
                      owner=self.ctx.owner, error=type(exc).__name__)
        log_event(logger, "scheduler.stopped", owner=self.ctx.owner)

    @contextmanager
    def started(self) -> Iterator[SchedulerRunner]:
        """Running for the duration of the block (the embedded `alerts run`)."""
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def _observe(self, name: str, outcome: str, seconds: float | None = None) -> None:
        if self.metrics is not None:
            self.metrics.observe_job(name, outcome, seconds)


def run_until_signalled(
    runner: SchedulerRunner, signals: Sequence[signal.Signals] = STOP_SIGNALS
) -> int:
    """Run the scheduler until one of `signals` arrives, then stop it cleanly; returns
    the signal number. Must be called from the main thread (signal handlers live there).

    The handler only sets an event; the main thread does the stopping, so the wait for
    a running job happens outside the handler. A second signal while stopping is logged
    and otherwise ignored: the unit of work still finishes (SIGKILL is the way to not
    wait, and is safe: leases expire)."""
    received: list[int] = []
    wake = threading.Event()

    def _handler(signum: int, _frame: FrameType | None) -> None:
        if received:
            log_event(logger, "scheduler.stop_pending", owner=runner.ctx.owner,
                      signal=signal.Signals(signum).name)
        received.append(signum)
        wake.set()

    previous = {sig: signal.signal(sig, _handler) for sig in signals}
    try:
        runner.start()
        while not wake.wait(timeout=1.0):
            pass
        log_event(logger, "scheduler.signal", owner=runner.ctx.owner,
                  signal=signal.Signals(received[0]).name)
        runner.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return received[0]


def build_runner(
    settings: Settings,
    engine: Engine,
    *,
    metrics: Metrics | None = None,
    owner: str | None = None,
) -> SchedulerRunner:
    """A runner for this process: its own owner name, the mailer the settings choose
    (timed into `metrics`), sessions on `engine`."""
    mailer = make_mailer(
        settings, observe_latency=metrics.observe_smtp_latency if metrics is not None else None
    )
    ctx = JobContext(
        settings=settings,
        session_factory=make_sessionmaker(engine),
        mailer=mailer,
        owner=owner or new_owner(),
        started_at=utc_now(),
    )
    return SchedulerRunner(ctx, metrics=metrics)


def warn_if_single_scheduler_only(settings: Settings) -> bool:
    """On SQLite one scheduler process is the supported setup; say so at start."""
    if not settings.database_url.startswith("sqlite"):
        return False
    log_event(
        logger, "scheduler.sqlite_single_scheduler", level=logging.WARNING,
        detail="on SQLite one scheduler process is the supported setup: do not start "
        "another `alerts scheduler` or `alerts run` on this database (use PostgreSQL "
        "for several)",
    )
    return True
