"""Signed, purpose-bound tokens for the links in emails.

A token carries ids signed with ALERTS_SECRET_KEY and a salt per purpose, so a manage
token cannot unsubscribe and a confirmation token cannot manage. Confirmation tokens
expire; unsubscribe and manage links keep working as long as the mail is kept, because
RFC 8058 one-click and "manage" links in an old digest must still work.

Tokens are itsdangerous URLSafeTimedSerializer tokens (payload.timestamp.signature), and
`read_token` reads them through itsdangerous. `make_token` serialises the payload itself
and signs it with the serializer's own TimestampSigner: a digest run signs three links
per message, and the serializer's `dumps` tries zlib on every payload (for payloads this
small it never helps). New tokens are always uncompressed, which itsdangerous reads as
it reads its own (compressed ones, in mails already sent, start with a dot).
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import lru_cache
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, Signer, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode

from alerts.config import Settings
from alerts.errors import AlertsError


class Purpose(StrEnum):
    confirm = "confirm"
    manage = "manage"
    unsubscribe = "unsubscribe"
    feedback = "feedback"


#: Seconds a token of each purpose stays valid (None: no expiry).
MAX_AGE: dict[Purpose, int | None] = {
    Purpose.confirm: 7 * 24 * 3600,
    Purpose.manage: None,
    Purpose.unsubscribe: None,
    Purpose.feedback: None,
}


class InvalidToken(AlertsError):
    status_code = 400


class ExpiredToken(InvalidToken):
    status_code = 410


def _serializer(settings: Settings, purpose: Purpose) -> URLSafeTimedSerializer:
    return _serializer_for(settings.signing_key(), purpose)


@lru_cache(maxsize=32)
def _serializer_for(key: str, purpose: Purpose) -> URLSafeTimedSerializer:
    # Built once per key and purpose: a digest run signs three links per message.
    return URLSafeTimedSerializer(key, salt=f"target-alerts/{purpose}")


@lru_cache(maxsize=32)
def _signer_for(key: str, purpose: Purpose) -> Signer:
    """The TimestampSigner the serializer of this key and purpose signs with."""
    serializer = _serializer_for(key, purpose)
    return serializer.make_signer(serializer.salt)


def make_token(settings: Settings, purpose: Purpose, payload: dict[str, Any]) -> str:
    """What `URLSafeTimedSerializer(key, salt).dumps(payload)` writes when it does not
    compress: compact JSON, base64url, then the timestamp and signature of both."""
    body = base64_encode(
        json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    )
    return _signer_for(settings.signing_key(), purpose).sign(body).decode("ascii")


def read_token(settings: Settings, purpose: Purpose, token: str) -> dict[str, Any]:
    """The payload of a valid token; InvalidToken/ExpiredToken otherwise."""
    try:
        payload = _serializer(settings, purpose).loads(token, max_age=MAX_AGE[purpose])
    except SignatureExpired:
        raise ExpiredToken("this link has expired") from None
    except BadSignature:
        raise InvalidToken("this link is not valid") from None
    if not isinstance(payload, dict):
        raise InvalidToken("this link is not valid")
    return payload


def confirm_url(settings: Settings, subscriber_id: int, alert_ids: list[int]) -> str:
    token = make_token(settings, Purpose.confirm, {"s": subscriber_id, "a": sorted(alert_ids)})
    return f"{settings.public_base}/confirm?token={token}"


def manage_url(settings: Settings, subscriber_id: int) -> str:
    token = make_token(settings, Purpose.manage, {"s": subscriber_id})
    return f"{settings.public_base}/manage?token={token}"


def unsubscribe_url(settings: Settings, alert_ids: list[int]) -> str:
    """One link that ends every alert listed (a digest's List-Unsubscribe covers all the
    alerts in that digest; the body also offers one link per alert)."""
    token = make_token(settings, Purpose.unsubscribe, {"a": sorted(alert_ids)})
    return f"{settings.public_base}/unsubscribe?token={token}"


def feedback_url(settings: Settings, subscriber_id: int) -> str:
    """The base of a reader's "not relevant" links: each digest item appends its own
    `&event=<id>`, so one signed token serves every item of a digest body."""
    token = make_token(settings, Purpose.feedback, {"s": subscriber_id})
    return f"{settings.public_base}/feedback?token={token}"
