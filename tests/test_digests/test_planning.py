"""What planning puts in a digest: per alert, the events since activation that it has not
had, in one row per subscriber, frequency and slot; nothing written twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.digests.planning import PlanReport
from alerts.digests.service import preview
from db.models import Alert, Digest, DigestAlert, DigestEntry, ItemEvent
from tests.planning import plan_due
from tests.test_digests.factories import T0, Factory

SLOT = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def plan(session_factory: sessionmaker[Session], settings: Settings, now: datetime = SLOT,
         **kwargs: object) -> PlanReport:
    return plan_due(session_factory, settings, now=now, **kwargs)  # type: ignore[arg-type]


def entries(session: Session, alert: Alert) -> list[tuple[int, bool]]:
    return [
        (event_id, shown)
        for event_id, shown in session.execute(
            select(DigestEntry.event_id, DigestEntry.shown)
            .where(DigestEntry.alert_id == alert.id)
            .order_by(DigestEntry.event_id)
        )
    ]


def test_a_plan_records_the_digest_its_alerts_and_their_events(
    factory: Factory, session: Session, session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    target = factory.target()
    alert = factory.alert(factory.subscriber(), target)
    event = factory.event(factory.item(), target, at=at(1))
    assert plan(session_factory, settings) == PlanReport(planned=1, empty=0)
    digest = session.scalars(select(Digest)).one()
    assert (digest.status, digest.slot_at, digest.item_count) == ("pending", SLOT, 1)
    assert session.scalars(select(DigestAlert.alert_id)).all() == [alert.id]
    assert entries(session, alert) == [(event.id, True)]


@pytest.mark.parametrize("status", ["paused", "pending", "unsubscribed"])
def test_only_active_alerts_contribute(
    factory: Factory, session: Session, session_factory: sessionmaker[Session],
    settings: Settings, status: str,
) -> None:
    target = factory.target()
    factory.alert(factory.subscriber(), target, status=status)
    factory.event(factory.item(), target, at=at(1))
    assert plan(session_factory, settings) == PlanReport(0, 0)
    assert session.scalars(select(Digest)).all() == []


def test_a_bounced_address_gets_nothing_more(
    factory: Factory, session: Session, session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    target = factory.target()
    factory.alert(factory.subscriber(mail_status="bounced"), target)
    factory.event(factory.item(), target, at=at(1))
    assert plan(session_factory, settings) == PlanReport(0, 0)


def test_events_before_activation_and_after_now_are_left_out(
    factory: Factory, session: Session, session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    target = factory.target()
    alert = factory.alert(factory.subscriber(), target, activated_at=at(2))
    factory.event(factory.item(), target, at=at(1))  # before the alert existed
    inside = factory.event(factory.item(), target, at=at(3))
    later = factory.event(factory.item(), target, at=SLOT + timedelta(hours=1))
    plan(session_factory, settings)
    assert entries(session, alert) == [(inside.id, True)]
    # The later one is not lost: it belongs to the next slot.
    plan(session_factory, settings, now=SLOT + timedelta(days=1))
    assert entries(session, alert) == [(inside.id, True), (later.id, True)]


def test_past_max_items_events_are_recorded_hidden_and_never_carried_over(
    factory: Factory, session: Session, session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    target = factory.target()
    alert = factory.alert(factory.subscriber(), target, max_items=2)
    events = [factory.event(factory.item(published_at=at(n)), target, at=at(n + 0.5))
              for n in range(1, 5)]
    plan(session_factory, settings)
    newest_first = [e.id for e in reversed(events)]
    assert entries(session, alert) == sorted(
        [(newest_first[0], True), (newest_first[1], True),
         (newest_first[2], False), (newest_first[3], False)]
    )
    assert plan(session_factory, settings, now=SLOT + timedelta(days=1)) == PlanReport(0, 1)


def test_a_weekly_alert_is_planned_on_its_weekday_only(
    factory: Factory, session: Session, session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    target = factory.target()
    factory.alert(factory.subscriber(), target, frequency="weekly", weekday="monday")
    factory.event(factory.item(), target, at=at(1))
    # T0 is a Friday: the first Monday 08:00 after activation is 4 May.
    assert plan(session_factory, settings, now=SLOT + timedelta(days=2)).planned == 0
    assert plan(session_factory, settings, now=SLOT + timedelta(days=3)).planned == 1
    [digest] = session.scalars(select(Digest)).all()
    assert digest.key.endswith(":weekly:2026-05-04T08:00Z")


def test_a_frequency_filter_plans_only_that_frequency(
    factory: Factory, session: Session, session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    target = factory.target()
    factory.alert(factory.subscriber(), target, frequency="daily", send_when_empty=True)
    factory.alert(factory.subscriber(), target, frequency="weekly", weekday="friday",
                  send_when_empty=True)
    # Both are due at Friday 08:00; each run plans its own frequency only.
    assert plan(session_factory, settings, frequency="daily").planned == 1
    assert [k.split(":")[1] for k in session.scalars(select(Digest.key))] == ["daily"]
    assert plan(session_factory, settings, frequency="weekly").planned == 1
    assert plan(session_factory, settings).planned == 0
    with pytest.raises(ValueError, match="frequency"):
        plan(session_factory, settings, frequency="hourly")


def test_an_unknown_time_zone_skips_that_alert_only(
    factory: Factory, session: Session, session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    target = factory.target()
    factory.alert(factory.subscriber(), target, timezone="Mars/Olympus", send_when_empty=True)
    factory.alert(factory.subscriber(), target, send_when_empty=True)
    assert plan(session_factory, settings).planned == 1


def test_preview_shows_what_the_next_digest_would_hold_and_writes_nothing(
    factory: Factory, session: Session, settings: Settings,
) -> None:
    target = factory.target()
    alert = factory.alert(factory.subscriber(), target, max_items=2)
    trial = factory.event(factory.item("trial"), target, at=at(1))
    update = factory.event(factory.item("trial"), target, at=at(2), kind="updated",
                           changes=[{"field": "overall_status", "old": "A", "new": "B"}])
    factory.event(factory.item("publication"), target, at=at(3))
    result = preview(session, alert, now=SLOT)
    assert [e.event_id for e in result.events] == [trial.id, update.id]
    assert result.more == 1
    assert session.scalars(select(Digest)).all() == []
    assert session.scalar(select(ItemEvent.id).where(ItemEvent.id == trial.id)) == trial.id


def test_preview_of_an_alert_not_yet_confirmed_is_empty(
    factory: Factory, session: Session, settings: Settings,
) -> None:
    target = factory.target()
    alert = factory.alert(factory.subscriber(), target, status="pending")
    factory.event(factory.item(), target, at=at(1))
    result = preview(session, alert, now=SLOT)
    assert (result.events, result.more) == ([], 0)
