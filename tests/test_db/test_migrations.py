from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.migrate import is_current
from db.models import Item, Target
from db.session import make_engine


def test_migrations_are_current_and_the_catalogue_is_synced(
    db_url: str, session: Session
) -> None:
    engine = make_engine(db_url)
    assert is_current(engine)
    engine.dispose()
    target = session.scalars(select(Target).where(Target.slug == "her2-exon20")).one()
    assert target.name == "HER2 (ERBB2) exon 20"
    assert "ERBB2" in target.match_terms["genes"]
    drugs = [drug["name"] for drug in target.match_terms["drugs"]]
    assert "zongertinib" in drugs
    assert "trastuzumab deruxtecan" not in drugs
    assert "trastuzumab deruxtecan" in target.match_terms["related_drugs"]
    assert target.pubmed_query and target.ctgov_term


def test_timestamps_come_back_aware_in_utc(session: Session) -> None:
    paris = timezone(timedelta(hours=2))
    item = Item(source="rss", external_id="x", kind="news", title="t", url="http://x",
                published_at=datetime(2026, 6, 1, 12, 0, tzinfo=paris))
    session.add(item)
    session.flush()
    session.expire_all()
    loaded = session.get(Item, item.id)
    assert loaded is not None and loaded.published_at == datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    assert loaded.published_at.tzinfo is not None
    assert loaded.first_seen_at.tzinfo is not None


def test_naive_datetimes_are_refused(session: Session) -> None:
    session.add(Item(source="rss", external_id="y", kind="news", title="t", url="http://y",
                     published_at=datetime(2026, 6, 1, 12, 0)))
    with pytest.raises(Exception, match="naive"):
        session.flush()
