"""Throttles on every route that sends mail: per client address and for everyone.

The per-address cap (a few confirmations per address and hour) stops one inbox being
flooded, but not a hundred strangers each getting one mail from one script. So each
request to a mail route is also counted per client address and overall, in the
database (`mail_requests`), so that the limits hold across every API process; over
either limit the answer is 429 with `Retry-After`, before the request does anything.

Every request is counted, whether or not it ended in a mail: counting only the mails
would make a 429 tell whether earlier requests for an address had mailed it. Refused
requests are not counted, so a client that keeps knocking is let in again when its
window has passed. The check runs in a short transaction of its own before the request
touches the database, so it never holds a second connection, and a refused request
has written nothing. Under concurrency the counts may let a few requests more through
than the limit (two counts can run before either insert commits); they never fail.

The client address is stored as a keyed hash, not as the address.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import datetime, timedelta

from fastapi import Request
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.errors import TooManyRequests
from db.clock import utc_now
from db.models import MailRequest
from db.session import transaction

#: Stale rows removed per throttled request, at most (keeps each prune short).
PRUNE_BATCH = 500


def client_key(settings: Settings, request: Request) -> str:
    """A keyed hash of the client's address: the same for the same address, and no
    address readable from the table."""
    host = request.client.host if request.client else "unknown"
    return hmac.new(
        settings.signing_key().encode(), f"mail-throttle:{host}".encode(), hashlib.sha256
    ).hexdigest()[:64]


def is_admin_request(settings: Settings, request: Request) -> bool:
    """The operator's calls (the admin token) are not throttled. Compared here, from
    the header alone, so the check needs no database session."""
    admin = settings.admin_token.get_secret_value() if settings.admin_token else ""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return bool(admin) and scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), admin.encode()
    )


def hit(
    session_factory: sessionmaker[Session], settings: Settings, client: str,
    now: datetime | None = None,
) -> None:
    """Count one request of `client`; TooManyRequests (nothing counted) when the client
    or everyone together is over the limit."""
    now = now or utc_now()
    window = timedelta(seconds=settings.mail_throttle_window_seconds)
    since = now - window
    with transaction(session_factory) as session:
        _prune(session, since)
        for where, limit, whom in (
            ((MailRequest.client == client,), settings.mail_throttle_per_client,
             "from your address"),
            ((), settings.mail_throttle_overall, "to this service"),
        ):
            count, oldest = session.execute(
                select(func.count(), func.min(MailRequest.created_at))
                .where(MailRequest.created_at > since, *where)
            ).one()
            if count >= limit:
                wait = (oldest + window - now).total_seconds() if oldest else window.total_seconds()
                raise TooManyRequests(
                    f"too many requests that send mail {whom}; try again later",
                    retry_after=max(1, math.ceil(wait)),
                )
        session.add(MailRequest(client=client, created_at=now))


def _prune(session: Session, before: datetime) -> None:
    """Delete a batch of rows older than the window. Rows another transaction is
    deleting are skipped (PostgreSQL), so concurrent prunes never wait on each other."""
    stale = (
        select(MailRequest.id)
        .where(MailRequest.created_at <= before)
        .order_by(MailRequest.id)
        .limit(PRUNE_BATCH)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(stale))
    if ids:
        session.execute(
            delete(MailRequest).where(MailRequest.id.in_(ids))
            .execution_options(synchronize_session=False)
        )


def mail_throttle(request: Request) -> None:
    """Route dependency of every route that sends mail."""
    settings: Settings = request.app.state.settings
    if is_admin_request(settings, request):
        return
    hit(request.app.state.session_factory, settings, client_key(settings, request))
