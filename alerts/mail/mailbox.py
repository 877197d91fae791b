"""Local delivery for development: each message becomes an `.eml` file in a folder
(`./var/mailbox/` by default), shown at `/dev/mailbox` when no SMTP relay is set."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from alerts.mail.base import POLICY


@dataclass
class MailboxMailer:
    directory: Path

    @contextmanager
    def connect(self) -> Iterator[MailboxConnection]:
        self.directory.mkdir(parents=True, exist_ok=True)
        yield MailboxConnection(self.directory)

    def messages(self) -> list[Path]:
        """The stored messages, newest first."""
        if not self.directory.exists():
            return []
        return sorted(self.directory.glob("*.eml"), reverse=True)


class MailboxConnection:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, message: EmailMessage) -> None:
        self._write(message.as_bytes(policy=POLICY))

    def send_raw(self, sender: str, recipients: list[str], data: bytes) -> None:
        self._write(data)

    def _write(self, data: bytes) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        temporary = self.directory / f".{name}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, self.directory / name)  # readers never see half a message
