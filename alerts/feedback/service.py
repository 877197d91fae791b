"""Reading a feedback link, recording its label, listing and exporting labels."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from alerts.config import Settings
from alerts.errors import NotFound
from alerts.feedback import repository
from alerts.feedback.schemas import Label, LabelOut, LabelPage
from alerts.items.match_fields import match_input
from alerts.pagination import decode_cursor, encode_cursor
from alerts.subscriptions.tokens import InvalidToken, Purpose, read_token
from alerts.targets.repository import by_slug
from db.models import Item, ItemEvent, ReaderLabel, Subscriber, Target

MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class FeedbackLink:
    """What a feedback link is about: an item as shown to one reader for one target."""

    item: Item
    target: Target
    subscriber_id: int


def read_link(session: Session, settings: Settings, token: str, event_id: int) -> FeedbackLink:
    """The link's item, target and reader: the token names the reader, the event the
    item as it was shown for a target. InvalidToken when any of them is gone (an erased
    reader's links stop working)."""
    payload = read_token(settings, Purpose.feedback, token)
    subscriber_id = payload.get("s")
    if not isinstance(subscriber_id, int) or isinstance(subscriber_id, bool):
        raise InvalidToken("this link is not valid")
    event = session.get(ItemEvent, event_id)
    subscriber = session.get(Subscriber, subscriber_id)
    if event is None or subscriber is None:
        raise InvalidToken("this link no longer works: the item or your subscription is gone")
    item = session.get(Item, event.item_id)
    target = session.get(Target, event.target_id)
    if item is None or target is None:
        raise InvalidToken("this link no longer works: the item or your subscription is gone")
    return FeedbackLink(item=item, target=target, subscriber_id=subscriber.id)


def mark_not_relevant(
    session: Session, settings: Settings, token: str, event_id: int
) -> FeedbackLink:
    """Record the reader's "not relevant" for the link's item and target (once)."""
    link = read_link(session, settings, token, event_id)
    repository.add_label(
        session, item_id=link.item.id, target_id=link.target.id,
        subscriber_id=link.subscriber_id, label=Label.not_relevant,
    )
    session.flush()
    return link


def _target_id(session: Session, slug: str | None) -> int | None:
    if slug is None:
        return None
    target = by_slug(session, slug)
    if target is None:
        raise NotFound(f"no target {slug!r}")
    return target.id


def _out(row: ReaderLabel) -> LabelOut:
    return LabelOut(
        id=row.id, target=row.target.slug, label=Label(row.label), created_at=row.created_at,
        source=row.item.source, external_id=row.item.external_id, title=row.item.title,
        url=row.item.url,
    )


def list_labels(
    session: Session, *, target: str | None, cursor: str | None, limit: int
) -> LabelPage:
    rows = repository.labels_page(
        session, target_id=_target_id(session, target),
        before_id=decode_cursor(cursor, int)[0] if cursor else None, limit=limit + 1,
    )
    more = len(rows) > limit
    page = rows[:limit]
    return LabelPage(
        data=[_out(row) for row in page],
        next_cursor=encode_cursor(page[-1].id) if more else None,
    )


def evaluation_cases(session: Session, *, target: str | None) -> Iterator[dict[str, Any]]:
    """Each distinct (item, target) a reader marked "not relevant", as an evaluation case
    (the format of tests/data/eval/*.jsonl) labelled not relevant, with how many readers
    said so in its reason."""
    readers: dict[tuple[int, int], list[ReaderLabel]] = {}
    for row in repository.all_labels(session, target_id=_target_id(session, target)):
        readers.setdefault((row.item_id, row.target_id), []).append(row)
    for rows in readers.values():
        first = rows[0]
        item = first.item
        read = match_input(item)  # what the rule reads of it, as ingest reads it
        case: dict[str, Any] = {"id": f"reader-{item.source}-{item.external_id}",
                                "target": first.target.slug}
        case.update({key: list(value) if isinstance(value, tuple) else value
                     for key, value in dataclasses.asdict(read).items() if value})
        case.update({
            "label": False,
            "family": "reader-feedback",
            "reason": f"marked not relevant by {len(rows)} reader(s), first on "
                      f"{first.created_at.date().isoformat()}",
        })
        yield case
