"""`GET /api/v1/targets`: the catalogue anyone may subscribe to, and its search; with the
admin token, adding, editing and removing targets and reading who changed them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from alerts.deps import SessionDep, SettingsDep, TargetIndexDep
from alerts.errors import error_responses
from alerts.mail.outbox import MailingSessionDep
from alerts.pagination import CursorQuery
from alerts.subscriptions.auth import AdminCallerDep
from alerts.targets import changes, service
from alerts.targets.catalogue import CatalogueEntry
from alerts.targets.schemas import (
    TargetChangeList,
    TargetChangeOut,
    TargetChanges,
    TargetEntryOut,
    TargetPage,
)
from alerts.targets.search import MAX_QUERY_LENGTH
from db.clock import utc_now

router = APIRouter(prefix="/api/v1", tags=["targets"])

QUERY_HELP = (
    "Words to find a target by: its name or slug, a gene symbol or synonym (ERBB2, HER2), "
    "a variant term (G12C, ex20ins), a drug's generic, code or brand name (zongertinib, "
    "BI 1810631, Hernexeos). Case, spaces and hyphens do not matter and a word may be the "
    "start of a term; every word must match. Results come best first: exact slug, name or "
    "gene, then exact drug names, then terms every word matches exactly, then prefixes. "
    "Without `q` (or without a letter or digit in it): the whole catalogue by slug."
)
SlugPath = Annotated[str, Path(max_length=64, description="The target's slug")]


@router.get("/targets", response_model=TargetPage, responses=error_responses(422))
def list_targets(
    session: SessionDep,
    index: TargetIndexDep,
    q: Annotated[str | None, Query(max_length=MAX_QUERY_LENGTH, description=QUERY_HELP)] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = service.DEFAULT_PAGE_SIZE,
    cursor: CursorQuery = None,
) -> TargetPage:
    """The catalogue (`slug`, `name`, `description`), or the targets matching `q` with
    what they matched on (`matched_on`), `limit` per page."""
    return service.target_page(session, index, q, limit=limit, cursor=cursor)


def _out(done: changes.TargetChanged) -> TargetEntryOut:
    counts = done.rematched
    return TargetEntryOut(
        entry=changes.target_document(done.target), origin=done.target.origin,
        rematched=None if counts is None else {
            "kept": counts.kept, "newly_matched": counts.newly_matched,
            "newly_rejected": counts.newly_rejected},
    )


@router.post("/targets", status_code=201, response_model=TargetEntryOut,
             responses=error_responses(400, 401, 403, 409, 413, 422))
def add_target(session: SessionDep, admin: AdminCallerDep, entry: CatalogueEntry) -> TargetEntryOut:
    """Add a target (admin token only): a catalogue entry, checked as the file's entries
    are (each bad field named; a drug another target lists must be marked `shared_with`
    it). The stored items are matched against it at once; the change is recorded. The
    target is `local`: `alerts targets sync` never changes it."""
    done = changes.add_target(session, entry.model_dump(mode="json"),
                              by=admin.admin_name, now=utc_now())
    return _out(done)


@router.patch("/targets/{slug}", response_model=TargetEntryOut,
              responses=error_responses(400, 401, 403, 404, 413, 422))
def edit_target(
    session: SessionDep, admin: AdminCallerDep, slug: SlugPath, body: TargetChanges,  # type: ignore[valid-type]
) -> TargetEntryOut:
    """Change a target (admin token only): the keys given replace the entry's, the
    result is checked as a whole entry, a changed rule rematches the stored items, and
    the change is recorded. A target of the catalogue file keeps this edit at the next
    `alerts targets sync` (which warns when the file's entry changes too)."""
    done = changes.edit_target(session, slug, body.model_dump(mode="json", exclude_unset=True),
                               by=admin.admin_name, now=utc_now())
    return _out(done)


@router.delete("/targets/{slug}", status_code=204, response_class=Response,
               responses=error_responses(401, 403, 404, 409, 422))
def remove_target(
    session: MailingSessionDep, settings: SettingsDep, admin: AdminCallerDep, slug: SlugPath,
    force: Annotated[bool, Query(description="Also when people follow it: their alerts "
                                             "end with it")] = False,
) -> Response:
    """Remove a target (admin token only). 409 while it has pending, active or paused
    alerts, unless `force`: then each confirmed follower is mailed that the alert ended.
    Its history stays (`GET .../changes`), and `alerts targets sync` does not add it back
    from the file."""
    changes.remove_target(session, slug, by=admin.admin_name, now=utc_now(),
                          settings=settings, force=force)
    return Response(status_code=204)


@router.get("/targets/{slug}/changes", response_model=TargetChangeList,
            responses=error_responses(401, 403, 404, 422))
def target_changes(session: SessionDep, _admin: AdminCallerDep, slug: SlugPath) -> TargetChangeList:
    """Who changed the target, when and how, oldest first (admin token only); a removed
    target's history too."""
    return TargetChangeList(data=[TargetChangeOut.model_validate(change)
                                  for change in changes.target_history(session, slug)])
