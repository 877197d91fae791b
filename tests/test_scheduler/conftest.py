"""Helpers for tests that run the real `alerts` command as processes: their settings,
their logs, waiting for what they do, subscribers whose digest is due right now, an SMTP
server that holds the batch after its first acceptances, and the upstreams dated today."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.clock import utc_now
from db.models import Alert, Digest, Subscriber, Target
from tests.conftest import TEST_SECRET
from tests.fakes.smtp import RecordingHandler, SmtpServer
from tests.fakes.upstream import FakeUpstream

T = TypeVar("T")

_SCRIPT = Path(sys.executable).with_name("alerts")
#: The installed console script, as an operator runs it (or the module, where the
#: package is not installed with its script).
ALERTS = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "alerts.cli"]

#: Zones whose hours start at :00, :30 and :45 past a UTC hour: at any moment one of
#: them is well inside an hour (see `zone_inside_an_hour`).
ZONES = ("UTC", "Asia/Kolkata", "Asia/Kathmandu")


def service_env(db_url: str, home: Path, **settings: object) -> dict[str, str]:
    """The environment of an `alerts` process: this test's database, a fast metronome,
    short leases; every other ALERTS_ variable of the test run removed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTS_")}
    values: dict[str, object] = {
        "database_url": db_url,
        "var_dir": home / "var",
        "secret_key": TEST_SECRET,
        "public_url": "http://alerts.test",
        "scheduler_tick_seconds": 1,
        "lease_seconds": 10,
        "http_max_retries": 0,
        "smtp_timeout_seconds": 30,
    }
    values.update(settings)
    env.update({f"ALERTS_{name.upper()}": str(value) for name, value in values.items()})
    return env


@dataclass
class AlertsProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    #: Set once the test signalled it: its exit is expected from then on.
    signalled: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def lines(self, event: str) -> list[str]:
        """Log lines of one event, e.g. `scheduler.job name=digests`."""
        return [line for line in self.log().splitlines() if f" {event}" in line]

    def send(self, sig: signal.Signals) -> None:
        self.signalled = True
        self.popen.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        return self.popen.wait(timeout=timeout)


@dataclass
class Processes:
    """Starts `alerts` processes; whatever is still running at the end is killed."""

    home: Path
    started: list[AlertsProcess] = field(default_factory=list)

    def start(self, name: str, *args: str, env: dict[str, str]) -> AlertsProcess:
        log_path = self.home / f"{name}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                [*ALERTS, *args], env=env, cwd=self.home, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT,
            )
        process = AlertsProcess(name, popen, log_path)
        self.started.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} (pid {p.pid})\n{p.log()}" for p in self.started)

    def wait_until(self, what: str, check: Callable[[], T | None], timeout: float = 45) -> T:
        """Poll `check` until it returns something truthy; fail with every log if a
        process exited unasked meanwhile or `timeout` passed."""
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            died = [p for p in self.started if not p.signalled and p.popen.poll() is not None]
            if died or time.monotonic() > deadline:
                pytest.fail(f"waiting for {what}: gave up\n{self.logs()}")
            time.sleep(0.1)

    def kill_all(self) -> None:
        for process in self.started:
            if process.popen.poll() is None:
                process.popen.kill()
                process.popen.wait(timeout=30)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    running = Processes(tmp_path)
    yield running
    running.kill_all()


def zone_inside_an_hour(now: datetime) -> tuple[str, int]:
    """A zone and its current local hour, at least 10 minutes before that hour ends: a
    daily digest at that hour is due now and stays the same slot through the test."""
    for name in ZONES:
        local = now.astimezone(ZoneInfo(name))
        if 3 <= local.minute <= 50:
            return name, local.hour
    raise AssertionError(f"no zone of {ZONES} is inside an hour at {now}")  # unreachable


def seed_due_subscribers(
    session_factory: sessionmaker[Session],
    count: int,
    *,
    send_when_empty: bool = True,
    target_slug: str = "her2-exon20",
) -> list[str]:
    """`count` verified subscribers with an active daily alert whose slot is the current
    hour (so due now), active since two days; returns their addresses."""
    now = utc_now()
    zone, hour = zone_inside_an_hour(now)
    emails = [f"reader{n:03d}@example.org" for n in range(count)]
    with session_factory() as session:
        target = session.scalars(select(Target).where(Target.slug == target_slug)).one()
        for email in emails:
            subscriber = Subscriber(email=email, verified_at=now - timedelta(days=2))
            session.add(subscriber)
            session.flush()
            session.add(Alert(
                subscriber_id=subscriber.id, target_id=target.id, frequency="daily",
                send_hour=hour, timezone=zone, status="active", send_when_empty=send_when_empty,
                activated_at=now - timedelta(days=2),
            ))
        session.commit()
    return emails


def digest_statuses(factory: sessionmaker[Session]) -> dict[str, int]:
    """How many digests are in each status."""
    with factory() as session:
        return dict(session.execute(
            select(Digest.status, func.count()).group_by(Digest.status)).all())


#: Messages `holding_smtp` accepts before it holds the next one at RCPT.
ACCEPT_FIRST = 2


class HoldAfter(RecordingHandler):
    """Accepts the first `accept_first` messages, then holds each next one at RCPT
    (before any DATA: nothing of it accepted) until `release` is set."""

    def __init__(self, accept_first: int) -> None:
        super().__init__()
        self.accept_first = accept_first
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if len(self.received) >= self.accept_first:
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.01)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


@pytest.fixture
def holding_smtp() -> Iterator[SmtpServer]:
    """A real SMTP server that accepts ACCEPT_FIRST messages, then holds the next ones
    at RCPT until its handler's `release` is set."""
    handler = HoldAfter(ACCEPT_FIRST)
    with SmtpServer(handler) as server:
        yield server
        handler.release.set()


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """The recorded PubMed and ClinicalTrials.gov payloads, dated today."""
    with FakeUpstream(posted_on=date.today()) as fake:
        yield fake
