"""Prometheus metrics: shared facts read from the database, plus process-local timings.

The API and the schedulers may run as different processes, so counters kept in one
process's memory would show only that process's share. Everything that describes the
service as a whole (polls, failures, items, digests, pending mail, scheduler
heartbeats) is therefore read from the DATABASE at scrape time by `DatabaseCollector`:
any API process answers `/metrics` with the same numbers.

What only a process can know (its SMTP latency, its own job runs and durations) lives in
ordinary prometheus-client metrics on that process's `Metrics.registry`: `/metrics` of
an API process, or `alerts scheduler --metrics-port` for a scheduler process.

No metric object is created at import time: the composition root makes one `Metrics`
per process (tests make one per app) and hands it down.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.ops.logging import log_event
from alerts.polling.schemas import CATALOGUE
from db.clock import utc_now
from db.models import (
    Digest,
    Feed,
    Item,
    OutboundMail,
    SchedulerHeartbeat,
    SourceState,
    Target,
)
from db.statuses import DigestStatus, MailStatus

logger = logging.getLogger(__name__)

__all__ = ["DatabaseCollector", "Metrics", "serve_metrics"]

#: Digest statuses always reported, even at zero, so dashboards and alert rules have a
#: series to look at before the first digest of each kind exists.

#: SMTP is a round trip per message over a reused connection: milliseconds on a local
#: relay, seconds on a slow or throttling one.
SMTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: A job is one poll cycle, one digest batch or one outbox flush: from milliseconds
#: (nothing due) to minutes (a backfill-sized poll, a large digest batch).
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)


class Metrics:
    """One process's registry: its own timings, and optionally the database facts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.smtp_send_seconds = Histogram(
            "alerts_smtp_send_seconds",
            "Seconds the SMTP server took to accept one message (this process).",
            buckets=SMTP_BUCKETS,
            registry=self.registry,
        )
        self.job_runs = Counter(
            "alerts_scheduler_job_runs",
            "Scheduler job runs in this process, by job and outcome (ok, error, skipped).",
            ["job", "outcome"],
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "alerts_scheduler_job_duration_seconds",
            "Seconds a scheduler job run took (this process).",
            ["job"],
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        self._database: DatabaseCollector | None = None

    def observe_smtp_latency(self, seconds: float) -> None:
        """The `observe_latency` hook of `make_mailer`."""
        self.smtp_send_seconds.observe(seconds)

    def observe_job(self, job: str, outcome: str, seconds: float | None = None) -> None:
        self.job_runs.labels(job=job, outcome=outcome).inc()
        if seconds is not None:
            self.job_seconds.labels(job=job).observe(seconds)

    def watch_database(self, session_factory: sessionmaker[Session], settings: Settings) -> None:
        """Also report the shared facts of the database at every scrape (once per
        registry: a second call is ignored)."""
        if self._database is None:
            self._database = DatabaseCollector(session_factory, settings)
            self.registry.register(self._database)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """Everything registered, as (body, content type): the format the scraper's
        Accept header asks for (OpenMetrics), else the Prometheus text format 0.0.4
        that every Prometheus version reads."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


class DatabaseCollector(Collector):
    """Reads the service-wide facts from the database each time it is scraped."""

    def __init__(self, session_factory: sessionmaker[Session], settings: Settings) -> None:
        self.session_factory = session_factory
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "alerts_database_up", "1 when the last scrape could read the database, else 0."
        )
        try:
            with self.session_factory() as session:
                families = list(self._families(session, utc_now()))
        except SQLAlchemyError as exc:
            # A scrape never fails as a whole: the process metrics still answer, and
            # alerts_database_up says why the rest is missing.
            log_event(logger, "metrics.database_unavailable", level=logging.WARNING,
                      error=type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, session: Session, now: datetime) -> Iterator[Metric]:
        yield from self._source_totals(session)
        yield from self._source_health(session)
        yield self._feeds_failing(session)
        yield self._items(session)
        yield self._digests(session)
        yield self._digests_retrying(session)
        yield self._outbox(session)
        yield self._outbox_failed(session)
        yield self._heartbeats(session, now)

    def _source_totals(self, session: Session) -> Iterator[Metric]:
        polls = CounterMetricFamily(
            "alerts_source_polls", "Polls of each source, all targets, all processes.",
            labels=["source"],
        )
        failures = CounterMetricFamily(
            "alerts_source_failures", "Failed polls of each source, all targets, all processes.",
            labels=["source"],
        )
        last_success = GaugeMetricFamily(
            "alerts_source_last_success_timestamp_seconds",
            "Unix time of the latest successful poll of each source (any target).",
            labels=["source"],
        )
        rows = session.execute(
            select(
                SourceState.source,
                func.coalesce(func.sum(SourceState.polls_total), 0),
                func.coalesce(func.sum(SourceState.failures_total), 0),
                func.max(SourceState.last_success_at),
            )
            .group_by(SourceState.source)
            .order_by(SourceState.source)
        ).all()
        for source, polls_total, failures_total, success_at in rows:
            polls.add_metric([source], float(polls_total))
            failures.add_metric([source], float(failures_total))
            if success_at is not None:  # max() keeps the column type: aware UTC
                last_success.add_metric([source], success_at.timestamp())
        yield polls
        yield failures
        yield last_success

    def _source_health(self, session: Session) -> Iterator[Metric]:
        consecutive = GaugeMetricFamily(
            "alerts_source_consecutive_failures",
            "Failed polls in a row of each (source, target); 0 after a success.",
            labels=["source", "target"],
        )
        failing = GaugeMetricFamily(
            "alerts_source_failing",
            "1 when a (source, target) failed ALERTS_FAILURE_ALERT_THRESHOLD times in a row "
            "(one-off failures stay 0).",
            labels=["source", "target"],
        )
        next_poll = GaugeMetricFamily(
            "alerts_source_next_poll_timestamp_seconds",
            "Unix time at which each (source, target) is next due.",
            labels=["source", "target"],
        )
        threshold = self.settings.failure_alert_threshold
        rows = session.execute(
            select(SourceState.source, Target.slug, SourceState.consecutive_failures,
                   SourceState.next_poll_at)
            .outerjoin(Target, Target.id == SourceState.target_id)
            .order_by(SourceState.source, SourceState.target_id.is_not(None), Target.slug)
        ).all()
        for source, target_slug, failures_in_a_row, next_poll_at in rows:
            slug = CATALOGUE if target_slug is None else target_slug
            consecutive.add_metric([source, slug], float(failures_in_a_row))
            failing.add_metric([source, slug], 1.0 if failures_in_a_row >= threshold else 0.0)
            if next_poll_at is not None:
                next_poll.add_metric([source, slug], next_poll_at.timestamp())
        yield consecutive
        yield failing
        yield next_poll

    def _feeds_failing(self, session: Session) -> Metric:
        family = GaugeMetricFamily(
            "alerts_feeds_failing",
            "Enabled RSS/Atom feeds of each target that failed "
            "ALERTS_FAILURE_ALERT_THRESHOLD times in a row.",
            labels=["target"],
        )
        rows = session.execute(
            select(Target.slug, func.count(Feed.id))
            .select_from(Feed)
            .outerjoin(Target, Feed.target_id == Target.id)
            .where(Feed.enabled.is_(True),
                   Feed.consecutive_failures >= self.settings.failure_alert_threshold)
            .group_by(Target.slug)
            .order_by(Target.slug)
        ).all()
        for slug, count in rows:  # no slug: the catalogue's own feeds
            family.add_metric([CATALOGUE if slug is None else slug], float(count))
        return family

    def _items(self, session: Session) -> Metric:
        family = GaugeMetricFamily(
            "alerts_items_stored", "Items stored, by source.", labels=["source"]
        )
        rows = session.execute(
            select(Item.source, func.count()).group_by(Item.source).order_by(Item.source)
        ).all()
        for source, count in rows:
            family.add_metric([source], float(count))
        return family

    def _digests(self, session: Session) -> Metric:
        family = GaugeMetricFamily(
            "alerts_digests", "Digests by status (pending, sent, empty, failed, cancelled).",
            labels=["status"],
        )
        counts = {status.value: 0 for status in DigestStatus}
        for status, count in session.execute(
            select(Digest.status, func.count()).group_by(Digest.status)
        ):
            counts[status] = count
        for status, count in sorted(counts.items()):
            family.add_metric([status], float(count))
        return family

    def _digests_retrying(self, session: Session) -> Metric:
        return _count(
            session, "alerts_digests_retrying",
            "Pending digests the SMTP relay did not take at least once (refused for now, "
            "unreachable, or refusing everything); each run retries them. Their "
            "last_error is in GET /api/v1/digests?status=pending.",
            Digest, Digest.status == DigestStatus.pending, Digest.attempts > 0,
        )

    def _outbox_failed(self, session: Session) -> Metric:
        return _count(
            session, "alerts_outbound_mails_failed",
            "Confirmation and token mails not sent for good: refused for the address, "
            "retried too often, or not deliverable through the relay (last_error says).",
            OutboundMail, OutboundMail.status == MailStatus.failed,
        )

    def _outbox(self, session: Session) -> Metric:
        return _count(
            session, "alerts_outbound_mails_pending",
            "Confirmation and token mails not yet accepted by the SMTP server.",
            OutboundMail, OutboundMail.status == MailStatus.pending,
        )

    def _heartbeats(self, session: Session, now: datetime) -> Metric:
        family = GaugeMetricFamily(
            "alerts_scheduler_heartbeat_age_seconds",
            "Seconds since each scheduler process last wrote its heartbeat; alert on the "
            "minimum (no live scheduler), not on one owner (a killed one stays a day).",
            labels=["owner"],
        )
        rows = session.execute(
            select(SchedulerHeartbeat.owner, SchedulerHeartbeat.seen_at)
            .order_by(SchedulerHeartbeat.owner)
        ).all()
        for owner, seen_at in rows:
            family.add_metric([owner], max(0.0, (now - seen_at).total_seconds()))
        return family



def _count(session: Session, name: str, documentation: str, model: Any,
           *conditions: Any) -> Metric:
    """A gauge of the rows of `model` that meet `conditions`."""
    family = GaugeMetricFamily(name, documentation)
    count = session.scalar(select(func.count()).select_from(model).where(*conditions))
    family.add_metric([], float(count or 0))
    return family


def serve_metrics(metrics: Metrics, port: int, host: str = "0.0.0.0") -> None:
    """Expose a process's registry on its own HTTP port (a scheduler process, which has
    no API to answer /metrics); runs in a daemon thread."""
    start_http_server(port, addr=host, registry=metrics.registry)
