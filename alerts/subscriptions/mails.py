"""The transactional mails of subscriptions, rendered from templates/mail/: the
double opt-in confirmation, the personal API token, and the notice that a followed
target was removed."""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from alerts.config import Settings
from alerts.mail.base import envelope_sender
from alerts.mail.message import build_message
from alerts.templating import environment
from db.models import Target

CONFIRM_KIND = "confirm"
TOKEN_KIND = "api_token"
TARGET_REMOVED_KIND = "target_removed"


def _one_line(value: str) -> str:
    """Header text from catalogue data: whitespace (newlines included) collapsed."""
    return " ".join(value.split())


def _headers(settings: Settings) -> dict[str, str]:
    domain = envelope_sender(settings.mail_from).rpartition("@")[2] or "localhost"
    return {"Date": formatdate(usegmt=True), "Message-ID": make_msgid(domain=domain)}


def _render(name: str, **context: object) -> tuple[str, str]:
    env = environment()
    return (
        env.get_template(f"mail/{name}.txt").render(**context),
        env.get_template(f"mail/{name}.html").render(**context),
    )


def confirmation_message(
    settings: Settings,
    *,
    to: str,
    confirm_link: str | None,
    to_confirm: Sequence[Target],
    already_active: Sequence[Target],
    manage_link: str | None,
) -> EmailMessage:
    """The double opt-in mail: one link that activates every target listed in
    `to_confirm`. Targets the address already receives are named with a manage link
    instead (an unauthenticated form never changes a live alert)."""
    names = [_one_line(t.name) for t in to_confirm]
    if names:
        subject = f"Confirm your alert: {names[0]}" if len(names) == 1 else (
            f"Confirm your alerts: {', '.join(names)}"
        )
    else:
        subject = "Your alerts: already subscribed"
    text, html = _render(
        "confirm",
        email=to,
        confirm_link=confirm_link,
        to_confirm=to_confirm,
        already_active=already_active,
        manage_link=manage_link,
        public_url=settings.public_base,
    )
    return build_message(
        mail_from=settings.mail_from, to=to, subject=subject[:200], text=text, html=html,
        headers=_headers(settings),
    )


def token_message(settings: Settings, *, to: str, token: str) -> EmailMessage:
    """The personal API token, on a line of its own after `Your API token:`."""
    text, html = _render("token", email=to, token=token, public_url=settings.public_base)
    return build_message(
        mail_from=settings.mail_from, to=to, subject="Your Target Alerts API token",
        text=text, html=html, headers=_headers(settings),
    )


def target_removed_message(
    settings: Settings, *, to: str, target_name: str, manage_link: str
) -> EmailMessage:
    """The notice that a target the address followed left the catalogue, and so did its
    alert on it (its other alerts go on)."""
    name = _one_line(target_name)
    text, html = _render("target_removed", email=to, target_name=name,
                         manage_link=manage_link, public_url=settings.public_base)
    return build_message(
        mail_from=settings.mail_from, to=to, subject=f"Your alert ended: {name}"[:200],
        text=text, html=html, headers=_headers(settings),
    )
