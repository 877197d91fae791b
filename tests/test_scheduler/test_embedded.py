"""`alerts run`: the API and the scheduler in one process. Started on a database with a
subscriber whose digest is due, it polls and mails that digest by itself, answers
/readyz and /metrics meanwhile, and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Digest, Item, ItemTarget, SchedulerHeartbeat, Target
from tests.fakes.smtp import SmtpServer, free_port
from tests.fakes.upstream import FakeUpstream
from tests.test_scheduler.conftest import Processes, seed_due_subscribers, service_env

DUPILUMAB = """
[[targets]]
slug = "dupilumab"
name = "Dupilumab"
description = "IL-4 receptor alpha antibody"
kind = "protein"
genes = ["IL4R"]
variant_terms = []
variant_patterns = []
positive_status_counts = false
related_drugs = []
ctgov_term = "dupilumab"
sources = ["test"]

[[targets.drugs]]
name = "dupilumab"
codes = []
brands = ["Dupixent"]
shared_with = []
"""


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(posted_on=date.today()) as fake:
        yield fake


def _get(base: str, path: str) -> httpx.Response | None:
    try:
        return httpx.get(base + path, timeout=5)
    except httpx.TransportError:
        return None


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.slow
def test_run_polls_and_mails_the_due_digest_without_any_command(
    processes: Processes,
    upstream: FakeUpstream,
    smtp_server: SmtpServer,
    db_url: str,
    isolated: tuple[Engine, sessionmaker[Session]],
    tmp_path: Path,
) -> None:
    _engine, factory = isolated
    # The operator's catalogue: one target whose rule matches a recorded study
    # (NCT02210780 lists Dupixent among its interventions' other names), so the
    # scheduler's own poll brings it news.
    catalogue = tmp_path / "catalogue.toml"
    catalogue.write_text(DUPILUMAB, encoding="utf-8")
    with factory() as session:
        session.add(Target(slug="dupilumab", name="Dupilumab", description="",
                           match_terms={"genes": [], "mutations": [], "drugs": []}))
        session.commit()
    (email,) = seed_due_subscribers(factory, 1, send_when_empty=False, target_slug="dupilumab")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = service_env(
        db_url, tmp_path,
        smtp_host="127.0.0.1", smtp_port=smtp_server.port,
        pubmed_base_url=upstream.pubmed_base_url, ctgov_base_url=upstream.ctgov_base_url,
        poll_interval_minutes=1, catalogue_file=catalogue,
    )
    run = processes.start("run", "run", "--port", str(port), env=env)

    ready = processes.wait_until("/readyz", lambda: (_get(base, "/readyz") or None))
    assert (ready.status_code, ready.json()) == (200, {"status": "ok"})

    (digest,) = processes.wait_until("the digest", lambda: smtp_server.handler.to(email))
    # It holds what the scheduler's own poll just stored (an empty one would not be sent).
    assert "Dupilumab" in str(digest["Subject"])
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    with factory() as session:
        stored = dict(session.execute(
            select(Item.source, func.count()).group_by(Item.source)).all())
        assert stored == {"pubmed": len(upstream.pmids), "ctgov": len(upstream.nct_ids)}
        linked = session.scalar(select(func.count()).select_from(ItemTarget).join(
            Target, Target.id == ItemTarget.target_id).where(Target.slug == "dupilumab"))
        (sent,) = session.scalars(select(Digest)).all()
        assert sent.status == "sent" and sent.item_count == linked >= 1
        owner = session.scalars(select(SchedulerHeartbeat.owner)).one()

    metrics = _samples(processes.wait_until(
        "a scrape after the digest job logged",
        lambda: run.lines("scheduler.job name=digests") and _get(base, "/metrics"),
    ).text)
    assert metrics[("alerts_database_up", ())] == 1
    # The whole catalogue once per source, and each target's first history on its own
    # (ctgov: both targets; dupilumab has no PubMed query).
    for source, polls in (("pubmed", 2), ("ctgov", 3)):
        assert metrics[("alerts_source_polls_total", (("source", source),))] == polls
        assert metrics[("alerts_source_failures_total", (("source", source),))] == 0
        assert metrics[("alerts_items_stored", (("source", source),))] == stored[source]
        for target in ("*", "her2-exon20"):
            health = (("source", source), ("target", target))
            assert metrics[("alerts_source_failing", health)] == 0
    assert metrics[("alerts_digests", (("status", "sent"),))] == 1
    assert metrics[("alerts_digests", (("status", "pending"),))] == 0
    assert ("alerts_scheduler_heartbeat_age_seconds", (("owner", owner),)) in metrics
    # Process-local: this process's own jobs and SMTP round trips.
    assert metrics[("alerts_scheduler_job_runs_total", (("job", "poll"), ("outcome", "ok")))] >= 1
    assert metrics[("alerts_smtp_send_seconds_count", ())] >= 1

    sources = _get(base, "/api/v1/sources")
    assert sources is not None and sources.status_code == 200

    run.send(signal.SIGTERM)
    assert run.wait() == 0, run.log()
    assert run.lines("scheduler.stopped")
    assert len(smtp_server.handler.to(email)) == 1
    with factory() as session:
        assert session.scalars(select(SchedulerHeartbeat)).all() == []


@pytest.mark.slow
def test_run_migrates_a_new_database_first_and_stops_on_sigint(
    processes: Processes, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = service_env(f"sqlite:///{tmp_path / 'new' / 'alerts.db'}", tmp_path,
                      ctgov_base_url="http://127.0.0.1:9/api/v2",
                      pubmed_base_url="http://127.0.0.1:9/entrez/eutils")
    run = processes.start("run", "run", "--port", str(port), env=env)

    ready = processes.wait_until("/readyz", lambda: (_get(base, "/readyz") or None))
    assert ready.status_code == 200
    targets = _get(base, "/api/v1/targets")
    assert targets is not None and "her2-exon20" in targets.text  # the seeded catalogue

    run.send(signal.SIGINT)
    assert run.wait() == 0, run.log()
    assert run.lines("scheduler.stopped")
