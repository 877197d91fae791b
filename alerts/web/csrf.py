"""CSRF protection for the web forms: a signed double-submit token.

The browser holds a random nonce in a cookie; every form carries the nonce signed with
ALERTS_SECRET_KEY and a timestamp. A POST is accepted only when the signature is good,
not older than `MAX_AGE_SECONDS`, and the nonce equals the cookie's. Another site can
make a browser send the cookie, but cannot read it nor forge the signed field.

RFC 8058 one-click unsubscribe is deliberately outside this: that POST carries no
cookie, and the opaque token in its URL is the proof of identity.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request, Response
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from alerts.config import Settings

COOKIE_NAME = "alerts_csrf"
FIELD_NAME = "csrf_token"
MAX_AGE_SECONDS = 24 * 3600


class CsrfError(Exception):
    """The form's CSRF token is missing, forged, stale or not this browser's."""


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.signing_key(), salt="target-alerts/csrf")


def _nonce(request: Request) -> str | None:
    value = request.cookies.get(COOKIE_NAME)
    return value if value and 20 <= len(value) <= 100 else None


class CsrfToken:
    """The token of one page: `field` goes into every form, `apply(response)` sets the
    cookie when this browser had none."""

    def __init__(self, request: Request, settings: Settings) -> None:
        existing = _nonce(request)
        self._new_nonce = None if existing else secrets.token_urlsafe(32)
        self._nonce = existing or self._new_nonce
        self._secure = settings.public_base.startswith("https://")
        self.field = _serializer(settings).dumps(self._nonce)

    def apply(self, response: Response) -> Response:
        if self._new_nonce is not None:
            response.set_cookie(
                COOKIE_NAME, self._new_nonce, httponly=True, samesite="lax",
                secure=self._secure, path="/",
            )
        return response


def check(request: Request, settings: Settings, submitted: str | None) -> None:
    """Raise CsrfError unless `submitted` is a fresh token for this browser's cookie."""
    nonce = _nonce(request)
    if not nonce:
        raise CsrfError("your browser sent no form cookie (are cookies blocked?)")
    if not submitted:
        raise CsrfError("the form carried no security token")
    try:
        signed = _serializer(settings).loads(submitted, max_age=MAX_AGE_SECONDS)
    except SignatureExpired:
        raise CsrfError("the form is too old") from None
    except BadSignature:
        raise CsrfError("the form's security token is not valid") from None
    if not isinstance(signed, str) or not hmac.compare_digest(signed, nonce):
        raise CsrfError("the form's security token belongs to another browser session")
