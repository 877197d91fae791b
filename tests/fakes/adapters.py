"""Scripted source adapters, to test the poller without HTTP.

    pubmed = FakeSource(SourceName.pubmed, {"her2-exon20": [result(article("1", "..."))]})
    install(monkeypatch, pubmed)        # make_adapter() now hands out `pubmed`
    poll(session_factory, settings, owner="test")
    assert pubmed.calls[0].cursor == {}

Each poll of a target takes the next step of that target's script: a PollResult is
returned, an exception raised, a callable (or coroutine function) called with (query,
cursor) for its result. The
last step repeats once the script is used up. A target not in the script is "not
configured" for the source.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from alerts.sources import registry
from alerts.sources.base import (
    FetchedItem,
    ItemKind,
    PollRequest,
    PollResult,
    Source,
    SourceName,
    TargetQuery,
)

Step = PollResult | BaseException | Callable[[TargetQuery, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class PollCall:
    slug: str
    cursor: dict[str, Any]
    now: datetime
    since: datetime
    feeds: tuple[int, ...]  # ids of the feeds the poller handed over
    known: frozenset[str]  # which of the step's item ids `known_ids` said are stored


class FakeSource(Source):
    def __init__(self, name: SourceName, script: Mapping[str, Sequence[Step]]) -> None:
        self.name = name  # type: ignore[misc]  # one class for every source
        self.script = {slug: list(steps) for slug, steps in script.items()}
        self.calls: list[PollCall] = []

    def is_configured_for(self, target: TargetQuery) -> bool:
        return target.slug in self.script

    async def _poll(self, request: PollRequest) -> PollResult:
        target, cursor, known_ids = request.target, request.cursor, request.known_ids
        steps = self.script[target.slug]
        step = steps.pop(0) if len(steps) > 1 else steps[0]
        if callable(step) and not isinstance(step, BaseException):
            step = step(target, cursor)
            if inspect.isawaitable(step):
                step = await step
        ids = [i.external_id for i in step.items] if isinstance(step, PollResult) else []
        known = frozenset(known_ids(ids)) if known_ids is not None and ids else frozenset()
        self.calls.append(
            PollCall(target.slug, dict(cursor), request.now, request.since,
                     tuple(f.feed_id for f in target.feeds), known)
        )
        if request.progress is not None:
            request.progress(f"{self.name} items", len(ids), len(ids))
        if isinstance(step, BaseException):
            raise step
        return step


    async def _poll_catalogue(self, request: PollRequest) -> PollResult:
        """The catalogue-wide fetch: the script's steps for target "*"."""
        return await self._poll(request)


def install(monkeypatch: pytest.MonkeyPatch, *sources: FakeSource) -> None:
    """Make the registry hand out these adapters for their sources."""
    for source in sources:
        monkeypatch.setitem(
            registry.REGISTRY, source.name, lambda _settings, _client, s=source: s
        )


def result(
    *items: FetchedItem, cursor: Mapping[str, Any] | None = None, **kwargs: Any
) -> PollResult:
    return PollResult(items=list(items), cursor=cursor or {"mark": len(items)}, **kwargs)


def article(pmid: str, title: str, summary: str = "") -> FetchedItem:
    return FetchedItem(
        source=SourceName.pubmed, external_id=pmid, kind=ItemKind.publication, title=title,
        url=f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/", summary=summary,
        data={"journal": "J Test"},
    )


def trial(
    nct_id: str,
    status: str = "RECRUITING",
    *,
    phases: Sequence[str] = ("PHASE1",),
    countries: Sequence[str] = ("Japan",),
    title: str = "Zongertinib in HER2-mutant solid tumours",
) -> FetchedItem:
    tracked = {"overall_status": status, "phases": list(phases), "has_results": False,
               "countries": list(countries)}
    return FetchedItem(
        source=SourceName.ctgov, external_id=nct_id, kind=ItemKind.trial, title=title,
        url=f"https://clinicaltrials.gov/study/{nct_id}", data=dict(tracked), tracked=tracked,
    )


def entry(entry_id: str, title: str, summary: str = "") -> FetchedItem:
    return FetchedItem(
        source=SourceName.rss, external_id=entry_id, kind=ItemKind.news, title=title,
        url=f"https://news.example/{entry_id}", summary=summary,
    )
