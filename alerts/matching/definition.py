"""A target definition as the rule reads it, from a catalogue entry or the older shape.

Two shapes are accepted, so stored targets keep working:

- a catalogue entry (alerts/targets/catalogue.toml; the format is described in the
  package docstring): `kind`, `genes`, `variant_terms`, `variant_patterns`, `drugs` as
  tables with `name`, `codes`, `brands`, `related_drugs`, `status_terms` (or
  `positive_status_counts = true`, which gives the status words of the target's kind),
  `mutation_contexts`;
- the older `{"genes", "mutations", "drugs"}`: mutations are variant terms, drugs are
  plain names that count alone.

A definition that cannot be read raises `DefinitionError` naming the key and the problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("variant", "fusion", "protein", "pathway")
#: What "<GENE>-positive" and its kin name when a catalogue entry says
#: `positive_status_counts = true`: for a fusion target the rearranged gene ("ALK-positive",
#: "ROS1-rearranged", "ALK+"); for a protein target the expressed protein ("c-Met-positive",
#: "MET amplification", "FGFR2b overexpression", "HER2+").
STATUS_WORDS = {
    "fusion": ("positive", "rearranged", "rearrangement", "rearrangements", "fusion", "fusions",
               "fused", "translocated", "translocation"),
    "protein": ("positive", "high", "amplified", "amplification", "overexpression",
                "overexpressed", "overexpressing", "expression", "expressing", "expressed",
                "enriched", "directed", "targeted", "targeting", "low", "ihc",
                "immunohistochemistry", "immunohistochemical", "staining", "score", "scores",
                "status", "protein"),
}


class DefinitionError(ValueError):
    """A target definition the rule cannot use."""


@dataclass(frozen=True)
class Drug:
    name: str
    codes: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()

    @property
    def spellings(self) -> tuple[str, ...]:
        return tuple(s for s in (self.name, *self.codes, *self.brands) if s)


@dataclass(frozen=True)
class Definition:
    kind: str
    genes: tuple[str, ...]
    variant_terms: tuple[str, ...] = ()
    variant_patterns: tuple[str, ...] = ()
    drugs: tuple[Drug, ...] = ()
    related_drugs: tuple[str, ...] = ()
    #: Status words that, written with a gene name, name this target itself
    #: ("ALK-positive", "ALK-rearranged" for a fusion target).
    status_terms: tuple[str, ...] = ()
    #: Diseases in which a plain mutation mention of the gene ("HER2-mutant") is read
    #: as this target, because the target's variants are most of the gene's mutations
    #: there.
    mutation_contexts: tuple[str, ...] = ()

    @property
    def protein_level(self) -> bool:
        """Protein- and pathway-level targets are about the gene product itself: its
        expression, the drugs aimed at it ("BCMA CAR-T", "anti-PD-1") are the target."""
        return self.kind in ("protein", "pathway")

    @property
    def gene_alone_counts(self) -> bool:
        """A protein or pathway target without variant terms is named by its gene alone;
        one with variant terms ("CLDN18" needs "18.2", "MET" needs "amplification",
        "menin" needs its leukaemia words) needs one of them with the gene."""
        return self.protein_level and not (self.variant_terms or self.variant_patterns)

    @property
    def names(self) -> tuple[str, ...]:
        """Every gene and drug spelling: one of them must occur for the rule to match."""
        return self.genes + tuple(s for d in self.drugs for s in d.spellings)


def read_definition(raw: Mapping[str, Any]) -> Definition:
    """The definition of a catalogue entry or of the older match-terms shape."""
    if not isinstance(raw, Mapping):
        raise DefinitionError("a target definition is a table of keys")
    options = raw.get("rule")
    if options is not None:
        # The catalogue keeps rule options (status_terms, mutation_contexts) in the
        # entry's [targets.rule] table; they read as the entry's own keys.
        if not isinstance(options, Mapping):
            raise DefinitionError("rule: expected a table of rule options")
        raw = {**raw, **options}
    kind = raw.get("kind", "variant")
    if kind not in KINDS:
        raise DefinitionError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    patterns = _strings(raw, "variant_patterns")
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise DefinitionError(f"variant_patterns: {pattern!r} is not a regex: {exc}") from None
    genes = _strings(raw, "genes")
    drugs = tuple(_drug(d) for d in _list(raw, "drugs"))
    if not genes and not drugs:
        raise DefinitionError("genes: a target needs at least one gene or drug name")
    return Definition(
        kind=kind,
        genes=genes,
        variant_terms=_strings(raw, "variant_terms") + _strings(raw, "mutations"),
        variant_patterns=patterns,
        drugs=drugs,
        related_drugs=_strings(raw, "related_drugs"),
        status_terms=_strings(raw, "status_terms") or _status_words(raw, kind),
        mutation_contexts=_strings(raw, "mutation_contexts"),
    )


def _status_words(raw: Mapping[str, Any], kind: str) -> tuple[str, ...]:
    counts = raw.get("positive_status_counts", False)
    if not isinstance(counts, bool):
        raise DefinitionError("positive_status_counts: expected true or false")
    if not counts:
        return ()
    return STATUS_WORDS["fusion" if kind == "fusion" else "protein"]


def _list(raw: Mapping[str, Any], key: str) -> list[Any]:
    value = raw.get(key) or []
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise DefinitionError(f"{key}: expected a list")
    return list(value)


def _strings(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    values = _list(raw, key)
    if not all(isinstance(v, str) for v in values):
        raise DefinitionError(f"{key}: expected a list of strings")
    return tuple(v.strip() for v in values if v.strip())


def _drug(raw: Any) -> Drug:
    if isinstance(raw, str):
        return Drug(raw.strip())
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
        raise DefinitionError("drugs: each drug is a name or a table with a `name`")
    return Drug(raw["name"].strip(), _strings(raw, "codes"), _strings(raw, "brands"))
