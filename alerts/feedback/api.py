"""Reader labels for the operator (admin token): `GET /api/v1/feedback`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from alerts.deps import SessionDep
from alerts.errors import error_responses
from alerts.feedback import service
from alerts.feedback.schemas import LabelPage
from alerts.pagination import CursorQuery
from alerts.subscriptions.auth import AdminCallerDep

router = APIRouter(prefix="/api/v1", tags=["feedback"])


@router.get("/feedback", response_model=LabelPage, responses=error_responses(401, 403, 404, 422))
def list_feedback(
    session: SessionDep,
    _admin: AdminCallerDep,
    target: Annotated[str | None, Query(description="a target slug")] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = 50,
    cursor: CursorQuery = None,
) -> LabelPage:
    """Readers' "not relevant" labels, newest first (admin token only): which item, for
    which target, when. Who gave them is not shown."""
    return service.list_labels(session, target=target, cursor=cursor, limit=limit)
