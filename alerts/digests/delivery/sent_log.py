"""The recording thread of a send run: digests are recorded `sent` right behind the SMTP
server's acceptances, while the sender goes on with the next message."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.digests import repository as repo
from alerts.ops.logging import log_event
from db.clock import utc_now

log = logging.getLogger(__name__)

#: Seconds between attempts to record while the database cannot be reached (doubling).
RETRY_FIRST, RETRY_MAX = 0.2, 5.0

Accepted = tuple[int, str]


class SentLog:
    """Records digests as `sent` right after the SMTP server accepted them.

    The sender hands each acceptance to a recording thread and goes on with the next
    message; the thread commits at once, together with whatever acceptances queued up
    meanwhile. So a crash can resend only the message(s) accepted within the last
    commit's time (about a millisecond), each with its stable Message-ID for receivers
    to drop. A session factory bound to one connection (a test's rolled-back
    transaction) must not be used from two threads: then each acceptance is committed
    inline, before the next message.

    When the database cannot be reached, what the server accepted is kept and the
    thread tries again (on a new connection) for up to `patience` seconds: an outage
    shorter than that loses no acceptance, so the digests are not sent again. Meanwhile
    `failing` is set and `check` tells the sender to stop sending."""

    def __init__(self, session_factory: sessionmaker[Session], owner: str, *,
                 patience: float = 600.0) -> None:
        self.owner = owner
        self.patience = patience
        self.error: BaseException | None = None
        #: Set while the last attempt to record failed (the database is unreachable).
        self.failing: BaseException | None = None
        self._factory = session_factory
        self._queue: queue.SimpleQueue[Accepted | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._inline: Session | None = None
        if isinstance(session_factory.kw.get("bind"), Engine):
            self._thread = threading.Thread(target=self._run, name="digests-sent-log",
                                            daemon=True)
            self._thread.start()
        else:
            self._inline = session_factory()

    def check(self) -> None:
        """Raise RecordingFailed while acceptances cannot be recorded: a message sent
        now could not be marked sent either, and would go out again."""
        failure = self.error or self.failing
        if failure is not None:
            raise RecordingFailed(
                f"the database could not record sent digests ({type(failure).__name__})"
            ) from failure

    def add(self, digest_id: int, subject: str) -> None:
        if self.error is not None:
            raise RecordingFailed("could not record sent digests") from self.error
        if self._inline is not None:
            self._record(self._inline, [(digest_id, subject)])
        else:
            self._queue.put((digest_id, subject))

    def close(self) -> None:
        """Wait until every acceptance handed over is committed (or given up on)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
        if self._inline is not None:
            self._inline.close()
        if self.error is not None:
            raise RecordingFailed("could not record sent digests") from self.error

    def _take(self, owed: list[Accepted], *, block: bool) -> bool:
        """Move what queued up into `owed` (waiting for something when `block`);
        True once the sender closed the log."""
        closed = False
        try:
            item = self._queue.get(block=block)
            while True:
                if item is None:
                    closed = True
                else:
                    owed.append(item)
                item = self._queue.get_nowait()
        except queue.Empty:
            pass
        return closed

    def _run(self) -> None:
        # A plain Core connection: this thread does one small UPDATE per commit, and
        # the ORM session's bookkeeping would double its cost.
        engine: Engine = self._factory.kw["bind"]
        connection: Connection | None = None
        owed: list[Accepted] = []
        closed = False
        failing_since = 0.0
        delay = RETRY_FIRST
        try:
            while not (closed and not owed):
                closed = self._take(owed, block=not owed and not closed) or closed
                if not owed:
                    continue
                try:
                    if connection is None:
                        connection = engine.connect()
                    with connection.begin():
                        self._recorded(repo.mark_sent(
                            connection, owed, owner=self.owner, at=utc_now()
                        ), owed)
                except Exception as exc:  # noqa: BLE001 - kept, tried again
                    if connection is not None:
                        with contextlib.suppress(Exception):  # it broke: dropped
                            connection.invalidate()
                        connection = None
                    if self.failing is None:
                        failing_since = time.monotonic()
                        log_event(log, "digests.recording_failed", level=logging.WARNING,
                                  owed=len(owed), error=type(exc).__name__)
                    self.failing = exc
                    if time.monotonic() - failing_since >= self.patience:
                        raise
                    time.sleep(delay)
                    delay = min(2 * delay, RETRY_MAX)
                    continue
                if self.failing is not None:
                    log_event(log, "digests.recording_recovered", recorded=len(owed),
                              seconds=f"{time.monotonic() - failing_since:.1f}")
                    self.failing, delay = None, RETRY_FIRST
                owed = []
        except BaseException as exc:  # noqa: BLE001 - handed to the sender
            log.exception("recording sent digests failed; %d accepted digests were not "
                          "recorded and will be sent again with the same Message-ID",
                          len(owed))
            self.error = exc
        finally:
            if connection is not None:
                connection.close()

    def _record(self, session: Session, accepted: list[Accepted]) -> None:
        with session.begin():
            kept = repo.mark_sent(session, accepted, owner=self.owner, at=utc_now())
        self._recorded(kept, accepted)

    @staticmethod
    def _recorded(kept: int, accepted: list[Accepted]) -> None:
        if kept < len(accepted):
            log.warning("%d digests were sent after their lease expired", len(accepted) - kept)


class RecordingFailed(Exception):
    """Accepted digests could not be recorded as sent (their leases expire, and they go
    out again with the same Message-ID)."""
