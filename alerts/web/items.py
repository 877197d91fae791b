"""The public page behind a digest's "N more" link: a target's items since a moment,
in the digest's order (new trials, trial updates, publications, news; newest first).

It shows only what the public API already serves for the target, so it needs no
token; every stored string is escaped by the template environment. The layout is the
web pages' own (templates/web/base.html)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from alerts.deps import SessionDep
from alerts.digests import repository as repo
from alerts.digests.compose import group_items, order_key
from alerts.digests.views import item_view
from alerts.pagination import parse_moment
from alerts.targets.repository import by_slug
from alerts.templating import environment

router = APIRouter(tags=["pages"])

#: Items on one page; a digest's "more" rarely goes past a few hundred.
PAGE_LIMIT = 500


def _page(status: int, **context: object) -> HTMLResponse:
    html = environment().get_template("web/items.html").render(**context)
    return HTMLResponse(html, status_code=status)


def parse_since(value: str) -> datetime | None:
    # A `+` of the offset arrives as a space when the link was not percent-encoded.
    return parse_moment(value.replace(" ", "+"))


@router.get("/targets/{slug}/items", response_class=HTMLResponse, include_in_schema=False)
def target_items_page(
    slug: str,
    session: SessionDep,
    since: Annotated[str, Query(description="ISO-8601 time, e.g. 2026-05-01T08:00:00Z")],
) -> HTMLResponse:
    common = {"slug": slug}
    moment = parse_since(since)
    if moment is None:
        return _page(400, error="The link is damaged: `since` is not a date and time.",
                     target=None, groups=(), since=None, truncated=False, **common)
    target = by_slug(session, slug)
    if target is None:
        return _page(404, error="There is no such target.", target=None, groups=(),
                     since=moment, truncated=False, **common)
    events = repo.target_events_since(session, target.id, moment, PAGE_LIMIT + 1)
    truncated = len(events) > PAGE_LIMIT
    events = sorted(events[:PAGE_LIMIT],
                    key=lambda e: order_key(e.section, e.sort_at, e.event_id))
    return _page(200, error=None, target=target, since=moment, truncated=truncated,
                 groups=group_items(item_view(event) for event in events), **common)
