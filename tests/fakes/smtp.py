"""A real SMTP server in-process (aiosmtpd) that records what it accepts and can be
told to refuse: temporarily (4xx), permanently (5xx) per address, or by dropping the
connection, and to block until released (for crash tests)."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPProtocol


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


@dataclass
class RecordingHandler:
    received: list[Received] = field(default_factory=list)
    #: address -> SMTP reply for RCPT TO, e.g. "550 5.1.1 no such user" or "451 try later".
    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    #: Reply for the next N DATA commands instead of accepting ("451 4.3.0 busy").
    fail_data: list[str] = field(default_factory=list)
    #: Drop the connection at DATA, N times.
    drop_data: int = 0
    #: When set, DATA waits on it before accepting (the test kills the client meanwhile).
    gate: threading.Event | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        reply = self.refuse_rcpt.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.gate is not None:
            import asyncio

            while not self.gate.is_set():
                await asyncio.sleep(0.01)
        with self.lock:
            if self.drop_data > 0:
                self.drop_data -= 1
                server.transport.close()
                return "421 closing"
            if self.fail_data:
                return self.fail_data.pop(0)
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
            )
        return "250 Message accepted"

    def messages(self) -> list[EmailMessage]:
        with self.lock:
            return [r.message for r in self.received]

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages() if address.lower() in str(m["To"]).lower()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpServer:
    """`with SmtpServer() as smtp: ...`; `smtp.port`, `smtp.handler.received`."""

    def __init__(self, handler: RecordingHandler | None = None, port: int | None = None) -> None:
        self.handler = handler or RecordingHandler()
        self.port = port or free_port()
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port,
            data_size_limit=50 * 1024 * 1024,
        )

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


__all__ = ["RecordingHandler", "Received", "SMTPProtocol", "SmtpServer", "free_port"]
