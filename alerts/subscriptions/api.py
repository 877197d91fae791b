"""The alerts and personal-token endpoints of the JSON API (/api/v1)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from alerts.deps import SettingsDep
from alerts.subscriptions import service
from alerts.subscriptions.auth import CallerDep, RequiredCallerDep, get_owned_alert
from alerts.subscriptions.outbox import MailingSessionDep
from alerts.subscriptions.schemas import (
    Accepted,
    AlertCreate,
    AlertOut,
    AlertPage,
    AlertUpdate,
    Email,
    TokenRequest,
)

router = APIRouter(prefix="/api/v1", tags=["alerts"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid bearer token"},
    404: {"description": "No such alert, or not yours"},
    422: {"description": "Invalid field; `detail[].loc` names it"},
}


@router.post(
    "/alerts",
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "The address already has an alert on this target"},
               422: _ERRORS[422]},
)
def create_alert(
    body: AlertCreate, session: MailingSessionDep, settings: SettingsDep, caller: CallerDep
) -> AlertOut:
    """Subscribe an address to a target.

    Anonymous: the alert is `pending` and a confirmation mail goes to the address, even
    when it is verified. With that address's personal token, or the admin token and
    `"confirmed": true`, the alert is `active` at once and nothing is mailed. An ended
    (`unsubscribed`) alert on the same target is re-used."""
    return AlertOut.of(service.create_alert(session, settings, body, caller))


@router.get("/alerts", responses={401: _ERRORS[401], 422: _ERRORS[422]})
def list_alerts(
    session: MailingSessionDep,
    caller: RequiredCallerDep,
    email: Annotated[Email | None, Query(description="Admin: one address's alerts.")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = service.DEFAULT_PAGE_SIZE,
) -> AlertPage:
    """Your alerts, every status, oldest first (admin: everyone's)."""
    return service.list_alerts(session, caller, email=email, cursor=cursor, limit=limit)


@router.get("/alerts/{alert_id}", responses=_ERRORS)
def read_alert(alert_id: int, session: MailingSessionDep, caller: RequiredCallerDep) -> AlertOut:
    return AlertOut.of(get_owned_alert(session, caller, alert_id))


@router.patch(
    "/alerts/{alert_id}",
    responses={**_ERRORS, 409: {"description": "Status change not allowed from this status"}},
)
def change_alert(
    alert_id: int, body: AlertUpdate, session: MailingSessionDep, caller: RequiredCallerDep
) -> AlertOut:
    """Change the schedule or the status (`active` <-> `paused`, or `unsubscribed`)."""
    alert = get_owned_alert(session, caller, alert_id)
    return AlertOut.of(service.update_alert(session, alert, body, is_admin=caller.is_admin))


@router.delete("/alerts/{alert_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_ERRORS)
def delete_alert(alert_id: int, session: MailingSessionDep, caller: RequiredCallerDep) -> Response:
    """End the alert: its status becomes `unsubscribed` and nothing more is sent for it.
    The row stays (it records what was delivered); subscribing again re-uses it."""
    service.end_alert(session, get_owned_alert(session, caller, alert_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/tokens", status_code=status.HTTP_202_ACCEPTED, tags=["tokens"])
def request_token(
    body: TokenRequest, session: MailingSessionDep, settings: SettingsDep
) -> Accepted:
    """Mail a new personal API token to a verified address.

    The answer is the same whether or not the address exists or is verified; at most
    five tokens per address and hour are mailed."""
    service.request_api_token(session, settings, body.email)
    return Accepted(detail="If this address is verified, a token is on its way to it.")
