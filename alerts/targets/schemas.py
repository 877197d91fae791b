"""Shapes of the target catalogue: API answers, a target's entry, its changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from alerts.targets.catalogue import CatalogueEntry


class TargetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    slug: str
    name: str
    description: str
    matched_on: list[str] = Field(
        default=[],
        description="Why the target matched `q`: the terms that matched, each as "
        '"<kind>: <term>" with kind one of slug, name, gene, variant, drug (a code or '
        'brand as "drug: <generic name> (<code or brand>)") and related drug, e.g. '
        '"drug: zongertinib". Empty without `q`.',
        examples=[["drug: zongertinib"], ["gene: HER2", "variant: ex20ins"]],
    )


class TargetPage(BaseModel):
    data: list[TargetOut]
    next_cursor: str | None = None


class TargetEntryOut(BaseModel):
    """A target as a catalogue entry (alerts/targets/catalogue.toml's keys), with who owns
    it: `file` (the catalogue file; a local edit is kept by `alerts targets sync`) or
    `local` (added by hand: sync never touches it)."""

    entry: dict[str, Any]
    origin: str
    #: When the stored items were decided again because the rule was new or changed.
    rematched: dict[str, int] | None = None


#: Every key of an entry but its slug, each optional: a PATCH replaces the keys it names.
_OPTIONAL_KEYS: dict[str, Any] = {
    name: (field.annotation | None, None)  # type: ignore[operator]
    for name, field in CatalogueEntry.model_fields.items() if name != "slug"
}
TargetChanges = create_model(
    "TargetChanges",
    __config__=ConfigDict(extra="forbid"),
    __doc__="Keys of the target's catalogue entry to replace (the slug stays); null "
            "clears an optional key. The result is checked as a whole entry.",
    **_OPTIONAL_KEYS,
)


class TargetChangeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    target_slug: str
    action: str = Field(description="add, edit or remove")
    changed_by: str = Field(description='"catalogue sync", "<user> (command line)" or '
                                        '"admin token <fingerprint>"')
    changed_at: datetime
    before: dict[str, Any] | None = Field(description="the entry before (null for an add)")
    after: dict[str, Any] | None = Field(description="the entry after (null for a removal)")


class TargetChangeList(BaseModel):
    data: list[TargetChangeOut]
