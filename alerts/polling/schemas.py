"""What a poll cycle reports, and the per-source status the API shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel

from alerts.sources.base import CATALOGUE_SLUG, SourceName

#: Why a (source, target) was not polled in a cycle.
NOT_DUE = "not due"
HELD = "held by another poller"
UNCHANGED = "upstream data unchanged"
NOT_CONFIGURED = "no query for this source"
NO_FEEDS = "no feeds for this target"
#: The `target` of a report or status of a catalogue-wide poll (no slug looks like it).
CATALOGUE = CATALOGUE_SLUG


@dataclass
class SourceReport:
    """The outcome of polling one source for one target in one cycle."""

    source: SourceName
    target: str  # slug, or CATALOGUE for the catalogue-wide poll
    new: int = 0  # items newly found for the target
    updated: int = 0  # known trials whose tracked fields changed
    failed: bool = False
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    requests: int = 0  # upstream HTTP requests, retries included
    skipped: bool = False
    reason: str | None = None  # why it was skipped (NOT_DUE, HELD, UNCHANGED ...)
    next_poll_at: datetime | None = None


class SourceStatusOut(BaseModel):
    source: SourceName
    target: str
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    next_poll_at: datetime | None
    warnings: list[str]
    #: consecutive_failures reached ALERTS_FAILURE_ALERT_THRESHOLD.
    failing: bool


class SourceStatusPage(BaseModel):
    data: list[SourceStatusOut]
    next_cursor: str | None = None
