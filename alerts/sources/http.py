"""The HTTP client every adapter shares: timeouts, a User-Agent naming the product,
per-host rate limits, retries with exponential backoff that honour Retry-After, and an
optional cap on a body's size enforced while it downloads.

One `UpstreamClient` wraps one `httpx.AsyncClient` (connection pooling across a poll).
Tests hand in an `httpx.MockTransport` or point the base URLs at a loopback server.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import random
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ParamSpec

import httpx

from alerts import __version__
from alerts.backoff import backoff_seconds
from alerts.sources.base import PollResult, RetryLater, SourceError

log = logging.getLogger(__name__)

#: A Retry-After longer than this is not slept through: the poll ends with RetryLater and
#: the scheduler comes back after it.
MAX_INLINE_WAIT_SECONDS = 30.0
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


#: Requests sent by the current poll. Polls of different sources run side by side on one
#: client, so a per-client total would blur them; tasks inherit this variable instead.
_request_counter: ContextVar[list[int] | None] = ContextVar("request_counter", default=None)


@contextmanager
def counting_requests() -> Iterator[list[int]]:
    """Count the requests (retries included) sent inside this block: `counter[0]`."""
    counter = [0]
    token = _request_counter.set(counter)
    try:
        yield counter
    finally:
        _request_counter.reset(token)


P = ParamSpec("P")


def counts_requests(
    poll: Callable[P, Coroutine[Any, Any, PollResult]],
) -> Callable[P, Coroutine[Any, Any, PollResult]]:
    """Decorate an adapter's `poll` so its result reports the requests it sent (retries
    included), counted per poll even when other sources' polls share the client."""

    @functools.wraps(poll)
    async def counted(*args: P.args, **kwargs: P.kwargs) -> PollResult:
        with counting_requests() as sent:
            result = await poll(*args, **kwargs)
        return replace(result, requests=sent[0])

    return counted


def host_key(url: str | httpx.URL) -> str:
    """The rate-limit key of a URL: host and port, so two loopback fakes stay apart."""
    parsed = httpx.URL(url)
    return f"{parsed.host}:{parsed.port or (443 if parsed.scheme == 'https' else 80)}"


def user_agent(public_url: str | None = None) -> str:
    contact = f"; +{public_url}" if public_url else ""
    return f"TargetAlerts/{__version__} (self-hosted alert service{contact})"


