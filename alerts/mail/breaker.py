"""Telling a relay that refuses everything from an address that refuses mail.

A 550 for one address is that address's problem: its message fails and the address is
marked bounced, so nothing more is sent to it. But a relay that refuses everything (a
revoked login, a sender it no longer accepts, an exhausted quota answered with 5xx)
answers the same 550 for every address, and taking each at its word would mark every
subscriber bounced. So a sending run keeps its permanent refusals *held* until it knows
which case it is in:

- the relay accepts a message: it works, and the refusals held so far were about their
  addresses (`accepted` hands them back to be recorded as bounces);
- `threshold` messages in a row to different addresses were not taken (refused for good
  or for now, or the relay could not be reached): the relay is refusing everything,
  the breaker opens and the run stops; the held refusals are retried later, nobody is
  marked bounced (`held`);
- a refusal that is about no address (the sender refused, the login refused) opens
  the breaker at once;
- the run ends without either: the held refusals were the addresses' (`settle`),
  unless the relay took nothing at all in the run and refused at least two different
  addresses for good (a small run against a relay refusing everything; the price of
  that rule is that two dead addresses alone in a run are retried a few more times
  before they are given up, without a bounce).

One breaker lives for one run (of digests or of the outbox); the next run starts
closed, so a relay that recovers is used again at once.
"""

from __future__ import annotations

import logging
from typing import Generic, TypeVar

from alerts.ops.logging import log_event

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Different addresses refused for good, with nothing taken, that make a run's refusals
#: the relay's rather than the addresses' (one alone is taken at its word).
MIN_TO_JUDGE = 2


class RelayBreaker(Generic[T]):
    """One run's view of the relay. `T` is what the caller needs to record a held
    refusal later (a digest, a mail id)."""

    def __init__(self, threshold: int, *, run: str) -> None:
        self.threshold = threshold
        self.run = run
        #: Why the breaker opened; None while it is closed.
        self.reason: str | None = None
        self._held: list[tuple[T, str]] = []
        self._streak: set[str] = set()
        self._refused: set[str] = set()
        self._took_any = False

    @property
    def open(self) -> bool:
        return self.reason is not None

    def accepted(self) -> list[tuple[T, str]]:
        """The relay took a message: the refusals held so far (item, error) were
        about their addresses."""
        self._took_any = True
        self._streak.clear()
        confirmed, self._held = self._held, []
        return confirmed

    def refused(self, item: T, recipient: str, error: Exception) -> None:
        """A permanent refusal of `recipient`: held until the relay shows it works."""
        self._held.append((item, str(error)))
        self._refused.add(recipient.lower())
        self.not_taken(recipient, error)

    def not_taken(self, recipient: str, error: Exception) -> None:
        """A message to `recipient` the relay did not take (for now, or for reasons
        of our own): one more in a row."""
        self._streak.add(recipient.lower())
        if len(self._streak) >= self.threshold and not self.open:
            self._trip(f"the SMTP relay took none of {len(self._streak)} messages in a row to "
                       f"different addresses (last: {error})")

    def refuses_everything(self, error: Exception) -> None:
        """A refusal that is about no address (sender or login refused)."""
        if not self.open:
            self._trip(f"the SMTP relay refuses to take mail ({error})")

    @property
    def held(self) -> list[tuple[T, str]]:
        """The permanent refusals not known to be their addresses' (after the breaker
        opened: to be retried, without blaming anyone)."""
        return list(self._held)

    def settle(self) -> list[tuple[T, str]]:
        """At the end of a run the breaker did not stop: the held refusals were about
        their addresses. (An open breaker settles nothing: see `held`.)"""
        if not self.open and not self._took_any and len(self._refused) >= MIN_TO_JUDGE:
            self._trip(f"the SMTP relay refused every message of this run ({len(self._refused)} "
                       f"addresses; last: {self._held[-1][1]})")
        if self.open:
            return []
        return self.accepted()

    def _trip(self, reason: str) -> None:
        self.reason = reason
        log_event(logger, "mail.relay_refusing", level=logging.WARNING, run=self.run,
                  held=len(self._held), reason=reason)
