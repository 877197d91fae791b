"""/dev/mailbox: the local mailbox of a development setup, in the browser.

Without an SMTP relay every mail is an `.eml` file in `settings.mailbox_dir`; these
pages list them and show one, so a developer can click a confirmation link. With SMTP
configured the pages do not exist (404). A message's HTML is shown inside a sandboxed
iframe (`srcdoc`, escaped), so its scripts cannot run and its styles stay inside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from markupsafe import Markup, escape

from alerts.config import Settings
from alerts.deps import SettingsDep
from alerts.mail.mailbox import MailboxMailer
from alerts.web.pages import PageError, PageRoute, render

router = APIRouter(prefix="/dev/mailbox", route_class=PageRoute, include_in_schema=False)

#: The names MailboxMailer writes; anything else (a path, `..`) is refused.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.eml$")
#: A URL inside already escaped text: it ends before an escaped <, >, " or '.
_URL = re.compile(r"https?://(?:(?!&lt;|&gt;|&#34;|&#39;)[^\s<>\"'])+")
_LIST_LIMIT = 500


@dataclass(frozen=True)
class MailSummary:
    name: str
    date: datetime | None
    to: str
    subject: str


def _mailbox(settings: Settings) -> MailboxMailer:
    if settings.uses_smtp:
        raise PageError(404, "Not found", "Mail goes to an SMTP relay; there is no local mailbox.")
    return MailboxMailer(settings.mailbox_dir)


def _read(path: Path) -> EmailMessage:
    return message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[return-value]


def _date(message: EmailMessage, path: Path) -> datetime | None:
    header = message["Date"]
    if header:
        try:
            return parsedate_to_datetime(str(header))
        except (TypeError, ValueError):
            pass
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


@router.get("", response_class=HTMLResponse)
def mailbox(settings: SettingsDep) -> HTMLResponse:
    """The stored messages, newest first."""
    summaries = []
    for path in _mailbox(settings).messages()[:_LIST_LIMIT]:
        message = _read(path)
        summaries.append(MailSummary(path.name, _date(message, path), str(message["To"] or ""),
                                     str(message["Subject"] or "")))
    return render("mailbox_list.html", messages=summaries, directory=str(settings.mailbox_dir))


@router.get("/{name}", response_class=HTMLResponse)
def mailbox_message(name: str, settings: SettingsDep) -> HTMLResponse:
    """One message: headers, text part (links made clickable), HTML part sandboxed."""
    box = _mailbox(settings)
    if not _NAME.match(name):
        raise PageError(404, "No such message", "That is not the name of a stored message.")
    directory = box.directory.resolve()
    path = (directory / name).resolve()
    if path.parent != directory or not path.is_file():
        raise PageError(404, "No such message", "That message is not in the mailbox.")
    message = _read(path)
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    return render(
        "mailbox_message.html",
        name=name,
        headers=[(key, str(value)) for key, value in message.items()],
        subject=str(message["Subject"] or ""),
        text=_linkify(text_part.get_content()) if text_part is not None else None,
        html=html_part.get_content() if html_part is not None else None,
    )


def _linkify(text: str) -> Markup:
    """The text escaped, with its http(s) URLs made into links."""
    escaped = str(escape(text))
    return Markup(_URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped))
