"""The search over the real catalogue (alerts/targets/catalogue.toml, each entry's rule
keys as `match_terms`): what a person types finds the target the issue names."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session

from alerts.targets import service
from alerts.targets.search import IndexCache
from db.models import Target

CATALOGUE = Path(__file__).parents[2] / "alerts" / "targets" / "catalogue.toml"
NOT_RULE_KEYS = {"slug", "name", "description", "pubmed_query", "ctgov_term", "ctgov_intr",
                 "sources"}


@pytest.fixture
def catalogue(session: Session) -> list[str]:
    entries = tomllib.loads(CATALOGUE.read_text(encoding="utf-8"))["targets"]
    session.execute(delete(Target))
    session.add_all(
        Target(slug=e["slug"], name=e["name"], description=e["description"],
               match_terms={k: v for k, v in e.items() if k not in NOT_RULE_KEYS})
        for e in entries
    )
    session.flush()
    return [e["slug"] for e in entries]


@pytest.mark.parametrize(
    ("q", "first"),
    [
        ("zongertinib", {"her2-exon20", "her2"}),
        ("ERBB2", {"her2-exon20", "her2"}),
        ("HER2 ex20", {"her2-exon20"}),
        ("BI1810631", {"her2-exon20", "her2"}),
        ("kras g12c", {"kras-g12c"}),
        ("sotorasib", {"kras-g12c"}),
        ("EGFR exon 20", {"egfr-exon20"}),
        ("MET exon 14", {"met-exon14"}),
        ("V600E", {"braf-v600e"}),
    ],
)
def test_what_a_person_types_finds_the_target(session: Session, catalogue: list[str],
                                              q: str, first: set[str]) -> None:
    hits, _ = service.search_targets(session, IndexCache(), q)
    assert {h.entry.slug for h in hits[: len(first)]} == first


def test_kras_g12d_is_not_found_for_g12c(session: Session, catalogue: list[str]) -> None:
    found, _ = service.search_targets(session, IndexCache(), "kras g12c")
    hits = [h.entry.slug for h in found]
    assert hits[0] == "kras-g12c" and "kras-g12d" not in hits
