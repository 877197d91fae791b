"""`GET /api/v1/targets/{slug}/items`: what was found for a target, newest first.

The busiest read of the API: one worker thread for the whole request (a single-statement
read, no BEGIN/COMMIT on PostgreSQL, and the JSON) and pre-serialised JSON in the
answer; the documented response model stays `ItemPage`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from alerts.deps import SessionFactoryDep
from alerts.errors import error_responses
from alerts.items import service
from alerts.items.schemas import ItemPage, page_json
from alerts.pagination import CursorQuery
from alerts.sources.base import ItemKind
from db.session import single_statement_read

router = APIRouter(prefix="/api/v1", tags=["items"])


@router.get("/targets/{slug}/items", response_model=ItemPage, responses=error_responses(404, 422))
async def list_items(
    slug: str,
    session_factory: SessionFactoryDep,
    since: Annotated[
        str | None,
        Query(max_length=64,
              description="Only items found since: ISO-8601 date or datetime (UTC if naive)."),
    ] = None,
    kind: Annotated[ItemKind | None, Query(description="publication, trial or news")] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = service.DEFAULT_PAGE_SIZE,
    cursor: CursorQuery = None,
) -> Response:
    """Stored items of a target, newest first (by when each was first found for the
    target), `limit` per page; pass `next_cursor` back as `cursor` for the next page. A
    trial carries its `events`: `new`, and each `updated` with `changes`."""
    body = await run_in_threadpool(
        _page_json, session_factory, slug, since, kind, limit, cursor
    )
    return Response(body, media_type="application/json")


def _page_json(
    session_factory: sessionmaker[Session],
    slug: str,
    since: str | None,
    kind: ItemKind | None,
    limit: int,
    cursor: str | None,
) -> bytes:
    with single_statement_read(session_factory) as session:
        page = service.list_target_items(
            session,
            slug,
            since=service.parse_since(since) if since is not None else None,
            kind=kind,
            limit=limit,
            cursor=cursor,
        )
    return page_json(page)
