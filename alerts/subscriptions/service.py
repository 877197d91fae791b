"""The rules of subscribing: double opt-in, who may activate what, status changes,
one-click unsubscribe, personal tokens. Functions here flush; the caller commits.

Invariants:
- Nothing is mailed to an address before its owner clicked a confirmation link,
  except that confirmation (and, for a verified address, a requested API token).
- An active or paused alert is never changed by a request that proves nothing (no
  token, no signed link): the web form leaves it alone and mails a manage link. A
  pending alert, confirmed by nobody yet, takes the latest form's preferences.
- No answer to a request that proves nothing about an address says whether it is
  subscribed: the web form and an anonymous POST /api/v1/alerts answer the same.
- An alert's row is kept when it ends (`unsubscribed`) or is deleted (`deleted`,
  hidden from its owner), and re-used when its subscriber subscribes to the same
  target again. Erasure is the exception: it removes the subscriber and everything
  stored about them.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerts.config import Settings
from alerts.errors import Conflict, NotFound, Unprocessable
from alerts.mail.outbox import queue_mail
from alerts.pagination import decode_cursor, encode_cursor
from alerts.subscriptions import repository
from alerts.subscriptions.auth import Caller, hash_token
from alerts.subscriptions.mails import (
    CONFIRM_KIND,
    TOKEN_KIND,
    confirmation_message,
    token_message,
)
from alerts.subscriptions.schemas import (
    LIVE_STATUSES,
    AlertCreate,
    AlertOut,
    AlertPage,
    AlertStatus,
    AlertUpdate,
    Preferences,
)
from alerts.subscriptions.tokens import (
    InvalidToken,
    Purpose,
    confirm_url,
    manage_url,
    read_token,
)
from alerts.targets.service import get_target_by_slug
from db.clock import utc_now
from db.models import Alert, ApiToken, Item, Subscriber, Target
from db.statuses import AddressStatus

logger = logging.getLogger(__name__)

#: Confirmation mails per address per hour; a form re-submitted in a loop must not
#: turn the service into a mail cannon. Over the limit the answer is the same.
CONFIRMATIONS_PER_HOUR = 5
#: API token mails per address per hour (over it: the same 202, no mail).
TOKENS_PER_HOUR = 5
LATEST_ITEMS_PER_TARGET = 5
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
TOKEN_PREFIX = "ta_"

_PREFERENCE_FIELDS = ("frequency", "weekday", "send_hour", "timezone", "max_items",
                      "send_when_empty")


# --- subscribing ---------------------------------------------------------------------


def create_alert(
    session: Session, settings: Settings, data: AlertCreate, caller: Caller
) -> Alert | None:
    """POST /api/v1/alerts. For the address's own token, or the admin with `confirmed`,
    the alert is active at once; for the admin without it, pending with a confirmation
    mail. Both get the alert back, or a 409 when the address already has one.

    Anyone else (anonymous, or another address's token) proves nothing about the
    address, so they learn nothing about it either: this is the web form's
    `subscribe_from_form` for one target (a pending alert and a confirmation mail, or
    a mail naming the alert already running), and None comes back whatever happened."""
    target = find_target(session, data.target)
    if target is None:
        raise Unprocessable("target", f"unknown target {data.target!r}; GET /api/v1/targets "
                            "lists the catalogue")
    prefs = Preferences.model_validate(data.model_dump(include=set(_PREFERENCE_FIELDS)))
    subscriber = repository.get_or_create_subscriber(session, data.email)
    owner = caller.is_admin or caller.subscriber_id == subscriber.id
    if not owner:
        subscribe_from_form(session, settings, subscriber.email, [target], prefs)
        return None
    alert = repository.find_alert(session, subscriber.id, target.id)
    if alert is not None and alert.status in LIVE_STATUSES:
        raise Conflict(f"{subscriber.email} already has an alert on {target.slug} "
                       f"(id {alert.id}, {alert.status})")
    alert = _pending_alert(session, subscriber, target, prefs, alert)
    if not caller.is_admin or data.confirmed:
        now = utc_now()
        _activate(alert, now)
        if subscriber.verified_at is None:  # the operator vouches for the address
            subscriber.verified_at = now
        session.flush()
    else:
        queue_confirmation(session, settings, subscriber, [alert], [])
    return alert


def subscribe_from_form(
    session: Session,
    settings: Settings,
    email: str,
    targets: Sequence[Target],
    prefs: Preferences,
) -> None:
    """POST /subscribe: pending alerts with the chosen preferences and ONE confirmation
    mail. Alerts the address already receives are not touched (the request is not
    authenticated); the mail names them with a manage link. The caller answers the
    same whatever happened here."""
    subscriber = repository.get_or_create_subscriber(session, email)
    to_confirm: list[Alert] = []
    already_live: list[Alert] = []
    for target in targets:
        alert = repository.find_alert(session, subscriber.id, target.id)
        if alert is not None and alert.status in (AlertStatus.active, AlertStatus.paused):
            already_live.append(alert)
            continue
        to_confirm.append(_pending_alert(session, subscriber, target, prefs, alert))
    queue_confirmation(session, settings, subscriber, to_confirm, already_live)


def add_alert(
    session: Session,
    settings: Settings,
    subscriber: Subscriber,
    target: Target,
    prefs: Preferences,
) -> Alert:
    """A new alert from the manage page, whose link proves the address: active at once
    when the address is verified, otherwise waiting for a confirmation."""
    alert = repository.find_alert(session, subscriber.id, target.id)
    if alert is not None and alert.status in LIVE_STATUSES:
        raise Conflict(f"you already have an alert on {target.name}")
    alert = _pending_alert(session, subscriber, target, prefs, alert)
    if subscriber.verified_at is not None:
        _activate(alert, utc_now())
        session.flush()
    else:
        queue_confirmation(session, settings, subscriber, [alert], [])
    return alert


def queue_confirmation(
    session: Session,
    settings: Settings,
    subscriber: Subscriber,
    to_confirm: Sequence[Alert],
    already_live: Sequence[Alert],
) -> bool:
    """Queue the confirmation mail; False when the address hit its hourly limit."""
    since = utc_now() - timedelta(hours=1)
    if repository.count_mails_since(session, subscriber.email, CONFIRM_KIND, since) >= (
        CONFIRMATIONS_PER_HOUR
    ):
        logger.info("confirmation to subscriber %s not sent: hourly limit", subscriber.id)
        return False
    message = confirmation_message(
        settings,
        to=subscriber.email,
        confirm_link=(
            confirm_url(settings, subscriber.id, [a.id for a in to_confirm])
            if to_confirm else None
        ),
        to_confirm=[a.target for a in to_confirm],
        already_active=[a.target for a in already_live],
        manage_link=manage_url(settings, subscriber.id) if already_live else None,
    )
    queue_mail(session, CONFIRM_KIND, message)
    return True


def _pending_alert(
    session: Session,
    subscriber: Subscriber,
    target: Target,
    prefs: Preferences,
    existing: Alert | None,
) -> Alert:
    """`existing` (pending or unsubscribed) or a new row, pending with `prefs`."""
    alert = existing
    if alert is None:
        alert = Alert(subscriber=subscriber, target=target)
        try:
            with session.begin_nested():
                session.add(alert)
                _apply_preferences(alert, prefs)
                alert.status = AlertStatus.pending
        except IntegrityError:  # the same alert created at the same instant elsewhere
            raise Conflict(f"{subscriber.email} already has an alert on {target.slug}") from None
        return alert
    _apply_preferences(alert, prefs)
    alert.status = AlertStatus.pending
    alert.activated_at = None
    alert.updated_at = utc_now()
    session.flush()
    return alert


def _apply_preferences(alert: Alert, prefs: Preferences | AlertUpdate) -> None:
    for name in _PREFERENCE_FIELDS:
        value = getattr(prefs, name)
        if value is not None:
            setattr(alert, name, str(value) if name in ("frequency", "weekday") else value)


def _activate(alert: Alert, now: datetime) -> None:
    """Active from now on: digests hold only items first seen after `activated_at`."""
    alert.status = AlertStatus.active
    alert.activated_at = now
    alert.updated_at = now


# --- confirming, managing, unsubscribing ----------------------------------------------


@dataclass
class Confirmation:
    subscriber: Subscriber
    #: The alerts of the link, as they are after the click.
    alerts: list[Alert]
    #: Those this click activated (none on a second click).
    activated: list[Alert] = field(default_factory=list)
    latest: dict[int, list[Item]] = field(default_factory=dict)


def confirmation_of(session: Session, settings: Settings, token: str) -> Confirmation:
    """GET /confirm: what the link would confirm, changing nothing (mail scanners
    open links; only the button's POST confirms)."""
    payload = read_token(settings, Purpose.confirm, token)
    subscriber = repository.get_subscriber(session, _int(payload.get("s")))
    if subscriber is None:
        raise InvalidToken("this link is not valid any more")
    alerts = [
        a for a in repository.alerts_by_ids(session, _ints(payload.get("a")))
        if a.subscriber_id == subscriber.id
    ]
    return Confirmation(subscriber, alerts)


def confirm(session: Session, settings: Settings, token: str) -> Confirmation:
    """POST /confirm: activate the link's alerts that are still pending and mark the
    address verified. Mails nothing; a second click changes nothing."""
    confirmation = confirmation_of(session, settings, token)
    subscriber, alerts = confirmation.subscriber, confirmation.alerts
    now = utc_now()
    for alert in alerts:
        if alert.status == AlertStatus.pending:
            _activate(alert, now)
            confirmation.activated.append(alert)
    if subscriber.verified_at is None:
        subscriber.verified_at = now
    # The click proves mail reaches the address again after an earlier bounce.
    subscriber.mail_status, subscriber.mail_error = AddressStatus.ok, None
    session.flush()
    confirmation.latest = repository.latest_items(
        session, [a.target_id for a in alerts if a.status != AlertStatus.unsubscribed],
        LATEST_ITEMS_PER_TARGET,
    )
    return confirmation


def manage_subscriber(session: Session, settings: Settings, token: str) -> Subscriber:
    """The subscriber a manage link stands for."""
    payload = read_token(settings, Purpose.manage, token)
    subscriber = repository.get_subscriber(session, _int(payload.get("s")))
    if subscriber is None:
        raise InvalidToken("this link is not valid any more")
    return subscriber


def alerts_of_unsubscribe_link(session: Session, settings: Settings, token: str) -> list[Alert]:
    payload = read_token(settings, Purpose.unsubscribe, token)
    return repository.alerts_by_ids(session, _ints(payload.get("a")))


def unsubscribe(session: Session, settings: Settings, token: str) -> list[Alert]:
    """POST /unsubscribe (RFC 8058 one-click): end every alert of the link. Idempotent:
    alerts already ended stay as they are."""
    alerts = alerts_of_unsubscribe_link(session, settings, token)
    now = utc_now()
    for alert in alerts:
        if alert.status != AlertStatus.unsubscribed:
            alert.status = AlertStatus.unsubscribed
            alert.updated_at = now
    session.flush()
    return alerts


def update_alert(session: Session, alert: Alert, changes: AlertUpdate, *, is_admin: bool) -> Alert:
    """PATCH semantics: only the fields given change. Status moves active <-> paused,
    or to unsubscribed from anywhere; a pending alert becomes active only through its
    confirmation link, or by the admin."""
    _apply_preferences(alert, changes)
    if changes.status is not None:
        change_status(alert, AlertStatus(changes.status), is_admin=is_admin)
    alert.updated_at = utc_now()
    session.flush()
    return alert


#: Status changes anyone owning the alert may make (besides ending it, always allowed).
_OWNER_MOVES = {
    (AlertStatus.active, AlertStatus.paused),
    (AlertStatus.paused, AlertStatus.active),
}
#: ... and those only the admin may make: activating without the confirmation click.
_ADMIN_MOVES = {(AlertStatus.pending, AlertStatus.active)}


def change_status(alert: Alert, new: AlertStatus, *, is_admin: bool) -> None:
    current = AlertStatus(alert.status)
    if new == current:
        return
    move = (current, new)
    allowed = new == AlertStatus.unsubscribed or move in _OWNER_MOVES or (
        is_admin and move in _ADMIN_MOVES
    )
    if not allowed:
        if current == AlertStatus.pending:
            raise Conflict("this alert waits for the click on its confirmation link (mailed "
                           f"to {alert.subscriber.email})")
        if current == AlertStatus.unsubscribed:
            raise Conflict("this alert has ended; POST /api/v1/alerts subscribes again")
        raise Conflict(f"an alert that is {current} cannot become {new}")
    now = utc_now()
    if new == AlertStatus.active:
        # Resuming starts afresh: nothing first seen while paused is sent afterwards.
        _activate(alert, now)
    else:
        alert.status = new
        alert.updated_at = now


def end_alert(session: Session, alert: Alert) -> None:
    """The manage page's "remove": the alert is unsubscribed and listed as ended; its
    row stays, for the record of what was sent and so that subscribing again re-uses it."""
    change_status(alert, AlertStatus.unsubscribed, is_admin=False)
    session.flush()


def delete_alert(session: Session, alert: Alert) -> None:
    """DELETE /api/v1/alerts/{id}: the alert is gone for its owner (404, not listed) and
    nothing more is sent for it. The row stays as `deleted`, keeping the record of what
    it was sent; subscribing to the target again re-uses it."""
    alert.status = repository.DELETED
    alert.updated_at = utc_now()
    session.flush()


def find_target(session: Session, slug: str) -> Target | None:
    """The catalogue's target `slug`, or None (an unknown target in a body is a 422,
    not the catalogue's 404)."""
    try:
        return get_target_by_slug(session, slug)
    except NotFound:
        return None


def owned_alert(session: Session, subscriber: Subscriber, alert_id: int) -> Alert:
    alert = repository.get_alert(session, alert_id)
    if alert is None or alert.subscriber_id != subscriber.id:
        raise NotFound(f"alert {alert_id} not found")
    return alert


# --- listing ---------------------------------------------------------------------------


def list_alerts(
    session: Session,
    caller: Caller,
    *,
    email: str | None,
    cursor: str | None,
    limit: int,
) -> AlertPage:
    """The caller's alerts (the admin's: everyone's), oldest first, a page at a time."""
    after_id = decode_cursor(cursor, int)[0] if cursor else 0
    rows = repository.alerts_page(
        session,
        subscriber_id=None if caller.is_admin else caller.subscriber_id,
        email=email,
        after_id=after_id,
        limit=limit,
    )
    page, more = rows[:limit], len(rows) > limit
    return AlertPage(
        data=[AlertOut.of(a) for a in page],
        next_cursor=encode_cursor(page[-1].id) if more and page else None,
    )


# --- personal tokens -------------------------------------------------------------------


def request_api_token(session: Session, settings: Settings, email: str) -> None:
    """POST /api/v1/tokens: mail a new token to a verified address. Says nothing about
    the address: unknown, unverified and rate-limited addresses just get no mail."""
    subscriber = repository.find_subscriber(session, email)
    if subscriber is None or subscriber.verified_at is None:
        return
    since = utc_now() - timedelta(hours=1)
    if repository.count_mails_since(session, email, TOKEN_KIND, since) >= TOKENS_PER_HOUR:
        logger.info("API token for subscriber %s not sent: hourly limit", subscriber.id)
        return
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(subscriber_id=subscriber.id, token_hash=hash_token(token)))
    queue_mail(session, TOKEN_KIND, token_message(settings, to=email, token=token))


def revoke_token(session: Session, caller: Caller) -> None:
    """DELETE /api/v1/tokens/current: the token of this request stops working."""
    if caller.subscriber_id is None or caller.token_id is None:
        raise Conflict("only a personal token can be revoked; the admin token is "
                       "ALERTS_ADMIN_TOKEN")
    repository.delete_tokens(session, caller.subscriber_id, caller.token_id)


def revoke_all_tokens(session: Session, subscriber: Subscriber) -> int:
    """The manage page's button: every personal token of the address stops working."""
    return repository.delete_tokens(session, subscriber.id)


# --- erasure ---------------------------------------------------------------------------


def erase(session: Session, subscriber: Subscriber) -> None:
    """Forget the subscriber: the address, every alert, token and digest record, and the
    mails to them. Nothing stored identifies them afterwards.

    Exactly-once delivery needs nothing of them any more: a digest is keyed by the
    subscriber's id and holds only the alerts' events, and with the alerts gone no
    digest can be planned for that id again. If the address subscribes again it is a
    new subscriber whose alerts start from their new confirmation, so nothing sent
    before can be sent again."""
    logger.info("subscriber %s erased on request", subscriber.id)
    repository.erase_subscriber(session, subscriber)


def subscriber_of(session: Session, caller: Caller, email: str | None) -> Subscriber:
    """The subscriber a DELETE /api/v1/subscriber erases: the personal token's own, or
    for the admin the one of `?email=`."""
    if caller.is_admin:
        if email is None:
            raise Unprocessable("email", "the admin token erases the address given in "
                                "?email=", location="query")
        found = repository.find_subscriber(session, email)
    elif email is not None:
        raise Unprocessable("email", "a personal token erases its own address; leave "
                            "?email= out", location="query")
    else:
        found = repository.get_subscriber(session, caller.subscriber_id or 0)
    if found is None:
        raise NotFound("no such subscriber")
    return found


# --- helpers ---------------------------------------------------------------------------


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidToken("this link is not valid")


def _ints(value: Any) -> list[int]:
    if not isinstance(value, list):
        raise InvalidToken("this link is not valid")
    return [_int(v) for v in value]
