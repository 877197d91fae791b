"""A loopback TCP proxy a test can cut and restore: the database "unreachable for a
while" without touching the database server.

    with TcpProxy("127.0.0.1", 5432) as proxy:
        url = make_url(db_url).set(host="127.0.0.1", port=proxy.port)
        ...
        proxy.cut()      # every open connection dropped, new ones closed at once
        proxy.restore()  # connections pass again

While cut, the proxy still accepts connections and closes them at once, so a client
sees the database go away (a reset or an early EOF) rather than hang; that is how a
restarting or failing-over database looks from the application.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.connections = 0  # accepted while up, for tests to see traffic went through
        self._up = True
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy",
                                        daemon=True)

    # -- life cycle --------------------------------------------------------------------

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0), self._loop
        ).result()
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    # -- the switch --------------------------------------------------------------------

    def cut(self) -> None:
        """Drop every open connection; until `restore`, close new ones at once."""
        asyncio.run_coroutine_threadsafe(self._cut(), self._loop).result()

    def restore(self) -> None:
        self._up = True

    # -- inside the proxy's loop ---------------------------------------------------------

    async def _cut(self) -> None:
        self._up = False
        for writer in list(self._writers):
            _abort(writer)

    async def _close(self) -> None:
        await self._cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._up:
            _abort(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _abort(writer)
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for end in (writer, up_writer):
                self._writers.discard(end)
                _abort(end)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    _abort(writer)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close at once, without waiting for buffered data: a connection that broke."""
    transport = writer.transport
    if not transport.is_closing():
        transport.abort()
