"""The recording thread of a send run: digests are recorded `sent` right behind the SMTP
server's acceptances, while the sender goes on with the next message."""

from __future__ import annotations

import logging
import queue
import threading

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.digests import repository as repo
from db.clock import utc_now

log = logging.getLogger(__name__)


class SentLog:
    """Records digests as `sent` right after the SMTP server accepted them.

    The sender hands each acceptance to a recording thread and goes on with the next
    message; the thread commits at once, together with whatever acceptances queued up
    meanwhile. So a crash can resend only the message(s) accepted within the last
    commit's time (about a millisecond), each with its stable Message-ID for receivers
    to drop. A session factory bound to one connection (a test's rolled-back
    transaction) must not be used from two threads: then each acceptance is committed
    inline, before the next message."""

    def __init__(self, session_factory: sessionmaker[Session], owner: str) -> None:
        self.owner = owner
        self.error: BaseException | None = None
        self._factory = session_factory
        self._queue: queue.SimpleQueue[tuple[int, str] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._inline: Session | None = None
        if isinstance(session_factory.kw.get("bind"), Engine):
            self._thread = threading.Thread(target=self._run, name="digests-sent-log",
                                            daemon=True)
            self._thread.start()
        else:
            self._inline = session_factory()

    def add(self, digest_id: int, subject: str) -> None:
        if self.error is not None:
            raise RecordingFailed("could not record sent digests") from self.error
        if self._inline is not None:
            self._record(self._inline, [(digest_id, subject)])
        else:
            self._queue.put((digest_id, subject))

    def close(self) -> None:
        """Wait until every acceptance handed over is committed."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
        if self._inline is not None:
            self._inline.close()
        if self.error is not None:
            raise RecordingFailed("could not record sent digests") from self.error

    def _run(self) -> None:
        # A plain Core connection: this thread does one small UPDATE per commit, and
        # the ORM session's bookkeeping would double its cost.
        connection = self._factory.kw["bind"].connect()
        try:
            while True:
                batch = [self._queue.get()]
                while True:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                accepted = [item for item in batch if item is not None]
                if accepted:
                    with connection.begin():
                        self._recorded(repo.mark_sent(
                            connection, accepted, owner=self.owner, at=utc_now()
                        ), accepted)
                if None in batch:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the sender
            log.exception("recording sent digests failed")
            self.error = exc
        finally:
            connection.close()

    def _record(self, session: Session, accepted: list[tuple[int, str]]) -> None:
        with session.begin():
            kept = repo.mark_sent(session, accepted, owner=self.owner, at=utc_now())
        self._recorded(kept, accepted)

    @staticmethod
    def _recorded(kept: int, accepted: list[tuple[int, str]]) -> None:
        if kept < len(accepted):
            log.warning("%d digests were sent after their lease expired", len(accepted) - kept)


class RecordingFailed(Exception):
    """Accepted digests could not be recorded as sent (their leases expire, and they go
    out again with the same Message-ID)."""
