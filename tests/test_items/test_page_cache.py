"""The item list's kept pages (`alerts.items.json_pages`): the cache's bounds, and the
fingerprint read shared by concurrent requests for one page, never by a request that
arrived after the read was sent. A stand-in pool plays the database, so each moment is
under the test's control (the real reads are in test_json_pages.py, on PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from alerts.items.json_pages import JsonPages, PageCache

KEY = ("her2-exon20", None, None, None, 50)
BODY = b'{"data":[],"next_cursor":null}'


class Database:
    """A pool whose connections answer the fingerprint read with `fingerprint`; reads
    wait for `connections` (a free connection) and `answers` (the server's reply)."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.connections = asyncio.Event()
        self.answers = asyncio.Event()
        self.fingerprint = b"fp"
        self.fail: Exception | None = None

    async def run(self, work: Callable[[Any], Awaitable[Any]]) -> Any:
        await self.connections.wait()
        if self.fail is not None:
            raise self.fail
        return await work(self)

    async def execute(self, sql: str, _params: Any, prepare: bool) -> Database:
        self.sent.append(sql)
        return self

    async def fetchone(self) -> tuple[Any, ...]:
        await self.answers.wait()
        if "json_agg" in self.sent[-1]:  # the page: empty, no further page
            return (1, b"[]", None, None, self.fingerprint)
        return (1, self.fingerprint)


def pages_with_a_kept_page(database: Database) -> JsonPages:
    pages = JsonPages(database)  # type: ignore[arg-type]
    pages.cache.put(KEY, "fp", BODY)
    return pages


def request(pages: JsonPages) -> asyncio.Task[bytes]:
    return asyncio.ensure_future(
        pages.page("her2-exon20", since=None, kind=None, after=None, limit=50)
    )


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_requests_waiting_together_share_one_fingerprint_read() -> None:
    async def scenario() -> None:
        database = Database()
        pages = pages_with_a_kept_page(database)
        waiting = [request(pages) for _ in range(5)]
        await settle()  # all five arrived; no connection free yet
        database.connections.set()
        database.answers.set()
        assert await asyncio.gather(*waiting) == [BODY] * 5
        assert len(database.sent) == 1

    asyncio.run(scenario())


def test_a_request_after_the_read_was_sent_waits_for_a_read_of_its_own() -> None:
    async def scenario() -> None:
        database = Database()
        pages = pages_with_a_kept_page(database)
        database.connections.set()
        first = request(pages)
        await settle()
        assert len(database.sent) == 1  # sent; its answer not back yet
        later = request(pages)
        await settle()
        assert len(database.sent) == 2  # not the first read: it may predate this request
        database.answers.set()
        assert await asyncio.gather(first, later) == [BODY, BODY]

    asyncio.run(scenario())


def test_a_read_that_fails_before_it_is_sent_answers_no_later_request() -> None:
    async def scenario() -> None:
        database = Database()
        pages = pages_with_a_kept_page(database)
        database.fail = OSError("no connection")
        waiting = [request(pages) for _ in range(2)]
        await settle()
        database.connections.set()
        for outcome in await asyncio.gather(*waiting, return_exceptions=True):
            assert isinstance(outcome, OSError)
        database.fail = None
        database.answers.set()
        assert await request(pages) == BODY
        assert len(database.sent) == 1

    asyncio.run(scenario())


def test_a_waiter_going_away_does_not_cancel_the_read_for_the_others() -> None:
    async def scenario() -> None:
        database = Database()
        pages = pages_with_a_kept_page(database)
        gone, staying = request(pages), request(pages)
        await settle()
        gone.cancel()
        database.connections.set()
        database.answers.set()
        assert await staying == BODY

    asyncio.run(scenario())


def test_a_changed_fingerprint_reads_the_page_again() -> None:
    async def scenario() -> None:
        database = Database()
        pages = pages_with_a_kept_page(database)
        database.fingerprint = b"changed"
        database.connections.set()
        database.answers.set()
        assert await request(pages) == BODY
        assert len(database.sent) == 2 and "json_agg" in database.sent[1]
        assert pages.cache.get(KEY) == ("changed", BODY)

    asyncio.run(scenario())


def test_the_page_cache_keeps_a_byte_budget_and_an_age_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = PageCache(max_bytes=10, max_seconds=60)
    other = ("her2-exon20", None, None, None, 49)
    cache.put(KEY, "a", b"12345")
    cache.put(other, "b", b"123456")  # 11 bytes: the least recently used one goes
    assert cache.get(KEY) is None and cache.get(other) == ("b", b"123456")
    cache.put(KEY, "c", b"x" * 11)  # larger than the budget: not kept
    assert cache.get(KEY) is None and cache.get(other) == ("b", b"123456")
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 61)
    assert cache.get(other) is None
