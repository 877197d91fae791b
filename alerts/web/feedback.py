"""The page behind a digest item's "not relevant" link.

The GET shows the item and one button; the POST records the label. A GET records
nothing, because mail scanners prefetch links and would otherwise label every item of
every digest. The signed token in the URL is the reader's whole proof, as for one-click
unsubscribe, so the POST needs no login, cookie or CSRF token: forging it takes the
token, and the most it can do is add one label that changes nothing for anyone.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from alerts.deps import SessionDep, SettingsDep
from alerts.feedback import service
from alerts.pagination import MAX_ID
from alerts.web.pages import PageRoute, render

router = APIRouter(route_class=PageRoute, include_in_schema=False)

#: The digest item a link is about (an event of an item for a target).
EventQuery = Annotated[int, Query(ge=1, le=MAX_ID)]


@router.get("/feedback", response_class=HTMLResponse)
def feedback_form(
    session: SessionDep, settings: SettingsDep, event: EventQuery, token: str = ""
) -> HTMLResponse:
    link = service.read_link(session, settings, token, event)
    return render("feedback.html", link=link, done=False,
                  action_url="/feedback?" + urlencode({"token": token, "event": event}))


@router.post("/feedback", response_class=HTMLResponse)
def feedback(
    session: SessionDep, settings: SettingsDep, event: EventQuery, token: str = ""
) -> HTMLResponse:
    link = service.mark_not_relevant(session, settings, token, event)
    return render("feedback.html", link=link, done=True, action_url="")
