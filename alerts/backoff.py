"""The one backoff rule: how long to wait before trying again after failures in a row.

Used for a request retried inline (alerts.sources.http), a source polled again after
failed polls (alerts.polling.due) and a mail retried after a temporary refusal
(alerts.mail.outbox):

    delay = min(base * 2**failures_before, cap)      exponential, capped
    delay *= uniform(0.5, 1.0)                       only with `jitter`
    delay = max(delay, retry_after)                  never before the server asked

`failures_before` counts the failures before the one being answered: the first retry
waits `base`, the next `2 * base`, and so on. Jitter spreads the retries of many
clients hitting one upstream at once; it is left to callers whose schedule is not
observable (an inline HTTP retry), so that a source's next poll and a mail's retry
stay exact. A Retry-After is the server's word and is never cut by the cap.
"""

from __future__ import annotations

from collections.abc import Callable

#: Beyond this exponent every practical cap is reached; it keeps 2**n a small int.
_MAX_EXPONENT = 30


def backoff_seconds(
    failures_before: int,
    *,
    base: float,
    cap: float | None = None,
    retry_after: float | None = None,
    jitter: Callable[[], float] | None = None,
) -> float:
    """Seconds to wait before the next attempt (see the module doc). `jitter` returns a
    number in [0, 1) (`random.random`); the delay is scaled into [50 %, 100 %] of itself."""
    if failures_before < 0:
        raise ValueError(f"failures_before must be >= 0, not {failures_before}")
    delay = base * 2 ** min(failures_before, _MAX_EXPONENT)
    if cap is not None:
        delay = min(delay, cap)
    if jitter is not None:
        delay *= 0.5 + jitter() / 2
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
