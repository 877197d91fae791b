"""`GET /api/v1/targets`: the catalogue anyone may subscribe to."""

from __future__ import annotations

from fastapi import APIRouter

from alerts.deps import SessionDep
from alerts.targets import service
from alerts.targets.schemas import TargetOut, TargetPage

router = APIRouter(prefix="/api/v1", tags=["targets"])


@router.get("/targets", response_model=TargetPage)
def list_targets(session: SessionDep) -> TargetPage:
    """Every target: `slug`, `name`, `description`. The catalogue is small: one page."""
    targets = service.list_targets(session)
    return TargetPage(data=[TargetOut.model_validate(t) for t in targets], next_cursor=None)
