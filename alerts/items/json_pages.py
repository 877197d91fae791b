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

import re
from datetime import datetime
from typing import Any, Literal, overload
from urllib.parse import parse_qsl

import orjson
import psycopg
from psycopg.adapt import Loader
from sqlalchemy import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

from alerts.errors import NotFound, Unprocessable
from alerts.items import repository, service
from alerts.pagination import decode_cursor, encode_cursor, parse_moment
from alerts.sources.base import ItemKind
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

    @overload
    async def page(
        self, slug: str, *, since: datetime | None, kind: str | None,
        after: tuple[datetime, int] | None, limit: int, missing_ok: Literal[False] = False,
    ) -> bytes: ...

    @overload
    async def page(
        self, slug: str, *, since: datetime | None, kind: str | None,
        after: tuple[datetime, int] | None, limit: int, missing_ok: Literal[True],
    ) -> bytes | None: ...

    async def page(
        self,
        slug: str,
        *,
        since: datetime | None,
        kind: str | None,
        after: tuple[datetime, int] | None,
        limit: int,
        missing_ok: bool = False,
    ) -> bytes | None:
        """The `ItemPage` JSON of `service.list_target_items` for the same arguments (the
        cursor already decoded into `after`). NotFound for an unknown slug (None with
        `missing_ok`)."""
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
            if missing_ok:
                return None
            raise NotFound(f"unknown target {slug!r}")
        next_cursor = encode_cursor(last_at, last_id) if last_id is not None else None
        return b'{"data":' + data + b',"next_cursor":' + orjson.dumps(next_cursor) + b"}"

    async def close(self) -> None:
        await self.pool.close()



#: The route's path; `{slug}` is any run of characters without a slash, as Starlette's.
_ITEMS_PATH = re.compile(r"/api/v1/targets/([^/]+)/items")
_LIMIT = re.compile(r"[1-9][0-9]{0,2}")
_KINDS = frozenset(str(kind) for kind in ItemKind)
_HEADERS = [(b"content-type", b"application/json")]


class ItemListFastPath:
    """Serve plain requests for the item list before FastAPI's routing (pure ASGI).

    FastAPI's routing, dependency solving and parameter validation cost this route
    about as much as everything else in the request. A GET whose query holds only
    the route's own parameters, each once and in its plain form (`limit` as digits
    within bounds, `kind` one of the kinds, a `since` and `cursor` that parse), is
    answered here with `JsonPages.page`, byte for byte what the route answers. Anything
    else — an unknown target, an odd or bad parameter, HEAD, a trailing slash — goes on
    to the route, which gives the documented answers and errors. The route also stays
    what OpenAPI documents. Installed inside the security headers and the body limit."""

    def __init__(self, app: ASGIApp, pages: JsonPages) -> None:
        self.app = app
        self.pages = pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            match = _ITEMS_PATH.fullmatch(scope["path"])
            if match is not None:
                query = _plain_query(scope["query_string"])
                if query is not None:
                    body = await self.pages.page(match.group(1), **query, missing_ok=True)
                    if body is not None:
                        await send({
                            "type": "http.response.start", "status": 200,
                            "headers": [(b"content-length", str(len(body)).encode()),
                                        *_HEADERS],
                        })
                        await send({"type": "http.response.body", "body": body})
                        return
        await self.app(scope, receive, send)


def _plain_query(query_string: bytes) -> dict[str, Any] | None:
    """The page arguments of a query in its plain form (see `ItemListFastPath`); None
    for anything else."""
    query: dict[str, Any] = {"since": None, "kind": None, "after": None,
                             "limit": service.DEFAULT_PAGE_SIZE}
    seen: set[str] = set()
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name in seen or not value:
            return None
        seen.add(name)
        if name == "limit":
            if _LIMIT.fullmatch(value) is None or int(value) > service.MAX_PAGE_SIZE:
                return None
            query["limit"] = int(value)
        elif name == "kind":
            if value not in _KINDS:
                return None
            query["kind"] = value
        elif name == "since":
            since = parse_moment(value, date_only_ok=True) if len(value) <= 64 else None
            if since is None:
                return None
            query["since"] = since
        elif name == "cursor":
            try:
                query["after"] = decode_cursor(value, datetime, int)
            except Unprocessable:
                return None
        else:
            return None
    return query
