"""The alerts and personal-token endpoints of the JSON API (/api/v1)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.responses import JSONResponse

from alerts.deps import SettingsDep
from alerts.errors import error_responses
from alerts.mail.outbox import MailingSessionDep
from alerts.pagination import CursorQuery, IdPath
from alerts.subscriptions import service
from alerts.subscriptions.auth import CallerDep, RequiredCallerDep, get_owned_alert
from alerts.subscriptions.schemas import (
    Accepted,
    AlertCreate,
    AlertOut,
    AlertPage,
    AlertUpdate,
    Email,
    SubscriptionAccepted,
    TokenRequest,
)
from alerts.subscriptions.throttle import mail_throttle

router = APIRouter(prefix="/api/v1", tags=["alerts"])

#: Routes that send mail are throttled per client address and overall (429).
_THROTTLED = [Depends(mail_throttle)]
_OWNED = error_responses(401, 404, 422)


@router.post(
    "/alerts",
    status_code=status.HTTP_201_CREATED,
    response_model=None,
    dependencies=_THROTTLED,
    responses={
        202: {"model": SubscriptionAccepted,
              "description": "Anonymous: a confirmation is on its way (whatever the address)"},
        **error_responses(400, 401, 409, 413, 422, 429),
    },
)
def create_alert(
    body: AlertCreate, session: MailingSessionDep, settings: SettingsDep, caller: CallerDep
) -> AlertOut | JSONResponse:
    """Subscribe an address to a target.

    Anonymous (or with another address's token): 202 and the same answer whatever the
    address's state; a pending alert and a confirmation mail, or, when the address
    already has this alert, a mail saying so with a manage link. With the address's
    own personal token the alert is `active` at once and nothing is mailed; with the
    admin token it is `active` with `"confirmed": true`, else pending with a mail. These
    two get the alert (201), or 409 when the address already has one on the target.
    An ended alert on the same target is re-used."""
    alert = service.create_alert(session, settings, body, caller)
    if alert is None:
        accepted = SubscriptionAccepted(
            detail="Check the inbox of this address: the subscription waits for the click "
            "on the link we mail to it.",
            email=body.email, target=body.target,
        )
        return JSONResponse(accepted.model_dump(), status_code=status.HTTP_202_ACCEPTED)
    return AlertOut.of(alert)


@router.get("/alerts", responses=error_responses(401, 422))
def list_alerts(
    session: MailingSessionDep,
    caller: RequiredCallerDep,
    email: Annotated[Email | None, Query(description="Admin: one address's alerts.")] = None,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = service.DEFAULT_PAGE_SIZE,
) -> AlertPage:
    """Your alerts, oldest first (admin: everyone's); deleted ones are not listed."""
    return service.list_alerts(session, caller, email=email, cursor=cursor, limit=limit)


@router.get("/alerts/{alert_id}", responses=_OWNED)
def read_alert(alert_id: IdPath, session: MailingSessionDep, caller: RequiredCallerDep) -> AlertOut:
    return AlertOut.of(get_owned_alert(session, caller, alert_id))


@router.patch(
    "/alerts/{alert_id}", responses=error_responses(400, 401, 404, 409, 413, 422)
)
def change_alert(
    alert_id: IdPath, body: AlertUpdate, session: MailingSessionDep, caller: RequiredCallerDep
) -> AlertOut:
    """Change the schedule or the status (`active` <-> `paused`, or `unsubscribed`);
    409 for a status change not allowed from the current status."""
    alert = get_owned_alert(session, caller, alert_id)
    return AlertOut.of(service.update_alert(session, alert, body, is_admin=caller.is_admin))


@router.delete("/alerts/{alert_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_OWNED)
def delete_alert(
    alert_id: IdPath, session: MailingSessionDep, caller: RequiredCallerDep
) -> Response:
    """Delete the alert: afterwards it answers 404 and is not listed, and nothing more
    is sent for it. Subscribing to the target again starts afresh."""
    service.delete_alert(session, get_owned_alert(session, caller, alert_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/tokens",
    status_code=status.HTTP_202_ACCEPTED,
    tags=["tokens"],
    dependencies=_THROTTLED,
    responses=error_responses(400, 413, 422, 429),
)
def request_token(
    body: TokenRequest, session: MailingSessionDep, settings: SettingsDep
) -> Accepted:
    """Mail a new personal API token to a verified address.

    The answer is the same whether or not the address exists or is verified; at most
    five tokens per address and hour are mailed. A token works for
    ALERTS_API_TOKEN_TTL_DAYS days (90 by default)."""
    service.request_api_token(session, settings, body.email)
    return Accepted(detail="If this address is verified, a token is on its way to it.")


@router.delete(
    "/tokens/current",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["tokens"],
    responses=error_responses(401, 409),
)
def revoke_token(session: MailingSessionDep, caller: RequiredCallerDep) -> Response:
    """Revoke the personal token this request carries: it stops working at once."""
    service.revoke_token(session, caller)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/subscriber",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["subscriber"],
    responses=error_responses(401, 404, 422),
)
def erase_subscriber(
    session: MailingSessionDep,
    caller: RequiredCallerDep,
    email: Annotated[Email | None, Query(description="Admin only: the address to erase.")] = None,
) -> Response:
    """Erase the token's address and its whole history (admin: the address in
    `?email=`): the subscriber, every alert, token and digest record, and the mails
    sent to it. Nothing stored identifies them afterwards; this cannot be undone."""
    service.erase(session, service.subscriber_of(session, caller, email))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
