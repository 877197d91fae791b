"""Digest routes of the JSON API: an alert's preview (owner or admin) and the
operator's view of digests (admin), e.g. `GET /api/v1/digests?status=failed` lists the
digests an SMTP server refused for good, with the address marked bounced."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from alerts.deps import SessionDep
from alerts.digests import service
from alerts.digests.schemas import ChangeOut, DigestPage, DigestStatus, PreviewItem, PreviewOut
from alerts.errors import error_responses
from alerts.pagination import CursorQuery, IdPath
from alerts.subscriptions.auth import AdminCallerDep, RequiredCallerDep, get_owned_alert
from db.clock import utc_now

router = APIRouter(prefix="/api/v1", tags=["digests"])


@router.get("/alerts/{alert_id}/preview", response_model=PreviewOut,
            responses=error_responses(401, 404, 422))
def preview_alert(alert_id: IdPath, session: SessionDep, caller: RequiredCallerDep) -> PreviewOut:
    """The items the alert's next digest would hold (nothing is recorded): at most its
    `max_items`, in digest order, and how many more it would only link to."""
    alert = get_owned_alert(session, caller, alert_id)
    result = service.preview(session, alert, now=utc_now())
    return PreviewOut(
        data=[
            PreviewItem(
                event_id=event.event_id,
                event=event.event_kind,
                section=event.section.value,
                source=event.source,
                external_id=event.external_id,
                kind=event.item_kind,
                title=event.title,
                url=event.url,
                published_at=event.published_at,
                first_seen_at=event.first_seen_at,
                event_at=event.created_at,
                matched_terms=event.matched_terms,
                evidence=event.evidence,
                evidence_field=event.evidence_field,
                highlights=[(start, end) for start, end in event.highlights],
                changes=[ChangeOut(**change) for change in event.changes],
            )
            for event in result.events
        ],
        more=result.more,
    )


@router.get("/digests", response_model=DigestPage, responses=error_responses(401, 403, 422))
def list_digests(
    session: SessionDep,
    _admin: AdminCallerDep,
    status: Annotated[DigestStatus | None, Query(description="e.g. failed")] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_DIGEST_PAGE)] = 50,
    cursor: CursorQuery = None,
) -> DigestPage:
    """Digests newest first (admin token only): status, attempts, last error and the
    address's mail status."""
    return service.list_digests(
        session, status=status.value if status else None, cursor=cursor, limit=limit
    )
