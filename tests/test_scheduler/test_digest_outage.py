"""The database unreachable for a while in the middle of a digest run loses nothing and
doubles nothing: a TCP proxy in front of PostgreSQL is cut while the SMTP server is
accepting the batch, and restored later.

What the server accepted during the outage cannot be recorded `sent` at once; it is kept
and recorded when the database is back (within the run's lease), so the next run does
not send it again. Meanwhile the sender sends nothing more, the run ends saying why
(`digests.recording_failed`, `digests.stopped`, the `error` of its `scheduler.job`
line), the scheduler keeps running, and its next run sends the rest: every subscriber
has exactly one digest, and every due digest is `sent`."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import ON_POSTGRES
from tests.fakes.smtp import SmtpServer
from tests.fakes.tcp_proxy import TcpProxy
from tests.fakes.upstream import FakeUpstream
from tests.test_scheduler.conftest import (
    ACCEPT_FIRST,
    HoldAfter,
    Processes,
    digest_statuses,
    seed_due_subscribers,
    service_env,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(
        not ON_POSTGRES,
        reason="needs PostgreSQL: an SQLite database is a file in the process, it cannot "
        "become unreachable over the network",
    ),
]

SUBSCRIBERS = 6
#: How long the database stays unreachable once the sender met the outage (shorter
#: than the lease, `service_env`'s 10 seconds).
OUTAGE_SECONDS = 3


def test_the_database_unreachable_mid_digest_run_then_back_sends_each_digest_once(
    processes: Processes,
    holding_smtp: SmtpServer,
    upstream: FakeUpstream,
    db_url: str,
    isolated: tuple[Engine, sessionmaker[Session]],
    tmp_path: Path,
) -> None:
    _engine, factory = isolated
    emails = seed_due_subscribers(factory, SUBSCRIBERS)
    handler: HoldAfter = holding_smtp.handler  # type: ignore[assignment]
    database = make_url(db_url)
    with TcpProxy(database.host or "127.0.0.1", database.port or 5432) as proxy:
        proxied = database.set(host="127.0.0.1", port=proxy.port)
        env = service_env(proxied.render_as_string(hide_password=False), tmp_path,
                          smtp_host="127.0.0.1", smtp_port=holding_smtp.port,
                          digest_check_minutes=1,
                          pubmed_base_url=upstream.pubmed_base_url,
                          ctgov_base_url=upstream.ctgov_base_url)
        scheduler = processes.start("scheduler", "scheduler", env=env)
        processes.wait_until(
            "the third digest held at RCPT and the first two recorded sent",
            lambda: handler.holding.is_set()
            and digest_statuses(factory).get("sent") == ACCEPT_FIRST,
        )

        # The database goes away while the sender has the rest of the batch in hand:
        # the server accepts the next digest, which cannot be recorded now.
        proxy.cut()
        handler.release.set()
        processes.wait_until("the sender to meet the outage",
                             lambda: scheduler.lines("digests.recording_failed"))
        accepted_in_outage = len(handler.received) - ACCEPT_FIRST
        assert accepted_in_outage >= 1, "the outage fell after an acceptance"
        # The outage lasts: the sender sends nothing it could not record, and the run
        # waits for the database (within its lease) instead of giving its record up.
        time.sleep(OUTAGE_SECONDS)
        assert len(handler.received) == ACCEPT_FIRST + accepted_in_outage
        assert not scheduler.lines("scheduler.job name=digests")
        assert scheduler.popen.poll() is None

        proxy.restore()
        # The run stops sending, records what the server accepted meanwhile once the
        # database is back, and says why it stopped; the next run sends the rest.
        stopped = processes.wait_until(
            "the interrupted run to end", lambda: scheduler.lines("scheduler.job name=digests"))
        assert "error=" in stopped[0] and "database" in stopped[0], stopped
        assert scheduler.lines("digests.recording_recovered")
        assert scheduler.lines("digests.stopped reason=database")
        # Every acceptance is recorded: none of them goes out again.
        accepted = len(handler.received)
        assert digest_statuses(factory) == {"sent": accepted, "pending": SUBSCRIBERS - accepted}
        processes.wait_until("every digest sent after the outage",
                             lambda: digest_statuses(factory) == {"sent": SUBSCRIBERS}, timeout=120)
        assert scheduler.popen.poll() is None, "the scheduler survived the outage"
        scheduler.send(signal.SIGTERM)
        assert scheduler.wait() == 0, scheduler.log()

    # Exactly one digest per subscriber: nothing lost, nothing sent twice.
    per_recipient = Counter(str(m["To"]) for m in handler.messages())
    assert per_recipient == Counter(emails), scheduler.log()
    message_ids = [str(m["Message-ID"]) for m in handler.messages()]
    assert len(set(message_ids)) == len(message_ids) == SUBSCRIBERS
