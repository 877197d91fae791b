"""A real SMTP server in-process (aiosmtpd) that records what it accepts and can be
told to refuse: temporarily (4xx), permanently (5xx) per address, every address or
the sender, or by dropping the connection, and to block until released (for crash tests). With
`smtputf8=True` it offers SMTPUTF8 (RFC 6531, internationalised addresses).

aiosmtpd does not offer PIPELINING (RFC 2920), so `PipeliningSmtpServer` is a small
asyncio server that does, driven by the same `RecordingHandler` settings, and that counts
the transactions whose MAIL, RCPT and DATA arrived together before any reply."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, message_from_string, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPProtocol


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    #: The client asked for SMTPUTF8 in MAIL FROM.
    smtputf8: bool = False

    @property
    def message(self) -> EmailMessage:
        if self.smtputf8:  # headers in UTF-8 (RFC 6532)
            return message_from_string(  # type: ignore[return-value]
                self.data.decode("utf-8"), policy=policy.default
            )
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


@dataclass
class RecordingHandler:
    received: list[Received] = field(default_factory=list)
    #: address -> SMTP reply for RCPT TO, e.g. "550 5.1.1 no such user" or "451 try later".
    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    #: The reply to every RCPT TO (a relay refusing everything), e.g. "550 5.7.1 denied".
    refuse_every_rcpt: str | None = None
    #: The reply to every MAIL FROM (a relay refusing our sender).
    refuse_every_mail: str | None = None
    #: Reply for the next N DATA commands instead of accepting ("451 4.3.0 busy").
    fail_data: list[str] = field(default_factory=list)
    #: Drop the connection at DATA, N times (after accepting `drop_after` more messages).
    drop_data: int = 0
    drop_after: int = 0
    #: When set, DATA waits on it before accepting (the test kills the client meanwhile).
    gate: threading.Event | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        if self.refuse_every_mail:
            return self.refuse_every_mail
        envelope.mail_from = address  # what aiosmtpd does without this hook
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        reply = self.refuse_rcpt.get(address.lower()) or self.refuse_every_rcpt
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
            if self.drop_data > 0 and self.drop_after > 0:
                self.drop_after -= 1
            elif self.drop_data > 0:
                self.drop_data -= 1
                server.transport.close()
                return "421 closing"
            if self.fail_data:
                return self.fail_data.pop(0)
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content),
                         smtputf8=bool(envelope.smtp_utf8))
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

    def __init__(self, handler: RecordingHandler | None = None, port: int | None = None, *,
                 smtputf8: bool = False) -> None:
        self.handler = handler or RecordingHandler()
        self.port = port or free_port()
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port,
            data_size_limit=50 * 1024 * 1024, enable_SMTPUTF8=smtputf8,
        )

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


class _PipeliningProtocol(asyncio.Protocol):
    """Answers every complete command of the input in order (what RFC 2920 asks of a
    server: nothing read ahead is dropped), one write per read."""

    def __init__(self, server: PipeliningSmtpServer) -> None:
        self.server = server
        self.handler = server.handler
        self.buffer = b""
        self.in_data = False
        self.sender = ""
        self.recipients: list[str] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections += 1
        transport.write(b"220 fake ESMTP\r\n")  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        replies: list[str] = []
        verbs: list[str] = []
        while not self.transport.is_closing():
            if self.in_data:
                # The CRLF before the dot ends the last line; an empty message is "."
                # alone, so the search starts as if after a line end.
                framed = b"\r\n" + self.buffer
                end = framed.find(b"\r\n.\r\n")
                if end < 0:
                    break
                content, self.buffer = framed[2 : end + 2], framed[end + 5 :]
                self.in_data = False
                replies.append(self._end_of_data(content.replace(b"\r\n..", b"\r\n.")))
                continue
            line, found, rest = self.buffer.partition(b"\r\n")
            if not found:
                break
            self.buffer = rest
            verb, _, argument = line.decode().partition(" ")
            verbs.append(verb.upper())
            replies.append(self._command(verb.upper(), argument))
        if verbs[:1] == ["MAIL"] and verbs[-1:] == ["DATA"]:
            self.server.pipelined += 1
        if replies and not self.transport.is_closing():
            self.transport.write("".join(f"{reply}\r\n" for reply in replies).encode())

    def _command(self, verb: str, argument: str) -> str:
        assert self.transport is not None
        if verb == "EHLO":
            extensions = ["8BITMIME", "SIZE 52428800"]
            if self.server.advertise:
                extensions.append("PIPELINING")
            return "\r\n".join(["250-fake", *(f"250-{e}" for e in extensions[:-1]),
                                 f"250 {extensions[-1]}"])
        if verb == "MAIL":
            if self.server.refuse_mail:
                return self.server.refuse_mail.pop(0)
            self.sender, self.recipients = argument.split(":", 1)[1].split()[0].strip("<>"), []
            return "250 OK"
        if verb == "RCPT":
            address = argument.split(":", 1)[1].strip().strip("<>")
            if self.sender == "":
                return "503 5.5.1 MAIL first"
            reply = self.handler.refuse_rcpt.get(address.lower()) or self.handler.refuse_every_rcpt
            if reply:
                return reply
            self.recipients.append(address)
            return "250 OK"
        if verb == "DATA":
            if self.server.refuse_data:
                return self.server.refuse_data.pop(0)
            if not self.recipients and not self.server.lenient_data:
                return "554 5.5.1 no valid recipients"
            self.in_data = True
            return "354 end with <CRLF>.<CRLF>"
        if verb == "RSET":
            self.sender, self.recipients = "", []
            return "250 OK"
        if verb == "QUIT":
            self.transport.write(b"221 bye\r\n")
            self.transport.close()
            return ""
        return "250 OK"

    def _end_of_data(self, content: bytes) -> str:
        assert self.transport is not None
        with self.handler.lock:
            if self.handler.drop_data > 0:
                self.handler.drop_data -= 1
                self.transport.close()
                return ""
            if self.handler.fail_data:
                return self.handler.fail_data.pop(0)
            if not self.recipients:
                return "554 5.5.1 no valid recipients"
            self.handler.received.append(Received(self.sender, self.recipients, content))
        self.sender, self.recipients = "", []
        return "250 2.0.0 accepted"


class PipeliningSmtpServer:
    """`with PipeliningSmtpServer() as smtp: ...`: offers PIPELINING (unless
    `advertise=False`) and honours it. Refusals come from the handler as for
    `SmtpServer` (RCPT per address, `fail_data` after the body, `drop_data` closes at the
    end of the body); `refuse_data` holds replies for the next DATA commands themselves.
    `refuse_mail` for the next MAIL commands; `lenient_data` answers 354 to DATA even
    with no recipient taken (as some servers do, refusing at the end of data instead).
    `pipelined` counts reads that held a whole envelope up to DATA; `connections` the
    connections accepted."""

    def __init__(self, handler: RecordingHandler | None = None, *,
                 advertise: bool = True) -> None:
        self.handler = handler or RecordingHandler()
        self.advertise = advertise
        self.refuse_data: list[str] = []
        self.refuse_mail: list[str] = []
        self.lenient_data = False
        self.pipelined = 0
        self.connections = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> PipeliningSmtpServer:
        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(
            self._loop.create_server(lambda: _PipeliningProtocol(self), "127.0.0.1", 0),
            self._loop,
        ).result(timeout=5)
        self._server = server
        self.port = int(server.sockets[0].getsockname()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self._server.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


class RaisingMailer:
    """Wraps a mailer: its connections raise an error no SMTP reply explains (the one
    smtplib raised for an internationalised address) for messages to `address`, and
    send everything else through `inner`."""

    def __init__(self, inner: Any, address: str) -> None:
        self.inner = inner
        self.address = address

    @contextmanager
    def connect(self) -> Iterator[Any]:
        with self.inner.connect() as connection:
            yield _RaisingConnection(connection, self.address)


class _RaisingConnection:
    def __init__(self, connection: Any, address: str) -> None:
        self.connection = connection
        self.address = address

    def send(self, message: EmailMessage) -> None:  # pragma: no cover - unused
        self.connection.send(message)

    def send_raw(self, sender: str, recipients: list[str], data: bytes) -> None:
        if self.address in recipients:
            raise UnicodeEncodeError("ascii", self.address, 0, 1, "ordinal not in range(128)")
        self.connection.send_raw(sender, recipients, data)


__all__ = ["PipeliningSmtpServer", "RaisingMailer", "RecordingHandler", "Received",
           "SMTPProtocol", "SmtpServer", "free_port"]