class RateLimiter:
    """At most `per_second` request starts per host, spaced evenly, across tasks."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass
class UpstreamClient:
    """Shared HTTP plumbing for adapters. Use as an async context manager."""

    timeout: float = 30.0
    max_retries: int = 3
    backoff_base: float = 1.0
    #: Requests per second allowed per `host_key`; hosts not listed are unlimited.
    host_rates: Mapping[str, float] = field(default_factory=dict)
    transport: httpx.AsyncBaseTransport | None = None
    agent: str = field(default_factory=user_agent)
    max_connections: int = 64
    #: Count of requests sent (attempts included), for reports and benchmarks.
    requests_sent: int = 0

    def __post_init__(self) -> None:
        self._limiters = {host: RateLimiter(rate) for host, rate in self.host_rates.items()}
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> UpstreamClient:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout, connect=min(10.0, self.timeout)),
            headers={"User-Agent": self.agent},
            transport=self.transport,
            follow_redirects=False,
            limits=httpx.Limits(
                max_connections=self.max_connections,
                max_keepalive_connections=self.max_connections,
            ),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        ok_statuses: frozenset[int] = frozenset({200}),
        max_bytes: int | None = None,
        auth: tuple[str, str] | None = None,
    ) -> httpx.Response:
        """Send a request, retrying 429/5xx/timeouts with backoff.

        Returns a response whose status is in `ok_statuses`, its body read. Raises
        RetryLater when the upstream stays unavailable (or asks for a long wait),
        SourceError for any other status. `what` names the call in error messages
        ("pubmed esearch").

        With `max_bytes`, the body is streamed and the download stops with SourceError as
        soon as its decoded size (after Content-Encoding, so a gzip bomb counts at its
        real size) passes the cap; the body is never held in full. A body over the cap is
        not retried: the same request would bring the same body.

        `auth` (user, password) goes as HTTP Basic credentials, so a URL handed in never
        needs to carry them (httpx would log it, responses would repeat it).
        """
        if self._client is None:
            raise RuntimeError("UpstreamClient used outside 'async with'")
        limiter = self._limiters.get(host_key(url))
        attempt = 0
        while True:
            if limiter is not None:
                await limiter.wait()
            self.requests_sent += 1
            counter = _request_counter.get()
            if counter is not None:
                counter[0] += 1
            try:
                if max_bytes is None:
                    response = await self._client.request(
                        method, url, params=params, data=data, headers=headers,
                        auth=auth or httpx.USE_CLIENT_DEFAULT,
                    )
                else:
                    response = await self._send_capped(
                        method, url, params, data, headers, ok_statuses, max_bytes, what, auth
                    )
            except httpx.TimeoutException:
                problem, wait = f"{what}: timed out after {self.timeout:g} s", None
            except httpx.TransportError as exc:
                problem, wait = f"{what}: connection failed ({type(exc).__name__})", None
            else:
                if response.status_code in ok_statuses:
                    return response
                if response.status_code not in RETRY_STATUSES:
                    raise SourceError(
                        f"{what}: HTTP {response.status_code} {_short(response.text)}"
                    )
                wait = parse_retry_after(response.headers.get("Retry-After"))
                problem = f"{what}: HTTP {response.status_code}"
                if wait is not None and wait > MAX_INLINE_WAIT_SECONDS:
                    raise RetryLater(f"{problem}, Retry-After {wait:.0f} s", seconds=wait)
            if attempt >= self.max_retries:
                raise RetryLater(
                    f"{problem} (gave up after {attempt + 1} attempts)",
                    seconds=max(wait or 0.0, 60.0),
                )
            # Jittered (many pollers may retry one upstream at once) and never longer
            # than an inline wait may be; a Retry-After at most that long is honoured.
            delay = backoff_seconds(attempt, base=self.backoff_base,
                                    cap=MAX_INLINE_WAIT_SECONDS, retry_after=wait,
                                    jitter=random.random)
            log.info("upstream.retry what=%s attempt=%d delay=%.2f", what, attempt + 1, delay)
            await asyncio.sleep(delay)
            attempt += 1

    async def _send_capped(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        data: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        ok_statuses: frozenset[int],
        max_bytes: int,
        what: str,
        auth: tuple[str, str] | None,
    ) -> httpx.Response:
        """One attempt, its body streamed under `max_bytes`; the response comes back read
        (`.content`, `.text` work as after a plain request) and closed."""
        assert self._client is not None
        request = self._client.build_request(
            method, url, params=params, data=data, headers=headers
        )
        response = await self._client.send(
            request, stream=True, auth=auth or httpx.USE_CLIENT_DEFAULT
        )
        try:
            # A body we only quote in an error message or skip before a retry is cut at
            # the cap instead of failing: a huge 503 page must stay a retryable 503.
            wanted = response.status_code in ok_statuses
            await _read_capped(response, max_bytes, what=what, strict=wanted)
        finally:
            await response.aclose()
        return response


async def _read_capped(
    response: httpx.Response, max_bytes: int, *, what: str, strict: bool
) -> None:
    """Read a streamed response's decoded body, at most `max_bytes` of it.

    Past the cap: SourceError when `strict`, else the body is kept cut at the cap. The
    read body is stored where `Response.aread()` stores it, so the response reads as a
    non-streamed one; httpx has no public way to read a stream partially and keep it.
    """
    declared = response.headers.get("Content-Length", "")
    encoded = response.headers.get("Content-Encoding", "identity").strip().lower()
    if strict and encoded == "identity" and declared.isdigit() and int(declared) > max_bytes:
        raise SourceError(f"{what}: body over {max_bytes:,} bytes (Content-Length {declared})")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            if strict:
                raise SourceError(f"{what}: body over {max_bytes:,} bytes")
            chunks.append(chunk[: len(chunk) - (size - max_bytes)])
            break
        chunks.append(chunk)
    response._content = b"".join(chunks)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
