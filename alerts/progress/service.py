"""A target's progress read from the database: its pipeline and its weekly activity."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.digests.compose import describe_changes
from alerts.progress.pipeline import SORTS, Drug, DrugNames, Trial, build_pipeline
from alerts.progress.timeline import Week, weekly_counts
from alerts.targets.search import VersionedCache
from alerts.targets.service import get_target_by_slug, per_catalogue_version
from db.models import Item, ItemEvent, ItemTarget, Target

WEEKS = 52

#: The weekly kind of a `new` event, by source.
_NEW_KIND = {"pubmed": "publications", "ctgov": "new_trials", "rss": "news"}


@dataclass(frozen=True)
class Progress:
    target: Target
    pipeline: list[Drug]
    weeks: list[Week]


#: The drug names of the whole catalogue, per process (built when the catalogue changed).
DrugNamesCache = VersionedCache[DrugNames]


def target_progress(
    session: Session, slug: str, *, today: date, names_cache: DrugNamesCache,
    sort: str = "phase",
) -> Progress:
    """The pipeline and the last `WEEKS` weeks of `slug`; NotFound for an unknown slug."""
    target = get_target_by_slug(session, slug)
    names = per_catalogue_version(session, names_cache, lambda: DrugNames.from_definitions(
        session.scalars(select(Target.match_terms).order_by(Target.id))
    ))
    own = _drug_names(target.match_terms)
    pipeline = build_pipeline(_trials(session, target.id), names, target_drugs=own,
                              sort=sort if sort in SORTS else "phase")
    since = datetime.combine(today - timedelta(weeks=WEEKS + 1), time.min, tzinfo=UTC)
    weeks = weekly_counts(_happenings(session, target.id, since), today=today, weeks=WEEKS)
    return Progress(target=target, pipeline=pipeline, weeks=weeks)


def _drug_names(definition: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for drug in definition.get("drugs", ()):
        if isinstance(drug, str):
            names.append(drug)
        else:
            names += [drug.get("name", ""), *drug.get("codes", ()), *drug.get("brands", ())]
    return [n for n in names if n]


def _trials(session: Session, target_id: int) -> list[Trial]:
    """The target's trials with their newest event for the target."""
    rows = session.execute(
        select(Item.id, Item.external_id, Item.title, Item.data)
        .join(ItemTarget, ItemTarget.item_id == Item.id)
        .where(ItemTarget.target_id == target_id, Item.kind == "trial")
    ).all()
    newest: dict[int, tuple[datetime, str, list[dict[str, Any]]]] = {}
    ids = [row.id for row in rows]
    for start in range(0, len(ids), 500):
        for event in session.execute(
            select(ItemEvent.item_id, ItemEvent.created_at, ItemEvent.kind, ItemEvent.changes)
            .where(ItemEvent.target_id == target_id,
                   ItemEvent.item_id.in_(ids[start:start + 500]))
        ):
            known = newest.get(event.item_id)
            if known is None or event.created_at > known[0]:
                newest[event.item_id] = (event.created_at, event.kind, event.changes)
    trials = []
    for row in rows:
        data = row.data or {}
        at, kind, changes = newest.get(row.id, (None, "", []))
        trials.append(Trial(
            nct_id=row.external_id, title=row.title,
            phases=[p for p in data.get("phases") or () if isinstance(p, str)],
            overall_status=data.get("overall_status"),
            interventions=[i for i in data.get("interventions") or () if isinstance(i, str)],
            last_event_at=at, last_change=_describe(kind, changes),
        ))
    return trials


def _describe(kind: str, changes: list[dict[str, Any]]) -> str:
    if kind == "new":
        return "new trial"
    # Worded as a digest words a trial update.
    return "; ".join(f"{c.label}: {c.old} -> {c.new}" for c in describe_changes(changes))


def _happenings(session: Session, target_id: int, since: datetime) -> Iterator[
    tuple[datetime, str]
]:
    rows = session.execute(
        select(ItemEvent.kind, ItemEvent.created_at, Item.source, Item.published_at)
        .join(Item, Item.id == ItemEvent.item_id)
        .where(ItemEvent.target_id == target_id)
        .where((ItemEvent.created_at >= since) | (Item.published_at >= since))
    )
    for kind, created_at, source, published_at in rows:
        if kind == "updated":
            yield created_at, "trial_updates"
        else:
            yield published_at or created_at, _NEW_KIND.get(source, "news")
