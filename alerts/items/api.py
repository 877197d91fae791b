"""`GET /api/v1/targets/{slug}/items`: what was found for a target, newest first.

The busiest read of the API. On PostgreSQL the page is read inside the event loop as
JSON written by the database (`json_pages.JsonPages`); elsewhere one worker thread does
the whole request (a single-statement read and the JSON). Either way the answer is
pre-serialised JSON and the documented response model stays `ItemPage`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from alerts.errors import Unprocessable, error_responses
from alerts.items import service
from alerts.items.json_pages import JsonPages
from alerts.items.schemas import ItemPage, page_json
from alerts.pagination import CursorQuery, decode_cursor
from alerts.sources.base import ItemKind
from db.session import single_statement_read

router = APIRouter(prefix="/api/v1", tags=["items"])


@router.get("/targets/{slug}/items", response_model=ItemPage, responses=error_responses(404, 422))
async def list_items(
    request: Request,
    slug: str,
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
    # app.state read directly rather than through dependencies: each one costs this
    # busiest route a round of FastAPI's dependency solving.
    pages: JsonPages | None = request.app.state.item_pages
    if pages is not None:
        try:
            after = decode_cursor(cursor, datetime, int) if cursor else None
        except Unprocessable:
            pass  # the generic path tells an unknown target (404) from a bad cursor
        else:
            body = await pages.page(
                slug,
                since=service.parse_since(since) if since is not None else None,
                kind=str(kind) if kind is not None else None,
                after=after,
                limit=limit,
            )
            return Response(body, media_type="application/json")
    body = await run_in_threadpool(
        _page_json, request.app.state.session_factory, slug, since, kind, limit, cursor
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
