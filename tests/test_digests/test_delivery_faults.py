"""The SMTP fault matrix of digest delivery, run the way the scheduler runs it (its
`digests` job), against a real SMTP server and a database of the test's own (PostgreSQL
when TEST_DATABASE_URL says so).

For each fault: the job runs to its end (the scheduler process keeps running); the
failure shows in the digest state, in `/metrics` and in `GET /api/v1/digests`; once the
relay behaves, a second run delivers what is still owed; and in the end every address
has exactly one digest, except those refused for good, which have none and whose
digest says why. Nobody is marked bounced except an address the relay refused while it
took the others."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from alerts.app import create_app
from alerts.mail.smtp import SmtpMailer
from alerts.ops.metrics import Metrics
from db.clock import frozen_clock, utc_now
from db.models import Subscriber
from scheduler.jobs import JOBS, JobContext, JobFields
from scheduler.runner import SchedulerRunner
from tests.fakes.smtp import RaisingMailer, SmtpServer
from tests.test_digests.conftest import ADMIN_TOKEN, Post, readers_with_news

SLOT1 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
READERS = [f"reader{n}@example.org" for n in range(4)]
IDN_DOMAIN, IDN_DOMAIN_ASCII = "user@exämple.com", "user@xn--exmple-cua.com"
UTF8_LOCAL = "用户@例子.广告"


@dataclass(frozen=True)
class Fault:
    """What goes wrong in the first run, and what each address has in the end."""

    arrange: Callable[[SmtpServer], None] = lambda relay: None
    addresses: list[str] = field(default_factory=lambda: list(READERS))
    smtputf8: bool = False
    #: Addresses whose digest fails for good (none delivered), and of those the bounced.
    failed: tuple[str, ...] = ()
    bounced: tuple[str, ...] = ()
    #: Digests left pending by the first run, and of those tried (refused) in it.
    pending: int = 0
    retrying: int = 0
    #: The first run stops early because the relay takes nothing.
    stopped: bool = False
    #: In the last_error of every digest failed or left to retry.
    reason: str = ""
    #: Delivered to this envelope address instead (IDNA).
    delivered_as: dict[str, str] = field(default_factory=dict)
    raise_for: str | None = None


def _handler(**changes: Any) -> Callable[[SmtpServer], None]:
    def arrange(relay: SmtpServer) -> None:
        for name, value in changes.items():
            setattr(relay.handler, name, value)

    return arrange


EVERYONE_REFUSED = _handler(refuse_every_rcpt="550 5.7.1 relaying denied")
EIGHT = [f"reader{n}@example.org" for n in range(8)]

FAULTS = {
    "451 at DATA, then accepted": Fault(_handler(fail_data=["451 4.3.0 try later"]),
                                        pending=1, retrying=1, reason="451"),
    "421 at DATA, then accepted": Fault(_handler(fail_data=["421 4.3.2 closing"]),
                                        pending=1, retrying=1, reason="421"),
    "451 at RCPT for one address, then accepted": Fault(
        _handler(refuse_rcpt={READERS[1]: "451 4.2.0 mailbox busy"}), pending=1, retrying=1,
        reason="451"),
    "550 for one address": Fault(
        _handler(refuse_rcpt={READERS[1]: "550 5.1.1 no such user"}),
        failed=(READERS[1],), bounced=(READERS[1],), reason="no such user"),
    "connection dropped mid-batch": Fault(_handler(drop_data=1, drop_after=1),
                                          pending=1, retrying=1, reason="connection"),
    "international addresses, relay with SMTPUTF8": Fault(
        addresses=[READERS[0], IDN_DOMAIN, UTF8_LOCAL], smtputf8=True),
    "international addresses, relay without SMTPUTF8": Fault(
        addresses=[READERS[0], IDN_DOMAIN, UTF8_LOCAL], failed=(UTF8_LOCAL,),
        delivered_as={IDN_DOMAIN: IDN_DOMAIN_ASCII}, reason="needs SMTPUTF8"),
    "unexpected error for one message": Fault(raise_for=READERS[1], failed=(READERS[1],),
                                                 reason="unexpected error: UnicodeEncodeError"),
    "relay refusing everything, small run": Fault(EVERYONE_REFUSED, pending=4, retrying=4,
                                                  stopped=True, reason="relay refused every"),
    "relay refusing everything, stopped mid-run": Fault(
        EVERYONE_REFUSED, addresses=EIGHT, pending=8, retrying=5, stopped=True,
        reason="took none of 5 messages in a row"),
    "relay refusing the sender": Fault(
        _handler(refuse_every_mail="553 5.7.1 sender not allowed"), pending=4, retrying=1,
        stopped=True, reason="553"),
}


def _run_job(post: Post, relay: SmtpServer, fault: Fault, at: datetime) -> JobFields:
    """The scheduler's digests job at `at`; returns the fields of its log line."""
    mailer: Any = SmtpMailer(host="127.0.0.1", port=relay.port, timeout=5)
    if fault.raise_for:
        mailer = RaisingMailer(mailer, fault.raise_for)
    logged: list[JobFields] = []

    def digests_job(ctx: JobContext) -> JobFields:
        logged.append(JOBS["digests"](ctx))
        return logged[-1]

    runner = SchedulerRunner(JobContext(
        settings=post.settings, session_factory=post.session_factory, mailer=mailer,
        owner="scheduler-1", started_at=utc_now(),
    ), metrics=Metrics(), jobs={"digests": digests_job})
    with frozen_clock(at):
        assert runner.run_job("digests")  # ran to its end: the process goes on
    return logged[-1]


