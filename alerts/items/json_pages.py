"""The items API's page on PostgreSQL, read inside the event loop as ready JSON.

`GET /api/v1/targets/{slug}/items` is the busiest read of the API. On PostgreSQL its
page is one prepared statement (`repository.target_items_json_sql`) on a pooled asyncio
connection (`db.async_pool`), and PostgreSQL writes the page's JSON itself; the process
adds the cursor and passes the bytes on. Against the generic path (a worker thread, an
SQLAlchemy session, rows turned into values and written by orjson) that removes the
thread hop, the session and the per-row work: what is left is FastAPI's own handling of
the request. The answer is the same `ItemPage` (a test holds the two paths equal).

SQLite, and an app whose sessions are injected (tests bound to one connection), use the
generic path, `service.list_target_items`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg.adapt import Loader
from sqlalchemy import Engine

from alerts.errors import NotFound
from alerts.items import repository
from alerts.pagination import encode_cursor
from db.async_pool import AsyncPool, libpq_conninfo


class _RawText(Loader):
    """Text columns as the bytes PostgreSQL sent (UTF-8): the page is passed on, not
    decoded into a str first."""

    def load(self, data: Any) -> bytes:
        return bytes(data)


def _configure(connection: psycopg.AsyncConnection) -> None:
    connection.adapters.register_loader("text", _RawText)


class JsonPages:
    """Pages of a target's items as JSON bytes, from PostgreSQL."""

    def __init__(self, pool: AsyncPool) -> None:
        self.pool = pool

    @classmethod
    def for_engine(cls, engine: Engine) -> JsonPages | None:
        """The reader for `engine`'s database; None unless it is PostgreSQL."""
        if engine.dialect.name != "postgresql":
            return None
        return cls(AsyncPool(libpq_conninfo(engine.url), configure=_configure))

    async def page(
        self,
        slug: str,
        *,
        since: datetime | None,
        kind: str | None,
        after: tuple[datetime, int] | None,
        limit: int,
    ) -> bytes:
        """The `ItemPage` JSON of `service.list_target_items` for the same arguments (the
        cursor already decoded into `after`). NotFound for an unknown slug."""
        sql = repository.target_items_json_sql(
            since is not None, kind is not None, after is not None, limit
        )
        params: dict[str, Any] = {"slug": slug}
        if since is not None:
            params["since"] = since
        if kind is not None:
            params["kind"] = kind
        if after is not None:
            params["after_at"], params["after_id"] = after

        async def read(connection: psycopg.AsyncConnection) -> tuple[Any, ...] | None:
            cursor = await connection.execute(sql, params, prepare=True)
            return await cursor.fetchone()

        row = await self.pool.run(read)
        assert row is not None  # an aggregate without GROUP BY: always one row
        target_id, data, last_at, last_id = row
        if target_id is None:
            raise NotFound(f"unknown target {slug!r}")
        next_cursor = encode_cursor(last_at, last_id) if last_id is not None else None
        return b'{"data":' + data + b',"next_cursor":' + orjson.dumps(next_cursor) + b"}"

    async def close(self) -> None:
        await self.pool.close()

