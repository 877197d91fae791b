"""The service's queue of transactional mail (confirmations, API tokens): never lost, and
leaving at once.

A mail is first a row written in the same transaction as what it announces: if the
request rolls back there is no mail, and if it commits the mail exists even when the
process dies the next instant. Right after the commit the API process sends it
(`deliver_after_commit`), so the address owner has it within seconds; whatever that
attempt could not send (relay down, 4xx) stays `pending` and `flush_outbox`, run every
minute by the scheduler, sends it later.

The sending starts only once the request's transaction has ended AND its connection is
back in the pool, and takes one connection at a time itself: a request never holds two
connections, so any number of concurrent requests cannot starve the pool (when each
held its own while waiting for a second one, 16 concurrent form posts used to stall the
API for the pool's 30 s timeout).

Both paths claim a row with the lease of db.leases (an atomic UPDATE, its row count
checked): of two processes racing for one mail, exactly one sends it. A row is `sent`
only after the SMTP server accepted it. The lease expiry doubles as "not before" for
retries after a temporary failure (the backoff rule of alerts.backoff).

One mail never stops the others: whatever goes wrong while sending it (an address the
relay cannot carry, an unexpected error) fails that mail alone, with its reason in
`last_error`. A 5xx for an address marks it bounced, unless the relay turns out to
refuse everything (alerts.mail.breaker): then the batch stops and nobody is blamed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from email import message_from_string
from email.message import EmailMessage
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event as sa_event
from sqlalchemy import select, update
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from alerts.backoff import backoff_seconds
from alerts.deps import SessionDep
from alerts.mail.base import (
    POLICY,
    AddressNotSupported,
    Mailer,
    PermanentMailError,
    TemporaryMailError,
    envelope_sender,
)
from alerts.mail.breaker import RelayBreaker
from alerts.mail.factory import make_mailer
from db import leases
from db.clock import utc_now
from db.models import OutboundMail, Subscriber
from db.session import transaction
from db.statuses import AddressStatus, MailStatus

logger = logging.getLogger(__name__)

#: A temporary failure is retried this many times (about 5 hours with the backoff
#: below) before the mail is given up; a confirmation link expires after 7 days anyway.
MAX_ATTEMPTS = 10
RETRY_BASE_SECONDS = 60
RETRY_MAX_SECONDS = 3600
#: After this many mails in a row to different addresses were not taken (refused, or
#: the relay down) the relay is taken to refuse everything: the rest of the batch is
#: released untouched instead of each waiting for its own timeout, and the refusals
#: bounce nobody (alerts.mail.breaker).
STOP_AFTER_CONSECUTIVE_FAILURES = 3
DEFAULT_LEASE_SECONDS = 300

_QUEUED_KEY = "outbox.queued_ids"
_COMMITTED_KEY = "outbox.committed_ids"
_HOOKED_KEY = "outbox.after_commit_hooked"


def queue_mail(session: Session, kind: str, message: EmailMessage) -> OutboundMail:
    """Write `message` as a pending mail in the caller's transaction (flushed, not
    committed). Sessions prepared by `deliver_after_commit` send it once they commit."""
    recipient = str(message["To"])
    mail = OutboundMail(
        kind=kind,
        recipient=recipient,
        message=message.as_string(policy=POLICY),
        status=MailStatus.pending,
        attempts=0,
    )
    session.add(mail)
    session.flush()
    session.info.setdefault(_QUEUED_KEY, []).append(mail.id)
    return mail


def deliver_after_commit(
    session: Session,
    session_factory: sessionmaker[Session],
    mailer: Callable[[], Mailer],
    *,
    owner: str,
) -> None:
    """Send the mails queued in `session` as soon as it commits (never if it rolls back).

    The commit only takes note of them; they are sent once the transaction has ended
    and given its connection back to the pool (`after_transaction_end`), through
    sessions of their own, one connection at a time. For a request that is after its
    response went out. A failure is logged, not raised: the row stays pending for
    `flush_outbox`."""
    if session.info.get(_HOOKED_KEY):
        return
    session.info[_HOOKED_KEY] = True

    def _after_commit(committed: Session) -> None:
        if committed.in_nested_transaction():
            return  # a savepoint: the outer transaction may still roll back
        committed.info.setdefault(_COMMITTED_KEY, []).extend(
            committed.info.pop(_QUEUED_KEY, [])
        )

    def _after_rollback(rolled_back: Session, previous: SessionTransaction) -> None:
        if not previous.nested:  # a savepoint's rollback keeps the outer transaction's mails
            rolled_back.info.pop(_QUEUED_KEY, None)

    def _after_end(ended: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is not None:
            return  # connections are released when the outermost transaction ends
        mail_ids = ended.info.pop(_COMMITTED_KEY, [])
        if not mail_ids:
            return
        try:
            deliver(session_factory, mailer(), mail_ids, owner=owner)
        except Exception:  # the mails are committed; flush_outbox will retry them
            logger.exception("sending queued mails %s failed; left for the outbox", mail_ids)

    sa_event.listen(session, "after_commit", _after_commit)
    sa_event.listen(session, "after_soft_rollback", _after_rollback)
    sa_event.listen(session, "after_transaction_end", _after_end)


def flush_outbox(
    session_factory: sessionmaker[Session],
    mailer: Mailer,
    *,
    owner: str,
    now: datetime | None = None,
    limit: int = 100,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
) -> int:
    """Send up to `limit` pending mails whose lease (or retry delay) has run out,
    oldest first; returns how many the server accepted. Safe to run in several
    processes at once: each mail is claimed by exactly one."""
    now = now or utc_now()
    with transaction(session_factory) as session:
        mail_ids = list(
            session.scalars(
                select(OutboundMail.id)
                .where(OutboundMail.status == MailStatus.pending, leases.is_free(OutboundMail, now))
                .order_by(OutboundMail.id)
                .limit(limit)
            )
        )
    return deliver(
        session_factory, mailer, mail_ids, owner=owner, now=now, lease_seconds=lease_seconds
    )


def deliver(
    session_factory: sessionmaker[Session],
    mailer: Mailer,
    mail_ids: Sequence[int],
    *,
    owner: str,
    now: datetime | None = None,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
) -> int:
    """Claim and send the given mails over one connection; returns how many were sent.
    Mails already sent, failed or leased by another process are skipped. Each step
    takes a connection from the pool and gives it back before the next."""
    now = now or utc_now()
    claimed = [mail_id for mail_id in mail_ids if _claim(session_factory, mail_id, owner, now,
                                                         lease_seconds)]
    sent = 0
    breaker: RelayBreaker[tuple[int, str]] = RelayBreaker(
        STOP_AFTER_CONSECUTIVE_FAILURES, run="outbox"
    )
    with mailer.connect() as connection:
        for position, mail_id in enumerate(claimed):
            if breaker.open:
                _release(session_factory, claimed[position:], owner)
                break
            recipient, text = _load(session_factory, mail_id)
            try:
                parsed = message_from_string(text)
                connection.send_raw(
                    envelope_sender(str(parsed["From"])), [recipient], text.encode("utf-8")
                )
            except AddressNotSupported as exc:  # this relay cannot carry it: no retry
                _mark_failed(session_factory, mail_id, owner, str(exc))
            except PermanentMailError as exc:
                if exc.recipient is None:  # not about the address: whatever we send
                    _mark_retry(session_factory, mail_id, owner, str(exc), now)
                    breaker.refuses_everything(exc)
                else:
                    breaker.refused((mail_id, recipient), recipient, exc)
            except TemporaryMailError as exc:
                _mark_retry(session_factory, mail_id, owner, str(exc), now)
                breaker.not_taken(recipient, exc)
            except Exception as exc:  # noqa: BLE001 - fails this mail, not the batch
                logger.exception("mail %s to %s could not be sent", mail_id, recipient)
                _mark_failed(session_factory, mail_id, owner,
                             f"unexpected error: {type(exc).__name__}: {exc}")
                breaker.not_taken(recipient, exc)
            else:
                _mark_sent(session_factory, mail_id, owner, now)
                sent += 1
                _bounce(session_factory, owner, breaker.accepted(), now)
    _bounce(session_factory, owner, breaker.settle(), now)
    for (mail_id, _recipient), error in breaker.held:  # the relay's fault, not theirs
        _mark_retry(session_factory, mail_id, owner,
                    f"{error} (not counted against the address: {breaker.reason})", now)
    return sent


def app_mailer(request: Request) -> Mailer:
    """The app's mailer: the one injected at `create_app(..., mailer=)`, else the one
    the settings choose."""
    injected = getattr(request.app.state, "mailer", None)
    return injected if injected is not None else make_mailer(request.app.state.settings)


def _mailing_session(request: Request, session: SessionDep) -> Session:
    deliver_after_commit(
        session,
        request.app.state.session_factory,
        lambda: app_mailer(request),
        owner=leases.new_owner(),
    )
    return session


#: The request's session (the same one as `SessionDep`), which sends the mails queued
#: in it right after the request's transaction commits.
MailingSessionDep = Annotated[Session, Depends(_mailing_session)]


def _claim(
    session_factory: sessionmaker[Session],
    mail_id: int,
    owner: str,
    now: datetime,
    lease_seconds: int,
) -> bool:
    with transaction(session_factory) as session:
        return leases.claim(
            session, OutboundMail, OutboundMail.id == mail_id,
            OutboundMail.status == MailStatus.pending,
            owner=owner, now=now, until=now + timedelta(seconds=lease_seconds),
        ) == 1


def _load(session_factory: sessionmaker[Session], mail_id: int) -> tuple[str, str]:
    with transaction(session_factory) as session:
        row = session.execute(
            select(OutboundMail.recipient, OutboundMail.message).where(OutboundMail.id == mail_id)
        ).one()
        return str(row.recipient), str(row.message)


def _finish(
    session_factory: sessionmaker[Session], mail_id: int, owner: str, *,
    not_before: datetime | None = None, **values: Any
) -> None:
    """Record an attempt on `owner`'s mail and free it (a retry: not before `not_before`)."""
    with transaction(session_factory) as session:
        session.execute(
            update(OutboundMail)
            .where(OutboundMail.id == mail_id, leases.is_held_by(OutboundMail, owner))
            .values(attempts=OutboundMail.attempts + 1, **leases.freed(not_before=not_before),
                    **values)
            .execution_options(synchronize_session=False)
        )


