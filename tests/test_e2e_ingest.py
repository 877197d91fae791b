"""End to end: `alerts poll` against a loopback PubMed and ClinicalTrials.gov serving the
recorded payloads, then the items API. The real adapters, the real HTTP client, the real
database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from alerts.app import create_app
from alerts.cli import app as cli
from alerts.config import Settings
from alerts.items.match_fields import match_input
from alerts.matching import compile_rule
from db.models import Item, Target
from db.session import make_engine
from tests.conftest import make_settings
from tests.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.slow

SLUG = "her2-exon20"


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(posted_on=datetime.now(UTC).date()) as upstream:
        yield upstream


@pytest.fixture
def settings_at_fake(
    fake: FakeUpstream, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The environment of `alerts poll`, and the same settings for the API."""
    values = {
        "database_url": db_url,
        "var_dir": str(tmp_path / "var"),
        "pubmed_base_url": fake.pubmed_base_url,
        "ctgov_base_url": fake.ctgov_base_url,
        "ncbi_api_key": "test-key",  # 10 requests/s instead of 3: a faster test
    }
    monkeypatch.chdir(tmp_path)
    for name, value in values.items():
        monkeypatch.setenv(f"ALERTS_{name.upper()}", value)
    return make_settings(tmp_path, **values)  # type: ignore[arg-type]


def alerts_poll() -> list[str]:
    outcome = CliRunner().invoke(cli, ["poll"])
    assert outcome.exit_code == 0, outcome.output
    return outcome.stdout.splitlines()


def all_items(settings: Settings, slug: str = SLUG) -> list[dict[str, Any]]:
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/api/v1/targets/{slug}/items", params={"limit": 200})
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    return response.json()["data"]  # type: ignore[no-any-return]


def stored_decisions(settings: Settings, slug: str = SLUG) -> dict[tuple[str, str], bool]:
    """(source, external id) -> what the target's rule decides on each STORED item,
    asked of the match-rule interface directly (so this test holds whatever the rule's
    wording): the ingest must have linked exactly the matched ones."""
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            target = session.scalars(select(Target).where(Target.slug == slug)).one()
            rule = compile_rule(target.match_terms)
            return {(item.source, item.external_id): rule.match(match_input(item)).matched
                    for item in session.scalars(select(Item))}
    finally:
        engine.dispose()


def matched(decisions: dict[tuple[str, str], bool], source: str) -> int:
    return sum(1 for (src, _id), ok in decisions.items() if src == source and ok)


def test_poll_stores_every_served_record_and_the_api_lists_the_matched_ones(
    fake: FakeUpstream, settings_at_fake: Settings
) -> None:
    lines = alerts_poll()

    decisions = stored_decisions(settings_at_fake)
    served = {("pubmed", pmid) for pmid in fake.pmids} | {("ctgov", n) for n in fake.nct_ids}
    assert set(decisions) == served  # everything stored once, matched or rejected
    # The whole catalogue first: what the target's rule matched is linked (and new) there;
    # then the target's first history on its own search decides the rest for it.
    assert lines == [
        f"pubmed  *            {matched(decisions, 'pubmed')} new, 0 updated  (2 requests)",
        f"ctgov   *            {matched(decisions, 'ctgov')} new, 0 updated  (2 requests)",
        "rss     *            skipped: no feeds for this target",
        f"pubmed  {SLUG}  0 new, 0 updated  (2 requests)",
        f"ctgov   {SLUG}  0 new, 0 updated  (3 requests)",
        f"rss     {SLUG}  skipped: no feeds for this target",
    ]
    items = all_items(settings_at_fake)
    assert sorted((i["source"], i["external_id"]) for i in items) == sorted(
        key for key, ok in decisions.items() if ok)
    for item in items:
        if item["source"] == "pubmed":
            assert item["url"] == f"https://pubmed.ncbi.nlm.nih.gov/{item['external_id']}/"
            assert item["kind"] == "publication"
        else:
            assert item["url"] == f"https://clinicaltrials.gov/study/{item['external_id']}"
            assert item["kind"] == "trial"
            assert [e["kind"] for e in item["events"]] == ["new"]

    efetches = len(fake.requests_to("/efetch.fcgi"))
    # The target's first history is done: the catalogue-wide poll alone serves it now.
    assert alerts_poll() == [
        "pubmed  *            0 new, 0 updated  (1 request)",
        "ctgov   *            skipped: upstream data unchanged  (1 request)",
        "rss     *            skipped: no feeds for this target",
        f"rss     {SLUG}  skipped: no feeds for this target",
    ]
    # Decided PMIDs, matched or rejected, are not fetched again.
    assert len(fake.requests_to("/efetch.fcgi")) == efetches
    assert len(all_items(settings_at_fake)) == len(items)


