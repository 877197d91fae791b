"""/metrics: the shared facts come from database rows at scrape time (so every API
process reports the same), the process's own timings from its registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.app import create_app
from alerts.config import Settings
from alerts.ops.metrics import DatabaseCollector, Metrics
from db.clock import frozen_clock
from db.models import (
    Digest,
    Feed,
    Item,
    OutboundMail,
    SchedulerHeartbeat,
    SourceState,
    Subscriber,
    Target,
)
from db.session import make_engine, make_sessionmaker
from tests.conftest import make_settings

T0 = datetime(2026, 3, 29, 6, 0, tzinfo=UTC)


def _target(session: Session, slug: str) -> Target:
    target = session.scalar(select(Target).where(Target.slug == slug))
    if target is None:
        target = Target(slug=slug, name=slug.upper(), match_terms={"genes": ["KRAS"]})
        session.add(target)
        session.flush()
    return target


def _seed(session: Session) -> None:
    """A service three failing polls into one source, with mail in every state."""
    her2, kras = _target(session, "her2-exon20"), _target(session, "kras-g12c")
    session.add_all([
        SourceState(source="pubmed", target_id=her2.id, polls_total=10, failures_total=2,
                    last_success_at=T0 - timedelta(minutes=5),
                    next_poll_at=T0 + timedelta(hours=1)),
        # Failed three times in a row: at the threshold (3), so flagged.
        SourceState(source="pubmed", target_id=kras.id, polls_total=5, failures_total=4,
                    consecutive_failures=3, last_success_at=T0 - timedelta(days=1)),
        # A one-off failure, and never a success yet: stays quiet.
        SourceState(source="ctgov", target_id=her2.id, polls_total=1, failures_total=1,
                    consecutive_failures=1),
    ])
    session.add_all(
        [Item(source="pubmed", external_id=str(n), kind="publication", title=f"t{n}",
              url=f"https://pubmed.ncbi.nlm.nih.gov/{n}/") for n in range(3)]
        + [Item(source="ctgov", external_id="NCT00000001", kind="trial", title="trial",
                url="https://clinicaltrials.gov/study/NCT00000001")]
    )
    session.add_all([
        Feed(target_id=her2.id, url="https://news.example/ok.xml", consecutive_failures=1),
        Feed(target_id=her2.id, url="https://news.example/down.xml", consecutive_failures=7),
        Feed(target_id=her2.id, url="https://news.example/off.xml", consecutive_failures=9,
             enabled=False),
    ])
    reader = Subscriber(email="reader@example.org", verified_at=T0)
    session.add(reader)
    session.flush()
    for n, status in enumerate(["sent", "sent", "pending", "empty"]):
        session.add(Digest(key=f"{reader.id}:daily:{n}", subscriber_id=reader.id,
                           frequency="daily", slot_at=T0 - timedelta(days=n), status=status,
                           message_id=f"<d{n}@alerts.test>"))
    for n, status in enumerate(["pending", "pending", "sent"]):
        session.add(OutboundMail(kind="confirmation", recipient=f"r{n}@example.org",
                                 message="To: x\n\nhi", status=status))
    session.add_all([
        SchedulerHeartbeat(owner="web1-10-aaaaaa", started_at=T0 - timedelta(hours=2),
                           seen_at=T0 - timedelta(seconds=30)),
        SchedulerHeartbeat(owner="web2-11-bbbbbb", started_at=T0 - timedelta(hours=2),
                           seen_at=T0 - timedelta(hours=1)),
    ])
    session.flush()


def _scrape(session_factory: sessionmaker[Session], settings: Settings) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(session_factory, settings))
    return registry


@pytest.mark.parametrize(
    ("name", "labels", "value"),
    [
        ("alerts_database_up", {}, 1),
        ("alerts_source_polls_total", {"source": "pubmed"}, 15),
        ("alerts_source_polls_total", {"source": "ctgov"}, 1),
        ("alerts_source_failures_total", {"source": "pubmed"}, 6),
        ("alerts_source_last_success_timestamp_seconds", {"source": "pubmed"},
         (T0 - timedelta(minutes=5)).timestamp()),
        ("alerts_source_last_success_timestamp_seconds", {"source": "ctgov"}, None),
        ("alerts_source_consecutive_failures", {"source": "pubmed", "target": "kras-g12c"}, 3),
        ("alerts_source_failing", {"source": "pubmed", "target": "kras-g12c"}, 1),
        ("alerts_source_failing", {"source": "ctgov", "target": "her2-exon20"}, 0),
        ("alerts_source_failing", {"source": "pubmed", "target": "her2-exon20"}, 0),
        ("alerts_source_next_poll_timestamp_seconds", {"source": "pubmed", "target": "her2-exon20"},
         (T0 + timedelta(hours=1)).timestamp()),
        ("alerts_feeds_failing", {"target": "her2-exon20"}, 1),
        ("alerts_items_stored", {"source": "pubmed"}, 3),
        ("alerts_items_stored", {"source": "ctgov"}, 1),
        ("alerts_digests", {"status": "sent"}, 2),
        ("alerts_digests", {"status": "pending"}, 1),
        ("alerts_digests", {"status": "empty"}, 1),
        ("alerts_digests", {"status": "failed"}, 0),
        ("alerts_outbound_mails_pending", {}, 2),
        ("alerts_scheduler_heartbeat_age_seconds", {"owner": "web1-10-aaaaaa"}, 30),
        ("alerts_scheduler_heartbeat_age_seconds", {"owner": "web2-11-bbbbbb"}, 3600),
    ],
)
def test_database_facts_are_read_from_rows(
    session: Session,
    session_factory: sessionmaker[Session],
    settings: Settings,
    name: str,
    labels: dict[str, str],
    value: float | None,
) -> None:
    assert settings.failure_alert_threshold == 3
    _seed(session)
    with frozen_clock(T0):
        registry = _scrape(session_factory, settings)
        assert registry.get_sample_value(name, labels) == value


def test_the_failing_flag_follows_the_configured_threshold(
    session: Session, session_factory: sessionmaker[Session], tmp_path: Path, settings: Settings
) -> None:
    _seed(session)
    strict = make_settings(tmp_path, settings.database_url, failure_alert_threshold=1)
    registry = _scrape(session_factory, strict)
    flag = {"source": "ctgov", "target": "her2-exon20"}
    assert registry.get_sample_value("alerts_source_failing", flag) == 1


def test_an_empty_database_reports_zeros_not_gaps(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    registry = _scrape(session_factory, settings)
    for status in ("sent", "pending", "empty", "failed", "cancelled"):
        assert registry.get_sample_value("alerts_digests", {"status": status}) == 0
    assert registry.get_sample_value("alerts_outbound_mails_pending") == 0


def test_an_unreachable_database_is_a_zero_not_a_failed_scrape(
    tmp_path: Path, settings: Settings
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'alerts.db'}")
    try:
        registry = _scrape(make_sessionmaker(engine), settings)
        assert registry.get_sample_value("alerts_database_up") == 0
        names = {family.name for family in registry.collect()}
        assert names == {"alerts_database_up"}
    finally:
        engine.dispose()


@pytest.fixture
def client(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings
) -> TestClient:
    return TestClient(create_app(settings, engine=engine, session_factory=session_factory))


def test_metrics_endpoint_speaks_prometheus_text(session: Session, client: TestClient) -> None:
    _seed(session)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert {"alerts_database_up", "alerts_source_polls", "alerts_source_failing",
            "alerts_digests", "alerts_scheduler_heartbeat_age_seconds",
            "alerts_smtp_send_seconds", "alerts_scheduler_job_runs",
            "alerts_scheduler_job_duration_seconds"} <= set(families)
    polls = {s.labels["source"]: s.value for s in families["alerts_source_polls"].samples
             if s.name == "alerts_source_polls_total"}
    assert polls == {"ctgov": 1, "pubmed": 15}


def test_a_process_reports_its_own_timings_through_the_app(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    metrics = Metrics()
    metrics.observe_smtp_latency(0.02)
    metrics.observe_job("poll", "ok", 1.5)
    metrics.observe_job("poll", "skipped")
    app = create_app(settings, engine=engine, session_factory=session_factory, metrics=metrics)
    text = TestClient(app).get("/metrics").text
    assert "alerts_smtp_send_seconds_count 1.0" in text
    assert 'alerts_scheduler_job_runs_total{job="poll",outcome="ok"} 1.0' in text
    assert 'alerts_scheduler_job_runs_total{job="poll",outcome="skipped"} 1.0' in text
    assert 'alerts_scheduler_job_duration_seconds_count{job="poll"} 1.0' in text
    assert "alerts_database_up 1.0" in text


def test_two_apps_keep_separate_registries(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    first, second = Metrics(), Metrics()
    first.observe_smtp_latency(0.5)
    app = create_app(settings, engine=engine, session_factory=session_factory, metrics=second)
    assert "alerts_smtp_send_seconds_count 0.0" in TestClient(app).get("/metrics").text


def test_a_scraper_asking_for_openmetrics_gets_it(client: TestClient) -> None:
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")
