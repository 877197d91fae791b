"""`GET /api/v1/targets/{slug}/progress`: the pipeline and the weekly counts."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field


class DrugOut(BaseModel):
    drug: str = Field(description="generic name where the catalogue knows the drug")
    target_drug: bool = Field(description="one of the target's own drugs in the catalogue")
    highest_phase: str = Field(description="e.g. 'Phase 1/2'; withdrawn trials do not count")
    highest_phase_rank: int = Field(description="0 (not applicable) to 8 (phase 4)")
    trials: int
    recruiting: int = Field(description="recruiting, not yet recruiting or by invitation")
    active: int = Field(description="active, not recruiting")
    completed: int
    withdrawn: int
    other: int = Field(description="terminated, suspended, unknown ...")
    nct_ids: list[str]
    newest_change: str | None
    newest_change_at: datetime | None


class WeekOut(BaseModel):
    week_start: date = Field(description="Monday of the week (UTC)")
    publications: int
    new_trials: int
    trial_updates: int
    news: int


class ProgressOut(BaseModel):
    slug: str
    name: str
    description: str
    pipeline: list[DrugOut]
    weeks: list[WeekOut] = Field(description="the last 52 weeks, oldest first")
