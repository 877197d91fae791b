"""`GET /api/v1/sources`: how each source is doing, per target."""

from __future__ import annotations

from fastapi import APIRouter

from alerts.deps import SessionDep, SettingsDep
from alerts.polling import service
from alerts.polling.schemas import SourceStatusPage

router = APIRouter(prefix="/api/v1", tags=["sources"])


@router.get("/sources", response_model=SourceStatusPage)
def list_sources(session: SessionDep, settings: SettingsDep) -> SourceStatusPage:
    """Per source and target (`*`: the source's poll for the whole catalogue): last success,
    last error, consecutive failures, next poll, upstream warnings (e.g. PubMed terms it
    dropped), and `failing` once the consecutive failures reach
    ALERTS_FAILURE_ALERT_THRESHOLD."""
    return SourceStatusPage(data=service.source_statuses(session, settings), next_cursor=None)
