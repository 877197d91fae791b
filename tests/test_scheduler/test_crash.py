"""SIGKILL in the middle of a digest batch loses nothing and doubles nothing: after a
restart, once the dead process's leases expired, every subscriber has exactly one digest.

The kill lands while the SMTP server has NOT accepted the message in flight (the fake
holds the connection at RCPT): a message whose DATA the server had already accepted,
but whose `sent` mark was not yet committed, would be sent again; its stable Message-ID
lets receivers drop it (docs/production.md, "Crash safety")."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from db.clock import utc_now
from db.models import Digest
from tests.fakes.smtp import SmtpServer
from tests.fakes.upstream import FakeUpstream
from tests.test_scheduler.conftest import (
    ACCEPT_FIRST,
    HoldAfter,
    Processes,
    digest_statuses,
    seed_due_subscribers,
    service_env,
)

SUBSCRIBERS = 6


@pytest.mark.slow
def test_sigkill_mid_batch_then_restart_sends_each_digest_exactly_once(
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
    env = service_env(db_url, tmp_path, smtp_host="127.0.0.1", smtp_port=holding_smtp.port,
                      pubmed_base_url=upstream.pubmed_base_url,
                      ctgov_base_url=upstream.ctgov_base_url)

    first = processes.start("first", "scheduler", env=env)
    # Kill while the third digest is held before DATA and the two accepted ones are
    # recorded: the sender commits each acceptance right behind it, so this is a
    # moment any real crash can hit (the milliseconds in between are the documented edge).
    processes.wait_until(
        "the third digest held at RCPT and the first two recorded sent",
        lambda: handler.holding.is_set() and digest_statuses(factory).get("sent") == ACCEPT_FIRST,
    )
    first.send(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    handler.release.set()  # the dead client's session goes on to nothing: no DATA follows

    # Killed mid-batch: what the server accepted is marked sent, the rest is pending
    # and still leased to the dead process.
    assert len(handler.received) == ACCEPT_FIRST
    assert digest_statuses(factory) == {"sent": ACCEPT_FIRST, "pending": SUBSCRIBERS - ACCEPT_FIRST}
    with factory() as session:
        leased_until = session.scalar(
            select(func.max(Digest.lease_expires_at)).where(Digest.status == "pending"))
    assert leased_until is not None and leased_until > utc_now()
    # A restart before the lease expired would find nothing free; wait it out.
    while utc_now() <= leased_until:
        time.sleep(0.2)

    second = processes.start("second", "scheduler", env=env)
    processes.wait_until("every pending digest to be sent",
                         lambda: digest_statuses(factory) == {"sent": SUBSCRIBERS})
    second.send(signal.SIGTERM)
    assert second.wait() == 0, second.log()

    per_recipient = Counter(str(m["To"]) for m in handler.messages())
    assert per_recipient == Counter(emails)
    message_ids = [str(m["Message-ID"]) for m in handler.messages()]
    assert len(set(message_ids)) == SUBSCRIBERS
