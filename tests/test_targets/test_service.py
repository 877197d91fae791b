"""The catalogue service: lookups by slug, feeds attached to targets."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.errors import Conflict, NotFound, Unprocessable
from alerts.targets.service import (
    add_feed,
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
