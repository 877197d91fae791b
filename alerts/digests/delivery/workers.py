"""Worker processes for large runs: they load and render digests, and plan chunks of
subscribers, while the sending process keeps one SMTP connection busy.

Rendering costs about as much as sending (and planning is the other big cost), so the
sending process hands both out: a worker gets digest ids, reads them through a
connection of its own and hands back finished messages, or gets a planning chunk and
writes it. `Workers.submit_render` / `submit_plan` return Futures either way; inline
(small runs, tests) they run at once in the caller's process, through its session
factory. Workers are spawned processes: a fork would copy open database connections and
the SMTP threads of the parent.

A worker ends when its parent does, however the parent ended: a killed scheduler must
not leave workers behind (holding database connections, waiting forever on a task
queue whose other end they hold themselves). On Linux the kernel sends the worker
SIGKILL when its parent dies (`PR_SET_PDEATHSIG`); everywhere, a thread of the worker
waits on multiprocessing's pipe to the parent and ends the worker when it closes.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime
from types import TracebackType
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.digests.delivery.render import RenderedBatch, render_batch
from alerts.digests.planning import PlanStep, SlotCache, plan_next
from alerts.templating import environment
from db.session import make_engine, make_sessionmaker


def reader_engine(url: str) -> Engine:
    """An engine that only reads. On SQLite it leaves transactions to the driver (reads
    take no lock; WAL lets them run beside the one writer), where the application's
    engine takes the write lock at BEGIN: a reader must not."""
    if not url.startswith("sqlite"):
        return make_engine(url, pool_size=1)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA query_only=ON")

    return engine


class _WorkerState:
    """What a worker process keeps between tasks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.reader = sessionmaker(reader_engine(settings.database_url))
        self._writer: sessionmaker[Session] | None = None
        self.slots: dict[datetime, SlotCache] = {}

    @property
    def writer(self) -> sessionmaker[Session]:
        if self._writer is None:
            self._writer = make_sessionmaker(make_engine(self.settings.database_url))
        return self._writer


_state: _WorkerState | None = None

#: prctl(2) option: the signal this process gets when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """End this (spawned) process as soon as its parent `parent_pid` is gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before the line above
            os._exit(1)
    watch_parent()


def watch_parent() -> None:
    """The portable way: a daemon thread that waits until multiprocessing's pipe to
    the parent closes (the parent's end closes with it, however it died), then ends
    the process at once (a worker owns nothing that needs a clean exit)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def _wait() -> None:
        parent.join()
        os._exit(1)

    threading.Thread(target=_wait, name="watch-parent", daemon=True).start()


def _init_worker(settings: Settings, parent_pid: int) -> None:
    global _state
    die_with_parent(parent_pid)
    _state = _WorkerState(settings)


def _warm_up() -> None:
    env = environment()
    for name in ("digest.txt", "digest.html", "_section.txt", "_section.html"):
        env.get_template(f"digest/{name}")


def _render_task(digest_ids: Sequence[int], date: datetime) -> RenderedBatch:
    assert _state is not None, "worker not initialised"
    with _state.reader() as session:
        return render_batch(session, _state.settings, digest_ids, date=date)


def _plan_task(arguments: dict[str, Any]) -> PlanStep:
    assert _state is not None, "worker not initialised"
    slots = _state.slots.setdefault(arguments["now"], {})
    return plan_next(_state.writer, slots=slots, **arguments)


class Workers:
    """Loads and renders digests, and plans chunks, in worker processes once
    `start_pool` was called, inline before."""

    def __init__(
        self, settings: Settings, workers: int, session_factory: sessionmaker[Session]
    ) -> None:
        self._settings = settings
        self._workers = workers
        self._session_factory = session_factory
        self._pool: ProcessPoolExecutor | None = None

    @property
    def pooled(self) -> bool:
        return self._pool is not None

    @property
    def count(self) -> int:
        return self._workers

    def start_pool(self) -> None:
        """Start the worker processes (they import and warm up in the background)."""
        if self._pool is not None or self._workers < 1:
            return
        self._settings.signing_key()  # generate a development key once, before workers read it
        self._pool = ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self._settings, os.getpid()),
        )
        for _ in range(self._workers):
            self._pool.submit(_warm_up)

    def submit_render(self, digest_ids: Sequence[int], date: datetime) -> Future[RenderedBatch]:
        if self._pool is not None:
            return self._pool.submit(_render_task, list(digest_ids), date)
        future: Future[RenderedBatch] = Future()
        try:
            with self._session_factory() as session:
                future.set_result(render_batch(session, self._settings, digest_ids, date=date))
        except Exception as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
        return future

    def submit_plan(self, arguments: dict[str, Any]) -> Future[PlanStep]:
        """Plan a chunk in a worker (pooled only: inline, the planner steps itself)."""
        assert self._pool is not None, "planning is handed out to started workers only"
        return self._pool.submit(_plan_task, arguments)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Workers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
