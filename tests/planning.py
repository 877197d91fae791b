"""Planning run to its end in one call, as the tests want it: production interleaves
planning with sending (`alerts.digests.delivery.send`), one `Planner.step` at a time."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.digests.planning import Planner, PlanReport


def plan_due(
    session_factory: sessionmaker[Session],
    settings: Settings,
    *,
    now: datetime,
    frequency: str | None = None,
) -> PlanReport:
    """Plan every digest due at `now` that is not planned yet; commits per chunk."""
    planner = Planner(session_factory, settings, now=now, frequency=frequency)
    while planner.step():
        pass
    return planner.report
