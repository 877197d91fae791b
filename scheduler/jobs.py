"""The scheduler's jobs: each calls ONE service and returns the figures worth logging.

Jobs decide nothing. Which sources are due is `SourceState.next_poll_at`; which digests
are due follows from the subscribers' slots; what mail is waiting is the outbox. Leases
in those rows (and the digests' unique keys) are what keep two schedulers from doing
the same work twice, so a job may run in any number of processes at once.

Each job gets a `JobContext` (what the composition root built for this process) and
returns a dict of fields for the one `scheduler.job` log line the runner writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.digests.delivery.send import send_due
from alerts.mail.base import Mailer
from alerts.mail.outbox import flush_outbox
from alerts.ops.heartbeat import forget_heartbeat, record_heartbeat
from alerts.polling.schemas import HELD, NO_FEEDS, NOT_CONFIGURED, NOT_DUE
from alerts.polling.service import poll
from alerts.polling.sweep import poll_catalogue
from db.clock import utc_now
from db.session import transaction

#: Fields of one `scheduler.job` log line (counts, keys), in the order they are logged.
JobFields = dict[str, object]

#: Skip reasons that mean "nothing was asked of the upstream".
_NOT_POLLED = frozenset({NOT_DUE, HELD, NOT_CONFIGURED, NO_FEEDS})


@dataclass(frozen=True)
class JobContext:
    """What every job of one scheduler process shares."""

    settings: Settings
    session_factory: sessionmaker[Session]
    mailer: Mailer
    #: This process's lease owner name (`db.leases.new_owner()`), also its heartbeat row.
    owner: str
    started_at: datetime


def poll_due_sources(ctx: JobContext) -> JobFields:
    """Poll each source for the whole catalogue when its next poll time has come, then
    the first history of every target never polled on its own and the targets' own
    feeds that are due."""
    reports = [
        *poll_catalogue(ctx.session_factory, ctx.settings, owner=ctx.owner, due_only=True),
        *poll(ctx.session_factory, ctx.settings, owner=ctx.owner, due_only=True,
              alongside_catalogue=True),
    ]
    polled = [r for r in reports if not (r.skipped and r.reason in _NOT_POLLED)]
    return {
        "polled": len(polled),
        "failed": sum(1 for r in polled if r.failed),
        "new": sum(r.new for r in polled),
        "updated": sum(r.updated for r in polled),
        "held": sum(1 for r in reports if r.reason == HELD),
    }


def send_due_digests(ctx: JobContext) -> JobFields:
    """Plan the digests due now and send every pending one."""
    report = send_due(
        ctx.session_factory, ctx.settings, ctx.mailer, now=utc_now(), owner=ctx.owner
    )
    fields: JobFields = {
        "planned": report.planned,
        "empty": report.empty,
        "sent": report.sent,
        "deferred": report.deferred,
        "failed": report.failed,
        "cancelled": report.cancelled,
        "pending": report.pending,
    }
    if report.error:
        fields["error"] = report.error
    return fields


def flush_pending_mail(ctx: JobContext) -> JobFields:
    """Retry the confirmation and token mails the API could not send at once."""
    sent = flush_outbox(ctx.session_factory, ctx.mailer, owner=ctx.owner, now=utc_now())
    return {"sent": sent}


def write_heartbeat(ctx: JobContext) -> JobFields:
    """Tell /metrics (through the database) that this scheduler is alive."""
    with transaction(ctx.session_factory) as session:
        record_heartbeat(session, ctx.owner, now=utc_now(), started_at=ctx.started_at)
    return {}


def remove_heartbeat(ctx: JobContext) -> None:
    """After a clean stop: this scheduler is gone on purpose, not dead."""
    with transaction(ctx.session_factory) as session:
        forget_heartbeat(session, ctx.owner)


Job = Callable[[JobContext], JobFields]

#: Job name -> job, in the order a catch-up run goes through them at start.
JOBS: dict[str, Job] = {
    "poll": poll_due_sources,
    "digests": send_due_digests,
    "outbox": flush_pending_mail,
    "heartbeat": write_heartbeat,
}
