"""The items API's page on PostgreSQL, read inside the event loop as ready JSON.

`GET /api/v1/targets/{slug}/items` is the busiest read of the API. On PostgreSQL:

- its page is one prepared statement (`repository.target_items_json_sql`) on a pooled
  asyncio connection (`db.async_pool`), and PostgreSQL writes the page's JSON itself;
  the process adds the cursor and passes the bytes on (no worker thread, no session,
  no per-row work). The answer is the same `ItemPage` as the generic path's (a test
  holds the two equal, page by page and error by error);
- a page already written is kept (`PageCache`) with the fingerprint of the row versions
  it was written from, and answered again only while a fresh read of that fingerprint
  (about a quarter of the page's cost) is equal: never stale;
- requests for one page that arrive together share one fingerprint read, never one
  sent before they arrived (`JsonPages._shared_check`);
- plain requests are answered before FastAPI's routing (`ItemListFastPath`); the
  route stays the documented one and answers everything else.

SQLite, and an app whose sessions are injected (tests bound to one connection), use the
generic path, `service.list_target_items`.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections import OrderedDict
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


#: Bytes of page bodies a process keeps (see `PageCache`), and how long one is kept.
CACHE_BYTES = 16 * 2**20
CACHE_SECONDS = 600.0

PageKey = tuple[str, datetime | None, str | None, tuple[datetime, int] | None, int]


class PageCache:
    """Pages already written, each with the fingerprint of the row versions it was
    written from (`repository.target_items_fingerprint_sql`), least recently used
    dropped beyond `max_bytes`, and none kept longer than `max_seconds`.

    A kept page is never answered on trust: each request reads the page's current
    fingerprint (the same rows as the page, from the same indexes, without writing
    any JSON) and the kept body is answered only when the two are equal, i.e. when no
    link, item or event of the page was written since; otherwise the page is read and
    written again. So a page is never stale: whatever is committed before the request's
    statement starts is in its answer, exactly as without the cache. (Row versions are
    transaction ids, which PostgreSQL reuses only after ~4 billion transactions; the
    age limit keeps an entry from living anywhere near that long.)"""

    def __init__(self, max_bytes: int = CACHE_BYTES, max_seconds: float = CACHE_SECONDS):
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self._entries: OrderedDict[PageKey, tuple[str, bytes, float]] = OrderedDict()
        self._bytes = 0

    def get(self, key: PageKey) -> tuple[str, bytes] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        fingerprint, body, stored = entry
        if time.monotonic() - stored > self.max_seconds:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return fingerprint, body

    def put(self, key: PageKey, fingerprint: str, body: bytes) -> None:
        if key in self._entries:
            self._drop(key)
        if len(body) > self.max_bytes:
            return
        self._entries[key] = (fingerprint, body, time.monotonic())
        self._bytes += len(body)
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: PageKey) -> None:
        _fingerprint, body, _stored = self._entries.pop(key)
        self._bytes -= len(body)


class JsonPages:
    """Pages of a target's items as JSON bytes, from PostgreSQL."""

    def __init__(self, pool: AsyncPool, cache: PageCache | None = None) -> None:
        self.pool = pool
        self.cache = cache if cache is not None else PageCache()
        #: Fingerprint reads not sent yet, by page (see `_shared_check`).
        self._checks: dict[PageKey, asyncio.Future[tuple[Any, ...]]] = {}

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
        `missing_ok`).

        A page kept by the `PageCache` costs one read of its fingerprint; a page not
        kept, or changed since, is read and written by PostgreSQL and kept."""
        filters = (since is not None, kind is not None, after is not None, limit)
        params = repository.target_items_params(slug, since=since, kind=kind, after=after)
        key: PageKey = (slug, since, kind, after, limit)
        kept = self.cache.get(key)
        if kept is not None:
            target_id, fingerprint = await self._shared_check(
                key, repository.target_items_fingerprint_sql(*filters), params
            )
            if target_id is None:
                self._missing(slug, missing_ok)
                return None
            if fingerprint.decode() == kept[0]:
                return kept[1]
        target_id, data, last_at, last_id, fingerprint = await self._one(
            repository.target_items_json_sql(*filters), params
        )
        if target_id is None:
            self._missing(slug, missing_ok)
            return None
        next_cursor = encode_cursor(last_at, last_id) if last_id is not None else None
        body = b'{"data":' + data + b',"next_cursor":' + orjson.dumps(next_cursor) + b"}"
        self.cache.put(key, fingerprint.decode(), body)
        return body

    async def _shared_check(
        self, key: PageKey, sql: str, params: dict[str, Any]
    ) -> tuple[Any, ...]:
        """The fingerprint read of the page `key`, shared by every request for that page
        that arrives before the read is sent ("single flight").

        Concurrent readers of one page mostly wait for a connection anyway; one read
        then answers them all. No request uses a read sent before it arrived: the read
        is taken off `_checks` at the moment it is sent, so its snapshot is always later
        than the arrival of every request it answers, as with a read of its own."""
        check = self._checks.get(key)
        if check is None:
            check = asyncio.ensure_future(self._one(sql, params, sending=key))
            self._checks[key] = check
            check.add_done_callback(functools.partial(self._check_done, key))
        # Shielded: one waiter going away (a closed connection) must not cancel the read
        # for the others.
        return await asyncio.shield(check)

    def _check_done(self, key: PageKey, check: asyncio.Future[tuple[Any, ...]]) -> None:
        """A read that failed before it was sent must not answer later arrivals."""
        if self._checks.get(key) is check:
            del self._checks[key]
        if not check.cancelled():
            check.exception()  # retrieved: each waiter has raised it already

    async def _one(
        self, sql: str, params: dict[str, Any], *, sending: PageKey | None = None
    ) -> tuple[Any, ...]:
        """The one row of `sql` (an aggregate without GROUP BY: always one row); with
        `sending`, that shared check stops taking waiters when the statement is sent."""

        async def read(connection: psycopg.AsyncConnection) -> tuple[Any, ...] | None:
            if sending is not None:
                self._checks.pop(sending, None)
            cursor = await connection.execute(sql, params, prepare=True)
            return await cursor.fetchone()

        row = await self.pool.run(read)
        assert row is not None
        return row

    def _missing(self, slug: str, missing_ok: bool) -> None:
        """NotFound for the unknown `slug`, unless `missing_ok`."""
        if not missing_ok:
            raise NotFound(f"unknown target {slug!r}")

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
