"""Log lines an operator can grep: one event name per line, then the ids that matter.

    ... INFO scheduler.runner scheduler.job name=poll owner=web1-42-a1b2c3 polled=3 failed=0

`log_event` builds such a line from keyword fields, quoting values with spaces, so a
line always splits into `event key=value ...` (grep `digest.sent key=...`, or parse it).
"""

from __future__ import annotations

import logging
import sys
from typing import IO

LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

#: Libraries whose INFO lines repeat what our own events say, or that speak on every
#: request (alembic on each /readyz migration check).
QUIET_LOGGERS = ("apscheduler", "httpx", "httpcore", "aiosmtpd", "mail.log", "alembic")


def configure_logging(level: int | str = logging.INFO, *, stream: IO[str] | None = None) -> None:
    """Log to stderr, one event per line; safe to call more than once (the last call
    wins), as each command of the CLI does."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_alerts_handler", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(LINE_FORMAT))
    handler._alerts_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def format_value(value: object) -> str:
    """A field value that never breaks the `key=value` split: no spaces, no newlines."""
    if value is None:
        return "-"
    text = str(value)
    if text == "" or any(ch.isspace() or ch in '"=' for ch in text):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", " ")
        return f'"{escaped}"'
    return text


def format_event(event: str, /, **fields: object) -> str:
    """`event key=value ...` in the order the fields were given."""
    parts = [event]
    parts.extend(f"{key}={format_value(value)}" for key, value in fields.items())
    return " ".join(parts)


def log_event(
    logger: logging.Logger,
    event: str,
    /,
    *,
    level: int = logging.INFO,
    exc_info: bool = False,
    **fields: object,
) -> None:
    """Log one event line, e.g. `log_event(log, "digest.sent", key=key, to=email)`."""
    if logger.isEnabledFor(level):
        logger.log(level, format_event(event, **fields), exc_info=exc_info)
