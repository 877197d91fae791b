"""The local match rule: does an item belong to a target, and which words say so.

The interface every caller uses (ingest, `alerts match`, rematch, the evaluation):

- `MatchInput`: the fields of one item that the rule reads, by source.
- `compile_rule(definition)`: a target's definition (its catalogue entry, or the older
  `{"genes", "mutations", "drugs"}` shape) compiled once into a `TargetRule`.
- `TargetRule.match(item) -> Match`: matched or not, the terms, and the evidence (the
  sentence or field value that decided it, with the spans of the matched words).
- `compile_catalogue(definitions)`: every target behind one scan of an item's text,
  `.match(item) -> {slug: Match}` for the targets it matches.

How the rule reads text lives behind this interface (`rule` reads sentences, `language`
holds the reading rules shared by every target); callers never see patterns.

A target definition (a `[[targets]]` entry of alerts/targets/catalogue.toml; the keys the
rule reads, others such as slug, name, queries and sources are ignored here):

    kind = "variant"        # variant | fusion | protein | pathway
    genes = ["ERBB2", "HER2", "NEU"]   # HGNC symbol first, then aliases; spaces and
                            # hyphens are optional ("HER-2", "ErbB-2" are "HER2",
                            # "ERBB2"); short all-letter symbols ("MET", "RET") match
                            # only in the case written
    variant_terms = ["exon 20 insertion", "ex20ins", "YVMA"]   # literal, any case,
                            # spaces/hyphens optional, plural allowed; "exon N" also
                            # matches lists ("exon 19 or 20")
    variant_patterns = ['...']   # Python regexes, case-insensitive (HGVS notation)
    related_drugs = ["poziotinib"]   # drugs also used elsewhere: never count alone
    positive_status_counts = true   # "<GENE>-positive" and its kin name the target:
                            # for a fusion "ALK-positive", "ROS1-rearranged", "ALK+";
                            # for a protein "c-Met-positive", "MET amplification";
                            # default false, so "HER2-positive" is a receptor status,
                            # not HER2 exon 20. "HER2-negative", "HER2-", "HER2-zero"
                            # always negate the gene.
    status_terms = ["positive", "rearranged"]   # or the status words themselves
    mutation_contexts = ["NSCLC"]   # diseases where a plain "GENE-mutant" of the
                            # item's subject is the target; default none
    [[targets.drugs]]       # target-specific drugs: each counts alone
    name = "zongertinib"
    codes = ["BI 1810631"]  # also matched as "BI-1810631" and "BI1810631"
    brands = ["Hernexeos"]
    shared_with = []        # other targets listing the drug (for the catalogue review)

What counts: a target drug alone (not "<drug>-free"); a variant term or pattern together
with a target gene mention that it belongs to in the same sentence (see `rule`), or a
term naming a partner with the gene ("EML4-ALK"); for fusion targets a gene with one of
its status terms; for protein and pathway targets without variant terms a gene mention
that is not negated (its status, "anti-HER2", and drug-class words, "BCMA CAR-T",
included; a cell-population marker, "CD19+ B cells", not); protein and pathway targets
with variant terms ("CLDN18" needs "18.2", "MET" needs "amplification", "menin" needs
"inhibitor" or a leukaemia word) need one of them with the gene. A short form the item
defines as something else ("resistance exercise training (RET)") is not the gene there.
In the older shape, `mutations` are variant terms (a listed "mutation" then
makes any "HER2 mutation" count, as that shape meant) and `drugs` are names.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from alerts.matching.catalogue import CatalogueRule
from alerts.matching.definition import DefinitionError, read_definition
from alerts.matching.lexicon import Lexicon
from alerts.matching.rule import Document, Rule, add_common_genes

__all__ = [
    "CatalogueRule",
    "DefinitionError",
    "Match",
    "MatchInput",
    "TargetRule",
    "compile_catalogue",
    "compile_rule",
]


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

    @classmethod
    def from_json(cls, data: Any) -> MatchInput:
        """An item from a JSON object (`alerts match`, the evaluation set): `source`,
        `title`, `summary`, and any of the other fields; lists for the list fields; a
        feed's `content` is read with its summary.
        Raises ValueError saying which field is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError("expected a JSON object")
        source = data.get("source")
        if source not in SOURCES:
            raise ValueError(f"source: expected one of {', '.join(SOURCES)}, got {source!r}")
        values: dict[str, Any] = {"source": source}
        for name in _TEXT_FIELDS:
            value = data.get(name) or ""
            if not isinstance(value, str):
                raise ValueError(f"{name}: expected a string")
            values[name] = value
        for name in _LIST_FIELDS:
            value = data.get(name) or []
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{name}: expected a list of strings")
            values[name] = tuple(value)
        content = data.get("content")
        if content:  # a feed entry's content, read with its summary
            if not isinstance(content, str):
                raise ValueError("content: expected a string")
            values["summary"] = f"{values['summary']}\n{content}".strip()
        return cls(**values)


SOURCES = ("pubmed", "ctgov", "rss")
_TEXT_FIELDS = ("title", "summary", "official_title", "eligibility")
_LIST_FIELDS = ("keywords", "mesh", "conditions", "interventions")


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
        parsed = read_definition(definition)
        lexicon = Lexicon()
        add_common_genes(lexicon)
        Rule.add_names(lexicon, parsed)
        self._rule = Rule(parsed, lexicon.build())

    def match(self, item: MatchInput) -> Match:
        return self._rule.match(Document(item))


def compile_rule(definition: Mapping[str, Any]) -> TargetRule:
    """The compiled rule of a target definition, cached by the definition's content.

    Raises `DefinitionError` (a ValueError) naming the key of a definition it cannot use.
    """
    return _compile(json.dumps(definition, sort_keys=True, default=str))


@lru_cache(maxsize=1024)
def _compile(key: str) -> TargetRule:
    return TargetRule(json.loads(key))


def compile_catalogue(
    definitions: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]],
) -> CatalogueRule:
    """All targets compiled into one scan: `.match(item)` returns {slug: Match} for the
    targets the item matches. Takes {slug: definition} or catalogue entries with a `slug`.
    """
    if not isinstance(definitions, Mapping):
        definitions = {entry["slug"]: entry for entry in definitions}
    return CatalogueRule(definitions)
