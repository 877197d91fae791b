"""Shapes of reader labels in the admin API and in exported evaluation cases."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel


class Label(StrEnum):
    not_relevant = "not_relevant"


class LabelOut(BaseModel):
    id: int
    target: str
    label: Label
    created_at: datetime
    source: str
    external_id: str
    title: str
    url: str


class LabelPage(BaseModel):
    data: list[LabelOut]
    next_cursor: str | None
