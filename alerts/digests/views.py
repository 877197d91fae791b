"""From the database rows of digests to their views: what each email shows.

`load_views` reads a chunk of digests (alerts.digests.repository.load_digest_data) and
turns them into `DigestView`s (alerts.digests.compose): plain, picklable data, one per
digest, in id order. `item_view` is how any stored event reads in a digest, and on the
page behind a digest's "N more" link (alerts.web.items).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from alerts.config import Settings
from alerts.digests import repository as repo
from alerts.digests.compose import (
    SOURCE_LABELS,
    DigestView,
    ItemGroup,
    ItemView,
    PhaseMove,
    Section,
    SourceHealth,
    TargetSection,
    byline,
    canonical_url,
    describe_changes,
    evidence_view,
    group_items,
    item_source_label,
    one_line,
    order_key,
    phase_moves,
)
from db.statuses import AlertStatus

#: Source health lists PubMed, ClinicalTrials.gov, then feeds.
SOURCE_ORDER = {source: n for n, source in enumerate(SOURCE_LABELS)}


def item_view(event: repo.EventRow) -> ItemView:
    return ItemView(
        event_id=event.event_id,
        section=event.section,
        title=one_line(event.title) or one_line(event.external_id),
        source_label=item_source_label(event.source, event.feed_title),
        # The date shown is the one the section is ordered by.
        date=event.sort_at,
        url=canonical_url(event.source, event.external_id, event.url),
        matched_terms=tuple(event.matched_terms),
        changes=describe_changes(event.changes) if event.event_kind == "updated" else (),
        byline=byline(
            event.source, authors=event.authors, journal=event.journal,
            pub_date=event.pub_date, published_at=event.published_at, phases=event.phases,
            overall_status=event.overall_status, lead_sponsor=event.lead_sponsor,
        ),
        evidence=evidence_view(event.source, event.evidence_field, event.evidence,
                               event.highlights),
    )


def _source_health(row: repo.SourceRow, threshold: int) -> SourceHealth:
    return SourceHealth(
        source=row.source,
        label=SOURCE_LABELS.get(row.source, row.source),
        last_success_at=row.last_success_at,
        consecutive_failures=row.consecutive_failures,
        failing=row.consecutive_failures >= threshold,
        last_error=one_line(row.last_error)[:200] if row.last_error else None,
        warnings=tuple(row.warnings),
    )


def build_views(data: repo.DigestData, settings: Settings) -> tuple[list[DigestView], list[int]]:
    """(views in id order, ids of digests with nothing left to send: every alert
    unsubscribed since planning)."""
    alerts_of: dict[int, list[repo.DigestAlertRow]] = defaultdict(list)
    for row in data.alerts:
        if row.alert_status != AlertStatus.unsubscribed:
            alerts_of[row.digest_id].append(row)
    counts: dict[tuple[int, int], dict[Section, int]] = defaultdict(lambda: defaultdict(int))
    hidden: dict[tuple[int, int], int] = defaultdict(int)
    oldest: dict[tuple[int, int], datetime] = {}
    for count in data.counts:
        pair = (count.digest_id, count.alert_id)
        counts[pair][count.section] += count.count
        if not count.shown:
            hidden[pair] += count.count
        if pair not in oldest or count.oldest < oldest[pair]:
            oldest[pair] = count.oldest
    health: dict[int, list[SourceHealth]] = defaultdict(list)
    for source_row in sorted(data.sources, key=lambda r: SOURCE_ORDER.get(r.source, 99)):
        health[source_row.target_id].append(
            _source_health(source_row, settings.failure_alert_threshold)
        )
    sources = {target_id: tuple(rows) for target_id, rows in health.items()}
    # The groups of items, built and ordered once per distinct set of shown events and
    # shared by every digest of the chunk that shows that set (most subscribers of a
    # target see the same events).
    groups_of: dict[str, tuple[tuple[ItemGroup, ...], tuple[PhaseMove, ...]]] = {"": ((), ())}

    def groups_for(event_ids: str) -> tuple[tuple[ItemGroup, ...], tuple[PhaseMove, ...]]:
        built = groups_of.get(event_ids)
        if built is None:
            events = sorted(
                (data.events[e] for e in map(int, event_ids.split(",")) if e in data.events),
                key=lambda e: order_key(e.section, e.sort_at, e.event_id),
            )
            built = groups_of[event_ids] = (
                group_items(item_view(event) for event in events),
                phase_moves((e.external_id, e.interventions, e.changes)
                            for e in events if e.event_kind == "updated"),
            )
        return built

    views: list[DigestView] = []
    nothing_left: list[int] = []
    for head in data.heads:
        rows = sorted(alerts_of.get(head.digest_id, ()), key=lambda r: (r.target_name, r.alert_id))
        if not rows:
            nothing_left.append(head.digest_id)
            continue
        sections = []
        for row in rows:
            pair = (head.digest_id, row.alert_id)
            groups, moves = groups_for(data.shown.get(pair, ""))
            sections.append(TargetSection(
                alert_id=row.alert_id,
                target_slug=row.target_slug,
                target_name=row.target_name,
                groups=groups,
                phase_moves=moves,
                counts=dict(counts.get(pair, {})),
                hidden=hidden.get(pair, 0),
                since=oldest.get(pair),
                sources=sources.get(row.target_id, ()),
            ))
        views.append(DigestView(
            digest_id=head.digest_id,
            key=head.key,
            message_id=head.message_id,
            subscriber_id=head.subscriber_id,
            email=head.email,
            frequency=head.frequency,
            slot_at=head.slot_at,
            timezone=rows[0].timezone,
            sections=tuple(sections),
        ))
    return views, nothing_left


def load_views(session: Session, settings: Settings, digest_ids: Sequence[int]) -> list[DigestView]:
    """The views of these digests (what their emails show), in id order."""
    views, _nothing_left = build_views(repo.load_digest_data(session, digest_ids), settings)
    return views
