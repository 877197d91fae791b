"""A small pool of asyncio psycopg connections to PostgreSQL, for reads served inside
the event loop (no worker thread, no ORM): the hot read paths of the API.

Connections are in autocommit (a one-statement read needs no BEGIN/COMMIT), opened on
demand up to `max_size`, and reused; a request waits for a free one beyond that. There
is no ping before each use: a reused connection that fails with an OperationalError
(the server restarted, the connection was cut) is dropped and the work retried once on
a fresh connection, which costs nothing while all is well.

The pool belongs to the event loop that first used it; used from another loop (a
test client that starts one per request) it starts over with new connections.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
from sqlalchemy.engine import URL

T = TypeVar("T")

#: Connections per process for these reads: a page takes well under a millisecond of
#: the server's time, so a few connections serve dozens of concurrent requests.
DEFAULT_MAX_SIZE = 8


def libpq_conninfo(url: URL) -> str:
    """The libpq URI of an SQLAlchemy PostgreSQL URL (`postgresql+psycopg://...`)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class AsyncPool:
    def __init__(
        self,
        conninfo: str,
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        configure: Callable[[psycopg.AsyncConnection], None] | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.max_size = max_size
        self._configure = configure
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[psycopg.AsyncConnection] = []
        self._slots = asyncio.Semaphore(max_size)

    async def run(self, work: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
        """`work(connection)` on a pooled connection; retried once on a fresh connection
        when a reused one turns out to be broken."""
        self._bind_loop()
        async with self._slots:
            connection = self._idle.pop() if self._idle else None
            if connection is not None:
                try:
                    result = await work(connection)
                except psycopg.OperationalError:
                    await _close(connection)
                    connection = None
                else:
                    await self._release(connection)
                    return result
            connection = await self._connect()
            try:
                result = await work(connection)
            finally:
                await self._release(connection)
            return result

    async def close(self) -> None:
        """Close the idle connections (those in use are closed when handed back)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            await _close(connection)

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # Connections and the semaphore of another (finished) loop cannot be awaited
            # here; they are left to be collected.
            self._loop = loop
            self._idle = []
            self._slots = asyncio.Semaphore(self.max_size)

    async def _connect(self) -> psycopg.AsyncConnection:
        connection = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        if self._configure is not None:
            self._configure(connection)
        return connection

    async def _release(self, connection: psycopg.AsyncConnection) -> None:
        """Keep a connection that is idle and healthy; anything else is closed."""
        if (
            not connection.closed
            and connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            and len(self._idle) < self.max_size
        ):
            self._idle.append(connection)
        else:
            await _close(connection)


async def _close(connection: psycopg.AsyncConnection) -> None:
    with contextlib.suppress(psycopg.Error):
        await connection.close()
