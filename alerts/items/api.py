"""`GET /api/v1/targets/{slug}/items`: what was found for a target, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from alerts.deps import SessionDep
from alerts.errors import error_responses
from alerts.items import service
from alerts.items.schemas import ItemPage
from alerts.pagination import CursorQuery
from alerts.sources.base import ItemKind

router = APIRouter(prefix="/api/v1", tags=["items"])


@router.get("/targets/{slug}/items", response_model=ItemPage, responses=error_responses(404, 422))
def list_items(
    slug: str,
    session: SessionDep,
    since: Annotated[
        str | None,
        Query(max_length=64,
              description="Only items found since: ISO-8601 date or datetime (UTC if naive)."),
    ] = None,
    kind: Annotated[ItemKind | None, Query(description="publication, trial or news")] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = service.DEFAULT_PAGE_SIZE,
    cursor: CursorQuery = None,
) -> ItemPage:
    """Stored items of a target, newest first (by when each was first found for the
    target), `limit` per page; pass `next_cursor` back as `cursor` for the next page. A
    trial carries its `events`: `new`, and each `updated` with `changes`."""
    return service.list_target_items(
        session,
        slug,
        since=service.parse_since(since) if since is not None else None,
        kind=kind,
        limit=limit,
        cursor=cursor,
    )