def _observed(post: Post) -> tuple[dict[str, float], list[dict[str, Any]]]:
    app = create_app(post.settings, engine=post.engine, session_factory=post.session_factory)
    with TestClient(app) as client:
        metrics = client.get("/metrics")
        failed = client.get("/api/v1/digests", params={"status": "failed"},
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert (metrics.status_code, failed.status_code) == (200, 200)
    samples = {
        sample.name + "".join(f"{{{v}}}" for v in sample.labels.values()): sample.value
        for family in text_string_to_metric_families(metrics.text)
        for sample in family.samples
        if sample.name.startswith("alerts_digests")
    }
    return samples, failed.json()["data"]


def _bounced(post: Post) -> list[str]:
    return post.query(lambda s: sorted(s.scalars(
        select(Subscriber.email).where(Subscriber.mail_status == "bounced"))))


@pytest.mark.parametrize("name", list(FAULTS))
def test_smtp_faults_lose_nothing_double_nothing_and_show(post: Post, name: str) -> None:
    fault = FAULTS[name]
    readers_with_news(post, fault.addresses)
    with SmtpServer(smtputf8=fault.smtputf8) as relay:
        fault.arrange(relay)
        report = _run_job(post, relay, fault, SLOT1)

        # What the first run left is visible in the digest state, /metrics and the API.
        digests = post.digests()
        assert len(digests) == len(fault.addresses)
        statuses = Counter(d.status for d in digests)
        assert statuses["pending"] == fault.pending
        assert statuses["failed"] == len(fault.failed)
        samples, listed = _observed(post)
        assert samples['alerts_digests{failed}'] == len(fault.failed)
        assert samples['alerts_digests{pending}'] == fault.pending
        assert samples["alerts_digests_retrying"] == fault.retrying
        assert sorted(d["email"] for d in listed) == sorted(fault.failed)
        assert all(fault.reason in d["last_error"] for d in listed)
        assert _bounced(post) == sorted(fault.bounced)
        retried = [d for d in digests if d.status == "pending" and d.attempts]
        assert len(retried) == fault.retrying
        assert all(fault.reason in (d.last_error or "") for d in retried)
        assert ("error" in report) == fault.stopped  # in the job's log line
        if fault.stopped:
            assert "nobody was marked bounced" in str(report["error"])

        # The relay behaves again: the next run delivers what is owed, once.
        relay.handler.refuse_rcpt.clear()
        relay.handler.refuse_every_rcpt = relay.handler.refuse_every_mail = None
        _run_job(post, relay, Fault(), SLOT1 + timedelta(minutes=10))
        _run_job(post, relay, Fault(), SLOT1 + timedelta(minutes=20))
        delivered = Counter(r for received in relay.handler.received
                            for r in received.recipients)

    expected = {fault.delivered_as.get(a, a): 1 for a in fault.addresses
                if a not in fault.failed}
    assert dict(delivered) == expected
    assert Counter(d.status for d in post.digests()) == Counter(
        {"sent": len(expected), **({"failed": len(fault.failed)} if fault.failed else {})})
    assert _bounced(post) == sorted(fault.bounced)
