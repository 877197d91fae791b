"""Small factories for digest tests: rows are added and flushed, never committed (the
caller's transaction decides)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Alert, Item, ItemEvent, ItemTarget, SourceState, Subscriber, Target

T0 = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)  # a Friday


@dataclass
class Factory:
    session: Session
    _n: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _add(self, row: Any) -> Any:
        self.session.add(row)
        self.session.flush()
        return row

    def target(self, slug: str | None = None, name: str | None = None, **fields: Any) -> Target:
        n = next(self._n)
        return self._add(Target(
            slug=slug or f"target-{n}", name=name or f"Target {n}", description="",
            match_terms={"genes": [], "mutations": [], "drugs": []}, **fields,
        ))

    def subscriber(self, email: str | None = None, **fields: Any) -> Subscriber:
        n = next(self._n)
        return self._add(Subscriber(email=email or f"reader{n}@example.org",
                                    verified_at=T0, **fields))

    def alert(
        self,
        subscriber: Subscriber,
        target: Target,
        *,
        frequency: str = "daily",
        send_hour: int = 8,
        timezone: str = "UTC",
        weekday: str = "monday",
        status: str = "active",
        activated_at: datetime | None = T0,
        **fields: Any,
    ) -> Alert:
        return self._add(Alert(
            subscriber_id=subscriber.id, target_id=target.id, frequency=frequency,
            send_hour=send_hour, timezone=timezone, weekday=weekday, status=status,
            activated_at=activated_at if status != "pending" else None, **fields,
        ))

    def item(
        self,
        kind: str = "publication",
        *,
        title: str | None = None,
        source: str | None = None,
        external_id: str | None = None,
        published_at: datetime | None = None,
        url: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Item:
        n = next(self._n)
        source = source or {"publication": "pubmed", "trial": "ctgov", "news": "rss"}[kind]
        external_id = external_id or {
            "pubmed": f"{40000000 + n}", "ctgov": f"NCT{n:08d}",
            "rss": f"https://news.example.org/{n}",
        }[source]
        return self._add(Item(
            source=source, external_id=external_id, kind=kind,
            title=title or f"{kind.capitalize()} {n} about HER2 exon 20",
            url=url or (external_id if source == "rss" else f"https://example.org/{n}"),
            published_at=published_at, first_seen_at=published_at or T0, data=data or {},
        ))

    def event(
        self,
        item: Item,
        target: Target,
        *,
        at: datetime,
        kind: str = "new",
        changes: list[dict[str, Any]] | None = None,
        matched: list[str] | None = None,
        evidence: tuple[str, str, list[list[int]]] | None = None,
    ) -> ItemEvent:
        """An event of `item` for `target` at `at` (linking the item to the target with
        the terms that matched it and, given as (field, text, spans), the evidence, the
        first time)."""
        linked = self.session.scalar(select(ItemTarget.id).where(
            ItemTarget.item_id == item.id, ItemTarget.target_id == target.id))
        if linked is None:
            field_name, text, spans = evidence or ("", "", [])
            self._add(ItemTarget(item_id=item.id, target_id=target.id,
                                 matched_terms=matched or ["HER2", "exon 20"],
                                 evidence=text, evidence_field=field_name, highlights=spans,
                                 created_at=at, decided_at=at))
        return self._add(ItemEvent(item_id=item.id, target_id=target.id, kind=kind,
                                   changes=changes or [], created_at=at))

    def source_state(self, target: Target, source: str, **fields: Any) -> SourceState:
        return self._add(SourceState(source=source, target_id=target.id, cursor={}, **fields))
