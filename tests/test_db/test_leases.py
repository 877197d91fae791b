"""The one lease: a row is free when nobody holds it or its lease has run out (the
expiry instant itself included); claims are exclusive, renewals and frees touch only
the caller's own leases."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db import leases
from db.models import OutboundMail

NOW = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=10)


def _mail(session: Session, **lease: object) -> int:
    mail = OutboundMail(kind="confirm", recipient="r@example.org", message="m",
                        status="pending", attempts=0, **lease)
    session.add(mail)
    session.flush()
    return mail.id


def _lease(session: Session, mail_id: int) -> tuple[str | None, datetime | None]:
    row = session.execute(
        select(OutboundMail.lease_owner, OutboundMail.lease_expires_at)
        .where(OutboundMail.id == mail_id)
    ).one()
    return row.lease_owner, row.lease_expires_at


def _claim(session: Session, mail_id: int, owner: str, now: datetime = NOW) -> int:
    return leases.claim(session, OutboundMail, OutboundMail.id == mail_id, owner=owner,
                        now=now, until=now + LEASE)


def test_owner_names_are_unique_per_process_start() -> None:
    first, second = leases.new_owner(), leases.new_owner()
    assert first != second
    host = socket.gethostname()[:80]
    for owner in (first, second):
        assert owner.startswith(f"{host}-{os.getpid()}-")
        assert len(owner) <= 128  # the lease_owner and heartbeat owner columns


@pytest.mark.parametrize(
    ("expires_at", "free"),
    [
        pytest.param(None, True, id="never-leased"),
        pytest.param(NOW - timedelta(seconds=1), True, id="expired"),
        pytest.param(NOW, True, id="expires-now"),
        pytest.param(NOW + timedelta(microseconds=1), False, id="live"),
        pytest.param(NOW + LEASE, False, id="live-long"),
    ],
)
def test_a_row_is_free_when_unleased_or_its_lease_has_run_out(
    session: Session, expires_at: datetime | None, free: bool
) -> None:
    owner = None if expires_at is None else "dead-process"
    mail_id = _mail(session, lease_owner=owner, lease_expires_at=expires_at)

    in_sql = session.scalar(
        select(OutboundMail.id).where(OutboundMail.id == mail_id,
                                      leases.is_free(OutboundMail, NOW))
    )

    assert (in_sql is not None) is free
    assert leases.is_held(expires_at, NOW) is not free
    assert _claim(session, mail_id, "me") == (1 if free else 0)
    assert _lease(session, mail_id) == (("me", NOW + LEASE) if free else (owner, expires_at))


def test_of_two_claims_only_the_first_gets_the_row(session: Session) -> None:
    mail_id = _mail(session)

    assert _claim(session, mail_id, "first") == 1
    assert _claim(session, mail_id, "second") == 0
    assert _lease(session, mail_id) == ("first", NOW + LEASE)


def test_a_claim_sets_the_callers_values_and_checks_its_conditions(session: Session) -> None:
    mail_id = _mail(session)

    assert leases.claim(session, OutboundMail, OutboundMail.id == mail_id,
                        OutboundMail.status == "sent", owner="me", now=NOW,
                        until=NOW + LEASE) == 0
    assert leases.claim(session, OutboundMail, OutboundMail.id == mail_id, owner="me",
                        now=NOW, until=NOW + LEASE, values={"attempts": 3}) == 1
    assert session.scalar(select(OutboundMail.attempts).where(OutboundMail.id == mail_id)) == 3


def test_only_the_holder_renews_and_frees(session: Session) -> None:
    mail_id = _mail(session)
    _claim(session, mail_id, "me")
    later = NOW + 2 * LEASE

    assert leases.renew(session, OutboundMail, OutboundMail.id == mail_id, owner="other",
                        until=later) == 0
    assert leases.free(session, OutboundMail, OutboundMail.id == mail_id, owner="other") == 0
    assert _lease(session, mail_id) == ("me", NOW + LEASE)

    assert leases.renew(session, OutboundMail, OutboundMail.id == mail_id, owner="me",
                        until=later) == 1
    assert _lease(session, mail_id) == ("me", later)
    assert _claim(session, mail_id, "other", now=NOW + LEASE) == 0  # renewed: still held

    assert leases.free(session, OutboundMail, OutboundMail.id == mail_id, owner="me") == 1
    assert _lease(session, mail_id) == (None, None)
    assert _claim(session, mail_id, "other") == 1


def test_a_row_freed_with_not_before_is_claimable_from_that_time(session: Session) -> None:
    mail_id = _mail(session)
    _claim(session, mail_id, "me")
    retry_at = NOW + timedelta(minutes=1)
    session.execute(update(OutboundMail).where(OutboundMail.id == mail_id)
                    .values(**leases.freed(not_before=retry_at)))

    assert _lease(session, mail_id) == (None, retry_at)
    assert _claim(session, mail_id, "other", now=retry_at - timedelta(seconds=1)) == 0
    assert _claim(session, mail_id, "other", now=retry_at) == 1


def test_freeing_in_an_outcome_leaves_a_lease_taken_over_alone(session: Session) -> None:
    mine, taken_over = _mail(session), _mail(session)
    _claim(session, mine, "me")
    _claim(session, taken_over, "successor")

    session.execute(
        update(OutboundMail).where(OutboundMail.id.in_([mine, taken_over]))
        .values(last_error="done", **leases.freed_if_held_by(OutboundMail, "me"))
        .execution_options(synchronize_session=False)
    )

    assert _lease(session, mine) == (None, None)
    assert _lease(session, taken_over) == ("successor", NOW + LEASE)
