"""UpstreamClient's `max_bytes`: a body is refused while it downloads, by its decoded size,
and a body under the cap reads exactly as without one; retries are not affected."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import pytest

from alerts.sources.base import RetryLater, SourceError
from alerts.sources.http import UpstreamClient

URL = "http://upstream.test/data"
CHUNK = 1024


class CountingStream(httpx.AsyncByteStream):
    """A body sent chunk by chunk, counting what the client actually pulled."""

    def __init__(self, chunks: Sequence[bytes]) -> None:
        self.chunks = list(chunks)
        self.sent = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.sent += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        self.closed = True

    @property
    def total(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)


Answer = Callable[[], httpx.Response]


def fetch(answers: Sequence[Answer], **options: Any) -> tuple[httpx.Response, int]:
    """GET `URL` through a real client (no backoff); the answers are used in turn.
    Returns the response and the number of requests sent."""
    pending = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        return pending.pop(0)()

    async def go() -> tuple[httpx.Response, int]:
        transport = httpx.MockTransport(handler)
        async with UpstreamClient(transport=transport, backoff_base=0, max_retries=2) as client:
            response = await client.request("GET", URL, what="test fetch", **options)
            return response, client.requests_sent

    return asyncio.run(go())


def streamed(stream: CountingStream, status: int = 200, **headers: str) -> Answer:
    return lambda: httpx.Response(status, headers=headers, stream=stream)


def plain(content: bytes, status: int = 200, **headers: str) -> Answer:
    return lambda: httpx.Response(status, headers=headers, content=content)


def test_a_body_over_the_cap_is_refused_before_it_is_read_to_the_end() -> None:
    stream = CountingStream([b"x" * CHUNK] * 1000)  # 1 MB, no Content-Length

    with pytest.raises(SourceError) as caught:
        fetch([streamed(stream)], max_bytes=10 * CHUNK)

    assert str(caught.value) == "test fetch: body over 10,240 bytes"
    assert stream.sent == 11 * CHUNK  # stopped at the first chunk past the cap
    assert stream.sent < stream.total
    assert stream.closed


def test_a_declared_length_over_the_cap_is_refused_unread() -> None:
    stream = CountingStream([b"x" * CHUNK] * 20)

    with pytest.raises(SourceError, match=r"^test fetch: body over 10,240 bytes \(Content-Length"):
        fetch([streamed(stream, **{"Content-Length": str(20 * CHUNK)})], max_bytes=10 * CHUNK)

    assert stream.sent == 0
    assert stream.closed


def test_a_gzip_bomb_is_refused_by_its_decoded_size() -> None:
    decoded = b"\0" * (4 * 1024 * 1024)
    compressed = gzip.compress(decoded)
    assert len(compressed) < 64 * 1024  # the wire size alone would pass the cap
    stream = CountingStream([compressed[i : i + CHUNK] for i in range(0, len(compressed), CHUNK)])

    with pytest.raises(SourceError, match=r"^test fetch: body over 65,536 bytes$"):
        fetch([streamed(stream, **{"Content-Encoding": "gzip"})], max_bytes=64 * 1024)

    assert stream.sent < len(compressed)
    assert stream.closed


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        pytest.param("Ünïcode body\n".encode() * 100, {"Content-Type": "text/plain; charset=utf-8"},
                     id="plain"),
        pytest.param(gzip.compress(b"<feed>" + b"a" * 5000 + b"</feed>"),
                     {"Content-Encoding": "gzip", "Content-Type": "application/xml"}, id="gzip"),
        pytest.param(b"", {}, id="empty"),
    ],
)
def test_under_the_cap_a_response_reads_as_without_one(
    content: bytes, headers: dict[str, str]
) -> None:
    uncapped, _ = fetch([plain(content, **headers)])
    capped, _ = fetch([plain(content, **headers)], max_bytes=len(uncapped.content))

    assert capped.status_code == uncapped.status_code == 200
    assert capped.content == uncapped.content
    assert capped.text == uncapped.text
    assert capped.headers == uncapped.headers
    assert capped.is_closed


@pytest.mark.parametrize(
    ("first", "requests"),
    [
        pytest.param(plain(b"busy", 503), 2, id="503"),
        pytest.param(plain(b"<html>" + b"x" * 100_000, 503), 2, id="503-with-a-body-over-the-cap"),
        pytest.param(plain(b"slow down", 429, **{"Retry-After": "0"}), 2, id="429-retry-after"),
    ],
)
def test_retries_are_unaffected_by_the_cap(first: Answer, requests: int) -> None:
    response, sent = fetch([first, plain(b"fine")], max_bytes=1000)

    assert (response.status_code, response.content, sent) == (200, b"fine", requests)


def test_a_cap_does_not_stop_the_client_giving_up() -> None:
    with pytest.raises(RetryLater, match="gave up after 3 attempts"):
        fetch([plain(b"busy", 503)] * 3, max_bytes=1000)


def test_an_error_status_with_a_huge_body_is_reported_with_the_start_of_it() -> None:
    with pytest.raises(SourceError, match=r"^test fetch: HTTP 404 nope nope") as caught:
        fetch([plain(b"nope " * 100_000, 404)], max_bytes=1000)

    assert len(str(caught.value)) < 300


def test_an_ok_status_of_the_caller_with_a_body_over_the_cap_is_refused() -> None:
    # The RSS adapter takes 410 and redirects itself; their bodies count too.
    with pytest.raises(SourceError, match="body over 1,000 bytes"):
        fetch([plain(b"x" * 2000, 410)], max_bytes=1000, ok_statuses=frozenset({200, 410}))
