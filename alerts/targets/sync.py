"""`alerts targets sync`: the catalogue file written into the database.

Each entry of the (already validated) catalogue is inserted or updated by slug: name,
description, upstream queries and `match_terms` (the entry's rule keys). Nothing is
ever deleted: a target in the database that the file no longer lists is reported, with
its number of alerts, and keeps working until an operator removes it.

A target whose rule changed is rematched in the same transaction (alerts.items.service
.rematch_target): its stored items are decided again with the new rule, newly matched
old items are linked without being announced, newly rejected ones leave the digests,
the items API and the pages. A new target goes through the same call, which back-fills
it from the kept window (what a catalogue-wide poll fetched recently), also unannounced.
So the stored decisions always follow the rule in the database, and a poll never
mistakes an old item for news because the rule moved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.items.service import RematchCounts, rematch_target
from alerts.targets import repository
from alerts.targets.catalogue import Catalogue, CatalogueEntry
from db.models import Alert, Target


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    #: slug -> what changed ("name", "queries", "rule", ...).
    updated: dict[str, list[str]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    #: slug -> the rematch a changed rule caused.
    rematched: dict[str, RematchCounts] = field(default_factory=dict)
    #: slug -> alerts, for the targets in the database that the file does not list.
    not_in_catalogue: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = []
        for slug in self.added:
            backfilled = self.rematched[slug].backfilled if slug in self.rematched else 0
            out.append(f"added {slug}" + (f" (back-filled {backfilled} from the kept window)"
                                          if backfilled else ""))
        for slug, changed in self.updated.items():
            line = f"updated {slug} ({', '.join(changed)})"
            if (counts := self.rematched.get(slug)) is not None:
                line += (f"; rematched: {counts.kept} kept, {counts.newly_matched} newly "
                         f"matched, {counts.newly_rejected} newly rejected")
            out.append(line)
        for slug, alerts in self.not_in_catalogue.items():
            out.append(f"not in the catalogue (kept): {slug} "
                       f"({alerts} alert{'' if alerts == 1 else 's'})")
        out.append(f"catalogue: {len(self.added)} added, {len(self.updated)} updated, "
                   f"{len(self.unchanged)} unchanged")
        return out


def _values(entry: CatalogueEntry) -> dict[str, object]:
    return {
        "name": entry.name,
        "description": entry.description,
        "pubmed_query": entry.pubmed_query,
        "ctgov_term": entry.ctgov_term,
        "ctgov_intr": entry.ctgov_intr,
        "match_terms": entry.rule_definition(),
    }


def sync_catalogue(session: Session, catalogue: Catalogue, *, now: datetime) -> SyncReport:
    """Write the catalogue into the database (see the module docstring). Flushes only."""
    report = SyncReport()
    for entry in catalogue.entries:
        values = _values(entry)
        target = repository.by_slug(session, entry.slug)
        if target is None:
            target = Target(slug=entry.slug, **values)
            session.add(target)
            session.flush()
            report.added.append(entry.slug)
            # A new target starts with what the kept window holds for it (no events).
            report.rematched[entry.slug] = rematch_target(
                session, target.id, target.match_terms, now=now
            )
            continue
        changed = [key for key, value in values.items() if getattr(target, key) != value]
        if not changed:
            report.unchanged.append(entry.slug)
            continue
        for key in changed:
            setattr(target, key, values[key])
        report.updated[entry.slug] = ["rule" if key == "match_terms" else key for key in changed]
        if "match_terms" in changed:
            session.flush()
            report.rematched[entry.slug] = rematch_target(
                session, target.id, target.match_terms, now=now
            )
    session.flush()
    listed = {entry.slug for entry in catalogue.entries}
    rows = session.execute(
        select(Target.slug, func.count(Alert.id))
        .outerjoin(Alert, Alert.target_id == Target.id)
        .where(Target.slug.not_in(listed))
        .group_by(Target.slug)
        .order_by(Target.slug)
    )
    alerts = {slug: count for slug, count in rows}
    report.not_in_catalogue = alerts
    return report