def test_a_trial_whose_status_changed_upstream_shows_an_update_event(
    fake: FakeUpstream, settings_at_fake: Settings
) -> None:
    """The recorded NCT02210780 names Dupixent only among its interventions' other names:
    a target with that drug matches it there, HER2 exon 20 does not."""
    added = CliRunner().invoke(cli, ["targets", "add", "dupilumab", "--name", "Dupilumab",
                                     "--description", "IL-4 receptor alpha antibody",
                                     "--kind", "protein", "--gene", "IL4R",
                                     "--ctgov-term", "dupilumab", "--drug", "Dupixent"])
    assert added.exit_code == 0, added.output
    alerts_poll()
    fake.set_study_status("NCT02210780", "TERMINATED")

    lines = alerts_poll()

    # One search for both targets; the change is news for the target linked to the study
    # only (HER2 exon 20's rule rejected it).
    assert "ctgov   *            0 new, 1 updated  (2 requests)" in lines
    assert not [line for line in lines if line.startswith("ctgov   dupilumab")]
    [trial] = [i for i in all_items(settings_at_fake, "dupilumab")
               if i["external_id"] == "NCT02210780"]
    assert "Dupixent" in trial["matched_terms"]
    assert trial["evidence_field"] == "interventions"
    assert trial["data"]["overall_status"] == "TERMINATED"
    assert trial["data"]["intervention_other_names"] == ["REGN668", "SAR231893", "Dupixent"]
    assert [e["kind"] for e in trial["events"]] == ["new", "updated"]
    assert trial["events"][1]["changes"] == [
        {"field": "Overall status", "old": "COMPLETED", "new": "TERMINATED"},
    ]


def test_an_upstream_outage_fails_that_source_only_and_nothing_is_lost(
    fake: FakeUpstream, settings_at_fake: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERTS_HTTP_MAX_RETRIES", "0")
    fake.fail("/entrez/eutils/efetch.fcgi", 503, retry_after=120)

    lines = alerts_poll()

    assert lines[0].startswith("pubmed  *            failed: pubmed efetch: HTTP 503")
    assert lines[3].startswith(f"pubmed  {SLUG}  failed: pubmed efetch: HTTP 503")
    decisions = stored_decisions(settings_at_fake)
    assert {source for source, _id in decisions} == {"ctgov"}  # no PubMed item stored
    assert lines[1] == (
        f"ctgov   *            {matched(decisions, 'ctgov')} new, 0 updated  (2 requests)")

    fake.clear_failures()
    lines = alerts_poll()
    decisions = stored_decisions(settings_at_fake)
    assert {pmid for source, pmid in decisions if source == "pubmed"} == set(fake.pmids)
    assert lines[0] == (
        f"pubmed  *            {matched(decisions, 'pubmed')} new, 0 updated  (2 requests)")
    assert lines[3] == f"pubmed  {SLUG}  0 new, 0 updated  (2 requests)"  # its first history


def rss(*titles: str) -> bytes:
    entries = "".join(
        f"<item><title>{title}</title><link>https://news.example/{n}</link>"
        f"<guid>https://news.example/{n}</guid><description>{title}.</description></item>"
        for n, title in enumerate(titles)
    )
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Oncology news</title>'
            f"<link>https://news.example/</link>{entries}</channel></rss>").encode()


def test_a_feed_keeps_the_matching_entries_then_costs_one_304_then_goes(
    fake: FakeUpstream, settings_at_fake: Settings
) -> None:
    url = fake.add_feed("oncology", rss(
        "Zongertinib shows responses in HER2 exon 20 insertion NSCLC",
        "Sevabertinib granted breakthrough therapy designation",
        "HER2-mutant lung cancer: zongertinib data at ASCO",
        "EGFR exon 20 insertion: amivantamab update",
        "Trastuzumab deruxtecan in HER2-positive breast cancer",
        "Pyrotinib in HER2-positive metastatic breast cancer",
        "MET exon 20 skipping: capmatinib",
    ))
    added = CliRunner().invoke(cli, ["feeds", "add", url, "--target", SLUG])
    assert added.exit_code == 0, added.output

    # A target's own feed: the catalogue has none; the target's is polled every time.
    assert CliRunner().invoke(cli, ["poll", "--source", "rss"]).stdout == (
        "rss  *            skipped: no feeds for this target\n"
        f"rss  {SLUG}  3 new, 0 updated  (1 request)\n")
    news = [i for i in all_items(settings_at_fake) if i["kind"] == "news"]
    assert sorted(i["url"] for i in news) == [f"https://news.example/{n}" for n in range(3)]

    # Unchanged: If-None-Match answered 304, nothing parsed, nothing new.
    assert CliRunner().invoke(cli, ["poll", "--source", "rss"]).stdout == (
        "rss  *            skipped: no feeds for this target\n"
        f"rss  {SLUG}  0 new, 0 updated  (1 request)\n")
    first, second = fake.requests_to("/feeds/oncology.xml")
    assert second.headers["If-None-Match"] == fake.feeds["oncology"].etag
    assert "If-None-Match" not in first.headers

    fake.fail("/feeds/oncology.xml", 410)
    CliRunner().invoke(cli, ["poll", "--source", "rss"])
    assert CliRunner().invoke(cli, ["poll", "--source", "rss"]).stdout == (
        "rss  *            skipped: no feeds for this target\n"
        f"rss  {SLUG}  skipped: no feeds for this target\n")
    assert len(all_items(settings_at_fake)) == 3  # what the feed brought stays
