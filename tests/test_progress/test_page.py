"""The target page, its progress API and its Atom feed over a seeded dataset: phases
from stored trials, weekly counts from events, escaping of every upstream string, and
an Atom feed that feedparser reads back with stable entry ids."""

from __future__ import annotations

from datetime import timedelta

import feedparser
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.clock import utc_now
from db.models import Target
from tests.test_digests.factories import Factory

SLUG = "her2-exon20"
EVIL = '<script>alert("x")</script> & "quotes"'


@pytest.fixture
def seeded(session: Session) -> Target:
    """Her2 exon 20 with three trials, a publication and a news item, found this week and
    last; every upstream string carries markup."""
    make = Factory(session)
    target = session.scalars(select(Target).where(Target.slug == SLUG)).one()
    target.match_terms = {  # as the catalogue defines it: code and brand names per drug
        "genes": ["ERBB2", "HER2"], "variant_terms": ["exon 20 insertion"],
        "drugs": [{"name": "zongertinib", "codes": ["BI 1810631"], "brands": ["Hernexeos"]},
                  {"name": "sevabertinib", "codes": ["BAY 2927088"], "brands": []}],
    }
    now = utc_now()
    last_week = now - timedelta(weeks=1)
    trials = [
        ("NCT90000001", ["PHASE1", "PHASE2"], "RECRUITING", ["BI 1810631", EVIL]),
        ("NCT90000002", ["PHASE3"], "NOT_YET_RECRUITING", ["Zongertinib", "Docetaxel"]),
        ("NCT90000003", ["PHASE2"], "WITHDRAWN", ["sevabertinib"]),
    ]
    for nct, phases, status, interventions in trials:
        item = make.item("trial", external_id=nct, title=f"Trial {nct} {EVIL}",
                         published_at=last_week,
                         data={"phases": phases, "overall_status": status,
                               "interventions": interventions})
        make.event(item, target, at=last_week)
        if nct == "NCT90000001":
            make.event(item, target, at=last_week + timedelta(hours=1), kind="updated",
                       changes=[{"field": "phases", "old": ["PHASE1"],
                                 "new": ["PHASE1", "PHASE2"]}])
    make.event(make.item("trial", external_id="NCT90000001x"), target, at=now, kind="updated",
               changes=[{"field": "overall_status", "old": "NOT_YET_RECRUITING",
                         "new": "RECRUITING"}])
    make.event(make.item("publication", title=f"Paper {EVIL}", published_at=now), target,
               at=now)
    make.event(make.item("news", title=f"News {EVIL}", published_at=now), target, at=now)
    return target


def test_progress_api_gives_the_pipeline_and_weekly_counts(
    client: TestClient, seeded: Target
) -> None:
    response = client.get(f"/api/v1/targets/{SLUG}/progress")

    assert response.status_code == 200
    body = response.json()
    drugs = {row["drug"]: row for row in body["pipeline"]}
    assert body["pipeline"][0]["drug"] == "zongertinib"
    assert drugs["zongertinib"]["highest_phase"] == "Phase 3"
    assert drugs["zongertinib"]["target_drug"] is True
    assert drugs["zongertinib"]["recruiting"] == 2 and drugs["zongertinib"]["trials"] == 2
    # Its newest change, worded as a digest words a trial update.
    assert drugs["zongertinib"]["newest_change"] == "NCT90000001: Phases: PHASE1 -> PHASE1, PHASE2"
    assert drugs["sevabertinib"]["highest_phase"] == "Not applicable"
    assert drugs["sevabertinib"]["withdrawn"] == 1
    assert drugs["Docetaxel"]["target_drug"] is False
    assert len(body["weeks"]) == 52
    this_week, last_week = body["weeks"][-1], body["weeks"][-2]
    assert (this_week["publications"], this_week["news"], this_week["trial_updates"]) == (1, 1, 1)
    assert last_week["new_trials"] == 3


def test_progress_api_sorts_and_refuses_unknown_sorts(client: TestClient, seeded: Target) -> None:
    by_name = client.get(f"/api/v1/targets/{SLUG}/progress", params={"sort": "name"}).json()
    names = [row["drug"] for row in by_name["pipeline"]]
    assert names == sorted(names, key=str.casefold)
    assert client.get(f"/api/v1/targets/{SLUG}/progress",
                      params={"sort": "bogus"}).status_code == 422


