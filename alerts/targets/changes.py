"""Changing the catalogue by hand (`alerts targets add/edit/remove`, the admin API) and
the record of who changed what.

A target given here is checked exactly as an entry of the catalogue file is
(alerts.targets.catalogue.validate_entry: every key, its drugs beside the other targets',
its rule compiled), and every change, these and the file's sync alike, writes a
`target_changes` row (who, when, the entry before and after) in the transaction of the
change itself: a change that is rolled back leaves no record, and no change goes
unrecorded.

Who owns a target, and what `alerts targets sync` may do to it (alerts.targets.sync):
- a target added here is `local`: sync never touches it, even when the file comes to list
  the same slug (it warns until `sync --reset SLUG` hands it to the file);
- a target the file lists is `file`, and remembers the file's entry as sync last applied
  it (`file_entry`). Editing it here makes it differ from that entry: sync keeps the
  edit while the file's entry stays as it was, and when the file's entry changes too it
  keeps the edit and warns at every sync until the operator chooses (`sync --reset
  SLUG` takes the file's entry; making the file say the same as the edit ends it too);
- a file target removed here is not added back by sync while the file still lists it
  (it warns; `sync --reset SLUG` adds it back).

Removing a target that people follow is refused (409) unless forced; forced, the
target goes with its alerts, items links and polling state, each confirmed follower is
told by mail that the alert ended (and given the manage link), and its history stays.

A changed rule is applied to the stored items at once through the rematch service
(alerts.items.service.rematch_target), as sync does; a new target is matched the same
way. The search index and the target pages follow the catalogue's version, which any
change of slug, name, description or rule moves. Services only flush.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from alerts.config import Settings
from alerts.errors import Conflict, InvalidFields, NotFound
from alerts.items.service import RematchCounts, rematch_target
from alerts.mail.outbox import queue_mail
from alerts.subscriptions.mails import TARGET_REMOVED_KIND, target_removed_message
from alerts.subscriptions.schemas import LIVE_STATUSES
from alerts.subscriptions.tokens import manage_url
from alerts.targets import repository
from alerts.targets.catalogue import (
    RULE_KEYS,
    CatalogueEntry,
    EntryError,
    validate_entry,
)
from alerts.targets.service import flush_new, get_target_by_slug
from db.models import Alert, Subscriber, Target, TargetChange
from db.statuses import AlertStatus

#: Who a change made by `alerts targets sync` is recorded as.
CATALOGUE_SYNC = "catalogue sync"
LOCAL, FILE = "local", "file"


@dataclass(frozen=True)
class TargetChanged:
    target: Target
    #: False when the edit asked for what the target already was (nothing recorded).
    changed: bool = True
    #: The rematch of the stored items, when the rule was new or changed.
    rematched: RematchCounts | None = None


def target_document(target: Target) -> dict[str, Any]:
    """The target as a catalogue entry (JSON values, every key): what a change records
    and what an edit starts from. A target stored in the older {"genes", "mutations",
    "drugs"} shape reads as the variant entry the rule already took it for."""
    raw: dict[str, Any] = {
        "slug": target.slug, "name": target.name, "description": target.description,
        **_rule_keys(target.match_terms),
        "pubmed_query": target.pubmed_query, "ctgov_term": target.ctgov_term,
        "ctgov_intr": target.ctgov_intr, "sources": list(target.sources or []),
    }
    try:
        return CatalogueEntry.model_validate(raw).model_dump(mode="json")
    except ValidationError:
        return raw


def _rule_keys(match_terms: Mapping[str, Any]) -> dict[str, Any]:
    if "mutations" in match_terms and "kind" not in match_terms:
        return {
            "kind": "variant", "genes": list(match_terms.get("genes", [])),
            "variant_terms": list(match_terms.get("mutations", [])),
            "drugs": [{"name": drug} for drug in match_terms.get("drugs", [])],
        }
    return {key: value for key, value in match_terms.items() if key in RULE_KEYS}


def target_columns(entry: CatalogueEntry) -> dict[str, Any]:
    """What a catalogue entry sets on its target's row."""
    return {
        "name": entry.name,
        "description": entry.description,
        "pubmed_query": entry.pubmed_query,
        "ctgov_term": entry.ctgov_term,
        "ctgov_intr": entry.ctgov_intr,
        "match_terms": entry.rule_definition(),
        "sources": list(entry.sources),
    }


def record_change(
    session: Session, slug: str, action: str, by: str, *, now: datetime,
    before: dict[str, Any] | None, after: dict[str, Any] | None,
) -> TargetChange:
    change = TargetChange(target_slug=slug, action=action, changed_by=by[:200],
                          changed_at=now, before=before, after=after)
    session.add(change)
    return change


def _checked(
    session: Session, document: Mapping[str, Any], before: Mapping[str, Any] | None = None
) -> CatalogueEntry:
    """`document` validated as an entry beside the other targets in the database; a
    `shared_with` the target already had may name a target this database lacks (a
    catalogue file of an operator's own may leave out a neighbour)."""
    others = []
    for target in repository.all_targets(session):
        try:
            others.append(CatalogueEntry.model_validate(target_document(target)))
        except ValidationError:
            continue  # an older stored shape lists no drug the check could compare
    try:
        return validate_entry(document, others, _shared_with(before or {}))
    except EntryError as exc:
        raise InvalidFields(exc.problems) from None


