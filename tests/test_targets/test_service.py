"""The catalogue service: lookups by slug, new targets, feeds attached to targets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.errors import Conflict, NotFound, Unprocessable
from alerts.targets.schemas import TargetCreate
from alerts.targets.service import (
    add_feed,
    create_target,
    enabled_feeds,
    get_target_by_slug,
    list_targets,
)
from db.models import Feed


def test_the_seeded_target_is_found_by_slug(session: Session) -> None:
    target = get_target_by_slug(session, "her2-exon20")
    assert target.name == "HER2 (ERBB2) exon 20"
    assert [t.slug for t in list_targets(session)] == ["her2-exon20"]


def test_an_unknown_slug_is_not_found(session: Session) -> None:
    with pytest.raises(NotFound) as raised:
        get_target_by_slug(session, "nope")
    assert raised.value.status_code == 404


def test_a_new_target_keeps_its_queries_and_cleaned_terms(session: Session) -> None:
    target = create_target(session, TargetCreate(
        slug="kras-g12c", name=" KRAS G12C ", pubmed_query="KRAS G12C[tiab]",
        ctgov_term="  ", genes=["KRAS", " kras ", ""], mutations=["G12C"],
        drugs=["sotorasib"],
    ))
    assert target.id is not None and target.name == "KRAS G12C"
    assert (target.pubmed_query, target.ctgov_term, target.ctgov_intr) == (
        "KRAS G12C[tiab]", None, None)
    assert target.match_terms == {"genes": ["KRAS"], "mutations": ["G12C"],
                                  "drugs": ["sotorasib"]}
    assert [t.slug for t in list_targets(session)] == ["her2-exon20", "kras-g12c"]


def test_a_taken_slug_is_a_conflict_and_the_transaction_survives(session: Session) -> None:
    with pytest.raises(Conflict, match="target 'her2-exon20' already exists"):
        create_target(session, TargetCreate(slug="her2-exon20", name="again"))
    assert get_target_by_slug(session, "her2-exon20").name == "HER2 (ERBB2) exon 20"


@pytest.mark.parametrize("slug", ["HER2", "her2_exon20", "her2 exon20", "-her2", "her2--x", ""])
def test_a_slug_is_lowercase_letters_digits_and_hyphens(slug: str) -> None:
    with pytest.raises(ValidationError):
        TargetCreate(slug=slug, name="x")


def test_feeds_attach_to_a_target(session: Session) -> None:
    feed = add_feed(session, "her2-exon20", " https://news.example/feed.xml ")
    assert feed.url == "https://news.example/feed.xml" and feed.enabled
    target = get_target_by_slug(session, "her2-exon20")
    assert [f.id for f in enabled_feeds(session, [target.id])[target.id]] == [feed.id]


def test_a_feed_the_target_already_has_is_a_conflict(session: Session) -> None:
    add_feed(session, "her2-exon20", "https://news.example/feed.xml")
    with pytest.raises(Conflict, match="already has the feed"):
        add_feed(session, "her2-exon20", "https://news.example/feed.xml")
    assert session.scalar(select(func.count()).select_from(Feed)) == 1


@pytest.mark.parametrize(
    "url", ["ftp://news.example/feed", "news.example/feed.xml", "https://", "file:///etc/x",
            "http://exa mple.com/feed", "javascript:alert(1)", "http://[::1/feed"],
)
def test_a_feed_url_must_be_http_or_https(session: Session, url: str) -> None:
    with pytest.raises(Unprocessable) as raised:
        add_feed(session, "her2-exon20", url)
    assert raised.value.detail[0]["loc"] == ["body", "url"]


def test_a_feed_for_an_unknown_target_is_not_found(session: Session) -> None:
    with pytest.raises(NotFound):
        add_feed(session, "nope", "https://news.example/feed.xml")
