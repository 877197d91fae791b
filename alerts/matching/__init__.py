"""The local match rule: does an item belong to a target, and which words say so.

The interface every caller uses (ingest, `alerts match`, rematch, the evaluation):

- `MatchInput`: the fields of one item that the rule reads, by source.
- `compile_rule(definition)`: a target's definition (its catalogue entry, or the older
  `{"genes", "mutations", "drugs"}` shape) compiled once into a `TargetRule`.
- `TargetRule.match(item) -> Match`: matched or not, the terms, and the evidence (the
  sentence or field value that decided it, with the spans of the matched words).

How the rule reads text lives behind this interface; callers never see patterns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from alerts.matching.legacy import Matcher, matcher_for

__all__ = ["Match", "MatchInput", "TargetRule", "compile_rule", "Matcher", "matcher_for"]


@dataclass(frozen=True)
class MatchInput:
    """What the rule reads of one item. Empty fields are simply not there."""

    source: str  # "pubmed" | "ctgov" | "rss"
    title: str = ""
    #: PubMed abstract, ClinicalTrials.gov brief summary, feed summary and content.
    summary: str = ""
    keywords: tuple[str, ...] = ()
    #: PubMed MeSH headings and substances.
    mesh: tuple[str, ...] = ()
    #: ClinicalTrials.gov official title.
    official_title: str = ""
    conditions: tuple[str, ...] = ()
    interventions: tuple[str, ...] = ()
    #: The whole eligibility text; the rule reads only its inclusion part.
    eligibility: str = ""


@dataclass(frozen=True)
class Match:
    matched: bool
    #: The target terms that decided it, as spelled in the text, first seen first.
    terms: tuple[str, ...] = ()
    #: The sentence or field value that decided it ("" when nothing matched).
    evidence: str = ""
    #: Which field the evidence comes from ("title", "summary", "keywords", ...).
    field: str = ""
    #: [start, end) character spans of the matched words inside `evidence`.
    highlights: tuple[tuple[int, int], ...] = ()


class TargetRule:
    """A target's compiled rule. Build with `compile_rule`; `match` is pure and cheap."""

    def __init__(self, definition: Mapping[str, Any]) -> None:
        self.definition = definition
        self._matcher = matcher_for(
            {
                "genes": definition.get("genes", ()),
                "mutations": definition.get("mutations", ())
                or (definition.get("variants") or {}).get("terms", ()),
                "drugs": [
                    d if isinstance(d, str) else d.get("name", "")
                    for d in definition.get("drugs", ())
                ],
            }
        )

    def match(self, item: MatchInput) -> Match:
        fields = [
            ("title", item.title),
            ("summary", item.summary),
            ("keywords", "; ".join(item.keywords)),
            ("mesh", "; ".join(item.mesh)),
            ("official_title", item.official_title),
            ("conditions", "; ".join(item.conditions)),
            ("interventions", "; ".join(item.interventions)),
            ("eligibility", item.eligibility),
        ]
        terms = self._matcher.match(*(text for _, text in fields))
        if terms is None:
            return Match(matched=False)
        for name, text in fields:
            lowered = text.lower()
            spans = []
            for term in terms:
                at = lowered.find(term.lower())
                if at >= 0:
                    spans.append((at, at + len(term)))
            if spans:
                return Match(True, tuple(terms), text, name, tuple(sorted(spans)))
        return Match(True, tuple(terms))


def compile_rule(definition: Mapping[str, Any]) -> TargetRule:
    """The compiled rule of a target definition, cached by the definition's content."""
    return _compile(json.dumps(definition, sort_keys=True, default=str))


@lru_cache(maxsize=1024)
def _compile(key: str) -> TargetRule:
    return TargetRule(json.loads(key))
