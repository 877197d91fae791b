"""Who is calling the API: anonymous, a subscriber (personal token) or the operator
(ALERTS_ADMIN_TOKEN), from `Authorization: Bearer <token>`.

Personal tokens are stored as SHA-256 only: a leaked database holds no usable token.
They expire ALERTS_API_TOKEN_TTL_DAYS after they were mailed, and their owner can
revoke them (DELETE /api/v1/tokens/current, or every token from the manage page).
A bearer header that is present but wrong is refused (401), never downgraded to
anonymous. Another subscriber's alert is "not found", so ids leak nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from alerts.config import Settings
from alerts.deps import SessionDep, SettingsDep
from alerts.errors import AlertsError, NotFound, Unauthorized
from alerts.subscriptions import repository
from db.clock import utc_now
from db.models import Alert

#: `last_used_at` is written at most this often per token, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=5)

_bearer = HTTPBearer(
    auto_error=False,
    description="A personal token (POST /api/v1/tokens mails one) or the admin token.",
)


@dataclass(frozen=True)
class Caller:
    """The authenticated party of a request; both fields empty means anonymous."""

    subscriber_id: int | None = None
    is_admin: bool = False
    #: The personal token of the request (for revoking it).
    token_id: int | None = None
    #: Who the admin token is, for the records of what it changed: a fingerprint of the
    #: token (its SHA-256's first 12 hex digits), so a rotated token reads as another.
    admin_name: str = ""

    @property
    def is_anonymous(self) -> bool:
        return self.subscriber_id is None and not self.is_admin


ANONYMOUS = Caller()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def authenticate(session: Session, settings: Settings, token: str) -> Caller:
    """The caller a bearer token stands for; Unauthorized when it stands for nobody."""
    admin = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if admin and hmac.compare_digest(token.encode("utf-8"), admin.encode("utf-8")):
        return Caller(is_admin=True, admin_name=f"admin token {hash_token(admin)[:12]}")
    # The lookup is by hash: what an attacker could time is the hash, not the token.
    stored = repository.find_token(session, hash_token(token))
    if stored is None:
        raise Unauthorized("invalid bearer token")
    now = utc_now()
    if stored.created_at + timedelta(days=settings.api_token_ttl_days) <= now:
        raise Unauthorized("this token has expired; POST /api/v1/tokens mails a new one")
    if stored.last_used_at is None or now - stored.last_used_at > LAST_USED_RESOLUTION:
        stored.last_used_at = now
    return Caller(subscriber_id=stored.subscriber_id, token_id=stored.id)


def get_caller(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None:
        if request.headers.get("authorization"):
            raise Unauthorized("use 'Authorization: Bearer <token>'")
        return ANONYMOUS
    return authenticate(session, settings, credentials.credentials)


def require_caller(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
    if caller.is_anonymous:
        raise Unauthorized()
    return caller


class AdminOnly(AlertsError):
    status_code = 403

    def __init__(self) -> None:
        super().__init__("this needs the admin token")


def require_admin(caller: Annotated[Caller, Depends(require_caller)]) -> Caller:
    if not caller.is_admin:
        raise AdminOnly()
    return caller


#: Optional authentication: anonymous callers are allowed, a bad token is not.
CallerDep = Annotated[Caller, Depends(get_caller)]
#: A personal or admin token is required (401 otherwise).
RequiredCallerDep = Annotated[Caller, Depends(require_caller)]
#: The admin token is required (401 without a token, 403 with a personal one).
AdminCallerDep = Annotated[Caller, Depends(require_admin)]


def get_owned_alert(session: Session, caller: Caller, alert_id: int) -> Alert:
    """The alert `alert_id` (subscriber and target loaded) if the caller may see it:
    its owner or the admin. Otherwise NotFound, the same as for an id that does not
    exist, so nobody learns which ids belong to others."""
    if caller.is_anonymous:
        raise Unauthorized()
    alert = repository.get_alert(session, alert_id)
    if alert is None or not (caller.is_admin or alert.subscriber_id == caller.subscriber_id):
        raise NotFound(f"alert {alert_id} not found")
    return alert