def _mark_sent(session_factory: sessionmaker[Session], mail_id: int, owner: str,
               now: datetime) -> None:
    _finish(session_factory, mail_id, owner, status=MailStatus.sent, sent_at=now, last_error=None)


def _mark_retry(session_factory: sessionmaker[Session], mail_id: int, owner: str, error: str,
                now: datetime) -> None:
    with transaction(session_factory) as session:
        attempts = session.scalar(
            select(OutboundMail.attempts).where(OutboundMail.id == mail_id)
        ) or 0
    if attempts + 1 >= MAX_ATTEMPTS:
        logger.warning("mail %s given up after %s attempts: %s", mail_id, attempts + 1, error)
        _finish(session_factory, mail_id, owner, status=MailStatus.failed, last_error=error)
        return
    delay = backoff_seconds(attempts, base=RETRY_BASE_SECONDS, cap=RETRY_MAX_SECONDS)
    _finish(session_factory, mail_id, owner, last_error=error,
            not_before=now + timedelta(seconds=delay))


def _mark_failed(session_factory: sessionmaker[Session], mail_id: int, owner: str,
                 error: str) -> None:
    _finish(session_factory, mail_id, owner, status=MailStatus.failed, last_error=error)


def _bounce(session_factory: sessionmaker[Session], owner: str,
            refused: Sequence[tuple[tuple[int, str], str]], now: datetime) -> None:
    """Permanent refusals of addresses: each mail is not retried, and its address is
    marked bounced so nothing else is sent to it until its owner proves it works (a
    confirmation)."""
    for (mail_id, recipient), error in refused:
        _mark_failed(session_factory, mail_id, owner, error)
        with transaction(session_factory) as session:
            session.execute(
                update(Subscriber)
                .where(Subscriber.email == recipient)
                .values(mail_status=AddressStatus.bounced, mail_error=error, mail_error_at=now)
                .execution_options(synchronize_session=False)
            )


def _release(session_factory: sessionmaker[Session], mail_ids: Sequence[int], owner: str) -> None:
    """Give claimed but unattempted mails back at once (no attempt counted)."""
    with transaction(session_factory) as session:
        leases.free(session, OutboundMail, OutboundMail.id.in_(mail_ids), owner=owner)