def _shared_with(document: Mapping[str, Any]) -> set[str]:
    drugs = document.get("drugs")
    return {slug for drug in drugs if isinstance(drug, dict)
            for slug in drug.get("shared_with", [])} if isinstance(drugs, list) else set()


def add_target(
    session: Session, document: Mapping[str, Any], *, by: str, now: datetime
) -> TargetChanged:
    """Add the target `document` describes (a catalogue entry); Conflict when its slug is
    taken, InvalidFields naming each bad field. The new target is matched against the
    stored items at once."""
    slug = document.get("slug")
    if isinstance(slug, str) and repository.by_slug(session, slug) is not None:
        raise Conflict(f"target {slug!r} already exists")
    entry = _checked(session, document)
    target = Target(slug=entry.slug, origin=LOCAL, file_entry=None, **target_columns(entry))
    flush_new(session, target, f"target {entry.slug!r} already exists")
    record_change(session, entry.slug, "add", by, now=now, before=None,
                  after=target_document(target))
    counts = rematch_target(session, target.id, target.match_terms, now=now)
    return TargetChanged(target, rematched=counts)


def edit_target(
    session: Session, slug: str, changes: Mapping[str, Any], *, by: str, now: datetime
) -> TargetChanged:
    """Replace the keys of the target's entry that `changes` names (a key set to null
    clears an optional one); the result is checked as a whole entry. NotFound, or
    InvalidFields naming each bad field. A changed rule rematches the stored items."""
    target = get_target_by_slug(session, slug)
    if "slug" in changes and changes["slug"] != slug:
        raise InvalidFields([(("slug",), "a target keeps its slug (links and alerts use "
                                         "it): add a new target and remove this one")])
    before = target_document(target)
    entry = _checked(session, {**before, **changes, "slug": slug}, before)
    after = entry.model_dump(mode="json")
    if after == before:
        return TargetChanged(target, changed=False)
    values = target_columns(entry)
    rule_changed = values["match_terms"] != target.match_terms
    for key, value in values.items():
        setattr(target, key, value)
    session.flush()
    record_change(session, slug, "edit", by, now=now, before=before, after=after)
    counts = rematch_target(session, target.id, target.match_terms, now=now) \
        if rule_changed else None
    return TargetChanged(target, rematched=counts)


def followers(session: Session, target_id: int) -> int:
    """Alerts on the target that someone still has (pending, active or paused)."""
    return session.scalar(
        select(func.count()).select_from(Alert)
        .where(Alert.target_id == target_id, Alert.status.in_(LIVE_STATUSES))
    ) or 0


def remove_target(
    session: Session, slug: str, *, by: str, now: datetime, settings: Settings,
    force: bool = False,
) -> int:
    """Remove the target; how many alerts ended with it. Refused (Conflict) while
    someone follows it unless `force`: then its alerts go with it (they stop at once,
    digests already sent stay sent) and each confirmed address that followed it is told
    by mail, through the outbox, in this transaction. Items stay for the other targets
    that matched them; the target's history stays."""
    target = get_target_by_slug(session, slug)
    following = followers(session, target.id)
    if following and not force:
        raise Conflict(
            f"target {slug!r} has {following} alert{'' if following == 1 else 's'} "
            "(pending, active or paused): removing it ends them; remove it with force "
            "to do so")
    before = target_document(target)
    _tell_followers(session, settings, target)
    # The database cascades the target's alerts, links, events and polling state.
    session.execute(delete(Target).where(Target.id == target.id))
    session.expire_all()
    record_change(session, slug, "remove", by, now=now, before=before, after=None)
    session.flush()
    return following


def _tell_followers(session: Session, settings: Settings, target: Target) -> None:
    """A notice to each address whose confirmed alert (active or paused) ends with the
    target; an address that never confirmed gets nothing (it asked for nothing yet)."""
    rows = session.execute(
        select(Subscriber.id, Subscriber.email)
        .join(Alert, Alert.subscriber_id == Subscriber.id)
        .where(Alert.target_id == target.id,
               Alert.status.in_((AlertStatus.active, AlertStatus.paused)),
               Subscriber.verified_at.is_not(None))
        .order_by(Subscriber.id)
    )
    for subscriber_id, email in rows:
        queue_mail(session, TARGET_REMOVED_KIND, target_removed_message(
            settings, to=email, target_name=target.name,
            manage_link=manage_url(settings, subscriber_id)))


def target_history(session: Session, slug: str) -> list[TargetChange]:
    """The recorded changes of `slug`, oldest first (also of a removed target);
    NotFound when there is neither a target nor a record."""
    changes = repository.changes_of(session, slug)
    if not changes and repository.by_slug(session, slug) is None:
        raise NotFound(f"unknown target {slug!r}")
    return changes


def removed_here(session: Session, slugs: list[str]) -> set[str]:
    """Among `slugs`, those whose last recorded change is a removal."""
    return repository.last_removed(session, slugs)