def test_unknown_targets_are_404(client: TestClient) -> None:
    assert client.get("/api/v1/targets/no-such/progress").status_code == 404
    page = client.get("/targets/no-such")
    assert page.status_code == 404 and "No such target" in page.text
    assert client.get("/targets/no-such/feed.atom").status_code == 404


def test_the_page_shows_pipeline_chart_items_and_a_subscribe_box(
    client: TestClient, seeded: Target
) -> None:
    page = client.get(f"/targets/{SLUG}")

    assert page.status_code == 200
    html = page.text
    assert "<h2 id=\"pipeline-h\">Pipeline</h2>" in html
    assert "zongertinib" in html and "Phase 3" in html
    assert '<svg class="chart"' in html and "<rect" in html and "<desc" in html
    assert "The numbers per week" in html
    assert 'action="/subscribe"' in html and f'value="{SLUG}"' in html
    assert 'name="csrf_token"' in html


def test_the_page_escapes_every_upstream_string(client: TestClient, seeded: Target) -> None:
    html = client.get(f"/targets/{SLUG}").text + client.get(
        f"/targets/{SLUG}", params={"sort": "name"}).text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;quotes&#34;" in html


def test_the_page_pages_its_items(client: TestClient, seeded: Target) -> None:
    html = client.get(f"/targets/{SLUG}").text
    assert "Older items" not in html  # six items fit one page
    assert client.get(f"/targets/{SLUG}", params={"cursor": "garbage"}).status_code == 400


def test_the_atom_feed_parses_back_with_stable_ids(client: TestClient, seeded: Target) -> None:
    first = client.get(f"/targets/{SLUG}/feed.atom")
    again = client.get(f"/targets/{SLUG}/feed.atom")

    assert first.status_code == 200
    assert first.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(first.content)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.title == "HER2 (ERBB2) exon 20 - Target Alerts"
    titles = [entry.title for entry in feed.entries]
    assert f"Paper {EVIL}" in titles  # escaped in XML, the same text read back
    ids = [entry.id for entry in feed.entries]
    assert len(ids) == len(set(ids)) == 6
    assert "https://clinicaltrials.gov/study/NCT90000001" in ids  # the record's own URL
    assert ids == [entry.id for entry in feedparser.parse(again.content).entries]
    assert all(entry.link for entry in feed.entries)


def test_the_atom_feed_drops_characters_xml_forbids(client: TestClient, session: Session) -> None:
    make = Factory(session)
    target = session.scalars(select(Target).where(Target.slug == SLUG)).one()
    make.event(make.item("news", title="Bell\x07 and \x0bvertical tab"), target, at=utc_now())

    feed = feedparser.parse(client.get(f"/targets/{SLUG}/feed.atom").content)

    assert not feed.bozo
    assert feed.entries[0].title == "Bell and vertical tab"


def test_the_catalogues_drug_names_are_read_once_per_catalogue_version(
    client: TestClient, seeded: Target, session: Session
) -> None:
    """Every view folds trial interventions by the whole catalogue's drug names: they are
    read once per catalogue version, not on every view, and a catalogue change (here
    another target naming docetaxel) is seen at the next view."""
    cache = client.app.state.drug_names  # type: ignore[attr-defined]
    for _ in range(2):
        assert client.get(f"/targets/{SLUG}").status_code == 200
        assert client.get(f"/api/v1/targets/{SLUG}/progress").status_code == 200
    assert cache.builds == 1
    drugs = [row["drug"] for row in client.get(f"/api/v1/targets/{SLUG}/progress").json()[
        "pipeline"]]
    assert "Docetaxel" in drugs

    session.add(Target(slug="taxane", name="Taxane", description="",
                       match_terms={"kind": "protein", "genes": ["TUBB"],
                                    "drugs": [{"name": "docetaxel", "brands": ["Taxotere"]}]}))
    session.flush()
    drugs = [row["drug"] for row in client.get(f"/api/v1/targets/{SLUG}/progress").json()[
        "pipeline"]]
    assert "docetaxel" in drugs and "Docetaxel" not in drugs  # the catalogue's spelling now
    assert cache.builds == 2
