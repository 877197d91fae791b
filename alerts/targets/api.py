"""`GET /api/v1/targets`: the catalogue anyone may subscribe to, and its search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from alerts.deps import SessionDep, TargetIndexDep
from alerts.errors import error_responses
from alerts.pagination import CursorQuery
from alerts.targets import service
from alerts.targets.schemas import TargetPage
from alerts.targets.search import MAX_QUERY_LENGTH

router = APIRouter(prefix="/api/v1", tags=["targets"])

QUERY_HELP = (
    "Words to find a target by: its name or slug, a gene symbol or synonym (ERBB2, HER2), "
    "a variant term (G12C, ex20ins), a drug's generic, code or brand name (zongertinib, "
    "BI 1810631, Hernexeos). Case, spaces and hyphens do not matter and a word may be the "
    "start of a term; every word must match. Results come best first: exact slug, name or "
    "gene, then exact drug names, then terms every word matches exactly, then prefixes. "
    "Without `q` (or without a letter or digit in it): the whole catalogue by slug."
)


@router.get("/targets", response_model=TargetPage, responses=error_responses(422))
def list_targets(
    session: SessionDep,
    index: TargetIndexDep,
    q: Annotated[str | None, Query(max_length=MAX_QUERY_LENGTH, description=QUERY_HELP)] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = service.DEFAULT_PAGE_SIZE,
    cursor: CursorQuery = None,
) -> TargetPage:
    """The catalogue (`slug`, `name`, `description`), or the targets matching `q` with
    what they matched on (`matched_on`), `limit` per page."""
    return service.target_page(session, index, q, limit=limit, cursor=cursor)
