"""A target's public page, `/targets/{slug}`, and its Atom feed.

The page shows where the target stands: the drug pipeline from its trials (sortable by
phase, name or newest change), a year of matched items per week as an inline SVG chart
with the same numbers in a table, the latest items (paged), and a subscribe box. It
works without JavaScript. Every upstream string goes through the template
environment's escaping (the chart's labels included).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from alerts.deps import DrugNamesDep, SessionDep, SettingsDep
from alerts.errors import NotFound, Unprocessable
from alerts.items.service import target_items
from alerts.progress import service
from alerts.progress.atom import target_feed
from alerts.progress.timeline import KINDS, chart
from alerts.targets.service import get_target_by_slug
from alerts.web import csrf
from alerts.web.pages import PageError, PageRoute, render
from db.clock import utc_now

router = APIRouter(route_class=PageRoute, include_in_schema=False)

ITEMS_PER_PAGE = 20
FEED_ITEMS = 50


@router.get("/targets/{slug}", response_class=HTMLResponse)
def target_page(
    slug: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    names: DrugNamesDep,
    sort: Annotated[Literal["phase", "name", "recent"], Query()] = "phase",
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> HTMLResponse:
    try:
        progress = service.target_progress(session, slug, today=utc_now().date(),
                                            names_cache=names, sort=sort)
        items = target_items(session, slug, limit=ITEMS_PER_PAGE, cursor=cursor)
    except NotFound:
        raise PageError(404, "No such target", "There is no target at this address; the "
                        "home page lists them all.") from None
    except Unprocessable:
        raise PageError(400, "This page does not exist", "The link to this page of items "
                        "is damaged; start again from the target's first page.") from None
    weeks = progress.weeks
    return render(
        "target.html",
        token=csrf.CsrfToken(request, settings),
        target=progress.target,
        pipeline=progress.pipeline,
        sort=sort,
        weeks=weeks,
        chart=chart(weeks),
        kinds=KINDS,
        year_totals={kind: sum(w.counts[kind] for w in weeks) for kind, _l, _c in KINDS},
        items=items.data,
        next_cursor=items.next_cursor,
    )


@router.get("/targets/{slug}/feed.atom")
def target_atom(slug: str, session: SessionDep, settings: SettingsDep) -> Response:
    try:
        items = target_items(session, slug, limit=FEED_ITEMS)
        target = get_target_by_slug(session, slug)
    except NotFound:
        raise PageError(404, "No such target", "There is no target at this address.") \
            from None
    page_url = f"{settings.public_base}/targets/{target.slug}"
    body = target_feed(
        slug=target.slug, name=target.name, description=target.description,
        page_url=page_url, feed_url=f"{page_url}/feed.atom", items=items.data,
        now=utc_now(),
    )
    return Response(body, media_type="application/atom+xml; charset=utf-8")
