"""`alerts targets sync`: the catalogue file written into the database.

Each entry of the (already validated) catalogue is inserted or updated by slug: name,
description, upstream queries, sources and `match_terms` (the entry's rule keys), and
each insert or update is recorded as a change by "catalogue sync". Nothing is ever
deleted: a target in the database that the file no longer lists is reported, with its
number of alerts, and keeps working until an operator removes it.

The file and the changes made by hand (alerts.targets.changes) meet by one rule: sync
applies what changed IN THE FILE since it last applied the entry (each target keeps that
entry as `file_entry`), and never undoes a change made by hand.
- the file's entry unchanged since the last sync: nothing to do (a local edit stays);
- the file's entry changed and the target not edited by hand: applied;
- the file's entry changed and the target edited by hand to something else: the edit is
  kept and a warning names the target at every sync, until the operator takes the file's
  entry (`--reset SLUG`) or makes the file say what the edit says;
- a target added by hand (`local`) that the file lists too, or one removed by hand that
  the file still lists: left alone, with a warning, until `--reset SLUG`.

A target whose rule changed is rematched in the same transaction (alerts.items.service
.rematch_target): its stored items are decided again with the new rule, newly matched
old items are linked without being announced, newly rejected ones leave the digests,
the items API and the pages. A new target goes through the same call, which back-fills
it from the kept window (what a catalogue-wide poll fetched recently), also unannounced.
So the stored decisions always follow the rule in the database, and a poll never
mistakes an old item for news because the rule moved.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.items.service import RematchCounts, rematch_target
from alerts.targets import repository
from alerts.targets.catalogue import Catalogue
from alerts.targets.changes import (
    CATALOGUE_SYNC,
    FILE,
    LOCAL,
    record_change,
    removed_here,
    target_columns,
    target_document,
)
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
    #: Targets the file would change but that were changed by hand (see the module
    #: docstring): slug -> why they were left alone.
    kept: dict[str, str] = field(default_factory=dict)

    def warnings(self) -> list[str]:
        return [f"warning: kept {slug} as it is: {why}; `alerts targets sync --reset "
                f"{slug}` takes the file's entry" for slug, why in self.kept.items()]

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
        out.extend(self.warnings())
        out.append(f"catalogue: {len(self.added)} added, {len(self.updated)} updated, "
                   f"{len(self.unchanged)} unchanged"
                   + (f", {len(self.kept)} kept as changed by hand" if self.kept else ""))
        return out


_KEY_NAMES = {"match_terms": "rule"}


def sync_catalogue(
    session: Session, catalogue: Catalogue, *, now: datetime, reset: Collection[str] = (),
) -> SyncReport:
    """Write the catalogue into the database (see the module docstring); `reset` names
    targets whose changes by hand the file's entry replaces. Flushes only."""
    report = SyncReport()
    removed = removed_here(session, [entry.slug for entry in catalogue.entries
                                     if entry.slug not in reset])
    for entry in catalogue.entries:
        document = entry.model_dump(mode="json")
        values = target_columns(entry)
        target = repository.by_slug(session, entry.slug)
        forced = entry.slug in reset
        if target is None:
            if entry.slug in removed:
                report.kept[entry.slug] = "removed by hand, still in the file"
                continue
            target = Target(slug=entry.slug, origin=FILE, file_entry=document, **values)
            session.add(target)
            session.flush()
            record_change(session, entry.slug, "add", CATALOGUE_SYNC, now=now, before=None,
                          after=target_document(target))
            report.added.append(entry.slug)
            # A new target starts with what the kept window holds for it (no events).
            report.rematched[entry.slug] = rematch_target(
                session, target.id, target.match_terms, now=now
            )
            continue
        current = target_document(target)
        if not forced:
            if target.origin == LOCAL:
                if current != document:
                    report.kept[entry.slug] = "added by hand, the file lists it differently"
                else:
                    report.unchanged.append(entry.slug)
                continue
            if target.file_entry == document:
                report.unchanged.append(entry.slug)
                continue
            edited = target.file_entry is not None and current != target.file_entry
            if edited and current != document:
                report.kept[entry.slug] = "edited by hand, and the file's entry changed too"
                continue
        target.origin, target.file_entry = FILE, document
        changed = [key for key, value in values.items() if getattr(target, key) != value]
        if not changed:
            report.unchanged.append(entry.slug)
            continue
        for key in changed:
            setattr(target, key, values[key])
        session.flush()
        record_change(session, entry.slug, "edit", CATALOGUE_SYNC, now=now, before=current,
                      after=target_document(target))
        report.updated[entry.slug] = [_KEY_NAMES.get(key, key) for key in changed]
        if "match_terms" in changed:
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
    report.not_in_catalogue = {slug: count for slug, count in rows}
    return report
