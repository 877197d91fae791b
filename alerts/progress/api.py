"""`GET /api/v1/targets/{slug}/progress`: the target's pipeline and weekly counts."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from alerts.deps import DrugNamesDep, SessionDep
from alerts.progress import service
from alerts.progress.schemas import DrugOut, ProgressOut, WeekOut
from db.clock import utc_now

router = APIRouter(prefix="/api/v1", tags=["targets"])


@router.get("/targets/{slug}/progress", response_model=ProgressOut,
            responses={404: {"description": "unknown target"}})
def target_progress(
    slug: str,
    session: SessionDep,
    names: DrugNamesDep,
    sort: Annotated[Literal["phase", "name", "recent"], Query(
        description="pipeline order: furthest phase first, by name, or newest change first"
    )] = "phase",
) -> ProgressOut:
    """Each drug named in the target's trials with its highest phase and trials by
    status, and matched items per week over the last year, by kind."""
    progress = service.target_progress(session, slug, today=utc_now().date(),
                                        names_cache=names, sort=sort)
    target = progress.target
    return ProgressOut(
        slug=target.slug, name=target.name, description=target.description,
        pipeline=[
            DrugOut(
                drug=d.name, target_drug=d.target_drug, highest_phase=d.highest_phase_label,
                highest_phase_rank=d.highest_phase, trials=d.trial_count,
                recruiting=d.recruiting, active=d.active, completed=d.completed,
                withdrawn=d.withdrawn, other=d.other, nct_ids=d.trials,
                newest_change=d.newest_change or None, newest_change_at=d.newest_change_at,
            )
            for d in progress.pipeline
        ],
        weeks=[WeekOut(week_start=w.start, **w.counts) for w in progress.weeks],
    )
