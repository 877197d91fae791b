"""`alerts targets sync`: the catalogue written into the database by slug, a changed
rule rematched at once, nothing deleted; and the commands around it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.items.service import ingest
from alerts.targets.catalogue import load_catalogue, parse_catalogue
from alerts.targets.sync import sync_catalogue
from db.models import ItemTarget, Target
from db.session import make_engine
from tests.conftest import SUITE_TARGETS
from tests.fakes.adapters import article
from tests.test_digests.factories import Factory
from tests.test_targets.conftest import Invoke

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def catalogue_text(*, name: str = "Drug watch", drug: str = "zongertinib") -> str:
    return f'''
[[targets]]
slug = "drug-watch"
name = "{name}"
description = "A target of the tests."
kind = "protein"
genes = ["ERBB2"]
pubmed_query = "x"
[[targets.drugs]]
name = "{drug}"
'''


def test_the_shipped_catalogue_syncs_onto_the_test_database(session: Session) -> None:
    shipped = load_catalogue()
    first = sync_catalogue(session, shipped, now=NOW)
    # The suite's databases hold the shipped entries of SUITE_TARGETS, unchanged.
    assert sorted(first.added) == sorted(
        e.slug for e in shipped.entries if e.slug not in SUITE_TARGETS)
    assert first.updated == {}
    again = sync_catalogue(session, shipped, now=NOW)
    assert again.lines()[-1] == (
        f"catalogue: 0 added, 0 updated, {len(shipped.entries)} unchanged")


def test_sync_adds_then_updates_by_slug_and_never_deletes(session: Session) -> None:
    make = Factory(session)
    reader = make.subscriber()
    make.alert(reader, session.scalars(select(Target).where(Target.slug == "her2-exon20")).one())

    added = sync_catalogue(session, parse_catalogue(catalogue_text()), now=NOW)
    assert added.added == ["drug-watch"]
    target = session.scalars(select(Target).where(Target.slug == "drug-watch")).one()
    assert (target.name, target.pubmed_query) == ("Drug watch", "x")
    assert target.match_terms["drugs"][0]["name"] == "zongertinib"
    # her2-exon20 is not in this file: reported with its alerts, and kept.
    assert added.not_in_catalogue == {"her2-exon20": 1}
    assert "not in the catalogue (kept): her2-exon20 (1 alert)" in added.lines()

    renamed = sync_catalogue(session, parse_catalogue(catalogue_text(name="Renamed")),
                             now=NOW)
    assert renamed.updated == {"drug-watch": ["name"]} and renamed.rematched == {}
    assert session.scalar(select(func.count()).select_from(Target)) == 2


def test_a_changed_rule_is_rematched_by_the_sync(session: Session) -> None:
    sync_catalogue(session, parse_catalogue(catalogue_text()), now=NOW)
    target = session.scalars(select(Target).where(Target.slug == "drug-watch")).one()
    ingest(session, source=article("1", "x").source, target_id=target.id,
           match_terms=target.match_terms, now=NOW,
           fetched=[article("1", "Zongertinib in NSCLC"), article("2", "Sevabertinib in NSCLC")])
    linked = select(ItemTarget.item_id).where(ItemTarget.target_id == target.id)
    assert len(session.scalars(linked).all()) == 1

    report = sync_catalogue(session, parse_catalogue(catalogue_text(drug="sevabertinib")),
                            now=NOW)

    assert report.updated == {"drug-watch": ["rule"]}
    counts = report.rematched["drug-watch"]
    assert (counts.newly_matched, counts.newly_rejected) == (1, 1)
    assert "updated drug-watch (rule); rematched: 0 kept, 1 newly matched, 1 newly " \
           "rejected" in report.lines()


def targets_in(db_url: str) -> list[str]:
    engine = make_engine(db_url)
    with engine.connect() as connection:
        slugs = list(connection.scalars(select(Target.slug).order_by(Target.slug)))
    engine.dispose()
    return slugs


def test_sync_command_writes_a_good_file_and_nothing_of_a_bad_one(
    invoke: Invoke, tmp_path: Path, db_url: str
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(catalogue_text() + '\n[[targets]]\nslug = "Bad slug"\n')
    outcome = invoke("targets", "sync", "--file", str(bad))
    assert outcome.exit_code == 1
    assert f"error: the catalogue cannot be loaded: {bad}: 5 problems:" in outcome.stderr
    assert "  targets[1] (Bad slug): slug: 'Bad slug' must match" in outcome.stderr
    assert targets_in(db_url) == ["her2-exon20"]  # the good entry was not written either

    good = tmp_path / "good.toml"
    good.write_text(catalogue_text())
    outcome = invoke("targets", "sync", "--file", str(good))
    assert outcome.exit_code == 0, outcome.output
    assert outcome.stdout.splitlines() == [
        "added drug-watch",
        "not in the catalogue (kept): her2-exon20 (0 alerts)",
        "catalogue: 1 added, 0 updated, 0 unchanged",
    ]
    assert targets_in(db_url) == ["drug-watch", "her2-exon20"]


def test_db_upgrade_syncs_the_shipped_catalogue(invoke: Invoke) -> None:
    shipped = len(load_catalogue().entries)
    first = invoke("db", "upgrade")
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[-2:] == [
        f"catalogue: {shipped - len(SUITE_TARGETS)} added, 0 updated, "
        f"{len(SUITE_TARGETS)} unchanged",
        "database is up to date",
    ]
    again = invoke("db", "upgrade")
    assert again.stdout.splitlines()[-2] == f"catalogue: 0 added, 0 updated, {shipped} unchanged"


def test_rematch_command_prints_the_counts(invoke: Invoke) -> None:
    outcome = invoke("targets", "rematch", "her2-exon20")
    assert outcome.exit_code == 0, outcome.output
    assert outcome.stdout == (
        "her2-exon20: 0 kept, 0 newly matched (0 from the kept window), 0 newly rejected "
        "(0 still rejected)\n")
    unknown = invoke("targets", "rematch", "nope")
    assert (unknown.exit_code, unknown.stderr) == (1, "error: unknown target 'nope'\n")
