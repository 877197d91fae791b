"""Shapes of the target catalogue: API answers and the input of a new target."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Slugs appear in URLs and commands: lowercase letters, digits and single hyphens.
SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SLUG_RULE = "lowercase letters, digits and hyphens (e.g. her2-exon20)"


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


def _terms(values: list[str]) -> list[str]:
    """Stripped, non-empty, first spelling of each term kept."""
    seen: dict[str, str] = {}
    for value in values:
        term = value.strip()
        if term and term.lower() not in seen:
            seen[term.lower()] = term
    return list(seen.values())


class TargetCreate(BaseModel):
    """A new catalogue entry; the match terms make up the local match rule
    (a gene term with a mutation term, or a selective drug)."""

    slug: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: str = ""
    pubmed_query: str | None = None
    ctgov_term: str | None = None
    ctgov_intr: str | None = None
    genes: list[str] = []
    mutations: list[str] = []
    drugs: list[str] = []

    @field_validator("slug")
    @classmethod
    def _slug_shape(cls, value: str) -> str:
        if not SLUG_PATTERN.match(value):
            raise ValueError(f"must be {SLUG_RULE}")
        return value

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("pubmed_query", "ctgov_term", "ctgov_intr")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("genes", "mutations", "drugs")
    @classmethod
    def _clean_terms(cls, values: list[str]) -> list[str]:
        return _terms(values)

    def match_terms(self) -> dict[str, list[str]]:
        return {"genes": self.genes, "mutations": self.mutations, "drugs": self.drugs}
