"""A target's rule applied to one item, sentence by sentence.

An item is read as a list of units: each sentence of the titles, abstract or summary and
inclusion criteria, and each list field (keywords, conditions, interventions) as one
value. In each unit the rule finds the target's gene names, variant terms and drugs and
the other genes named, then decides as a reader would (see `language` for the shared
reading rules):

1. a target-specific drug counts alone;
2. a variant term counts when it belongs to a target gene mention of the same unit: the
   nearest gene name before it within `WINDOW` words (or one linked after it: "exon 20
   insertions in ERBB2", or one within `WINDOW_AFTER` words after it), where a gene
   coordinated with it ("EGFR and HER2 exon 20") counts as well, or the nearest one
   anywhere in a sentence that names no other gene; the gene mention must not be a
   status word, a drug class or negated, and the variant must not be negated;
3. for a fusion target, a gene name with one of its status words ("ALK-positive"), or
   a term naming the partner with it ("EML4-ALK");
4. for a protein or pathway target, a gene name that is not negated (nor a marker of a
   cell population); one with variant terms needs one of them with the gene, the gene's
   status and drug-class words owning them ("MET amplification", "menin inhibitors");
5. otherwise a plain mutation mention of the gene ("HER2-mutant NSCLC") counts only where
   the target says the disease makes it this target (`mutation_contexts`), and only when
   the item names no other variant of the gene and does not set the target's variants
   aside ("HER2 mutations other than exon 20 insertions");
6. a variant term in a sentence that names no gene at all belongs to the item's gene
   when the item speaks of the target's gene and of no other gene's variants (as a drug
   class only for a residue change: "EGFR inhibitors ... C797S"); one written in one
   word with the gene ("HER2ex20ins") needs no other gene name.

The first unit that decides (in field order: title, official title, summary, keywords,
conditions, interventions, inclusion criteria, MeSH) is the evidence; the terms and
highlights are that unit's. MeSH headings carry no word order, so they count only for
drugs and protein targets. Names are found with the `lexicon` (one automaton pass per
unit, shared by every rule of a catalogue); the reading rules run only on units that
hold one of the target's names.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from alerts.matching import language
from alerts.matching.definition import Definition
from alerts.matching.lexicon import (
    CONTEXT,
    DASHES,
    DRUG,
    GENE,
    OTHER,
    VARIANT,
    Hit,
    Lexicon,
    canonical,
)
from alerts.matching.spans import merge_spans

if TYPE_CHECKING:
    from alerts.matching import Match, MatchInput

#: How many words may stand between a gene name and its variant term.
WINDOW = 20
#: How many words a gene written after its variant may follow it by.
WINDOW_AFTER = 6


def add_common_genes(lexicon: Lexicon) -> None:
    """Add the genes every rule knows as "other genes" (see `language.COMMON_GENES`)."""
    for symbol in language.COMMON_GENES:
        lexicon.add(OTHER, symbol)


# --- The item as units --------------------------------------------------------------


@dataclass
class Unit:
    field: str
    #: The text as written: evidence shows it.
    text: str
    #: False for MeSH headings: a bag of terms, no sentence to read.
    ordered: bool = True

    @cached_property
    def norm(self) -> str:
        """The text with every dash a hyphen, one character for one, for the patterns."""
        return self.text.translate(DASHES)

    @cached_property
    def word_starts(self) -> list[int]:
        return [m.start() for m in language.WORD.finditer(self.norm)]

    @cached_property
    def negated(self) -> list[tuple[int, int]]:
        return language.negated_spans(self.norm)

    def words_between(self, start: int, end: int) -> int:
        return bisect_left(self.word_starts, end) - bisect_left(self.word_starts, start)

    def is_negated(self, start: int, end: int) -> bool:
        if any(s <= start < e for s, e in self.negated):
            return True
        return bool(language.NEGATION_AFTER.match(self.norm, end))

    def hits(self, lexicon: Lexicon) -> list[Hit]:
        """The lexicon's terms in this unit, found once per lexicon."""
        cache: dict[int, list[Hit]] = self.__dict__.setdefault("_hits", {})
        found = cache.get(id(lexicon))
        if found is None:
            found = cache[id(lexicon)] = lexicon.find(self.text)
        return found


#: Fields that say what an item is about, not what it also mentions.
_HEADLINE_FIELDS = ("title", "official_title", "keywords", "conditions")
_TITLE_FIELDS = ("title", "official_title")
#: The fields a rule reads, in the order evidence is chosen from.
_TEXT_FIELDS = ("title", "official_title", "summary")
_LIST_FIELDS = ("keywords", "conditions", "interventions")


class Document:
    """An item cut into units once; every target's rule reads the same units."""

    def __init__(self, item: MatchInput) -> None:
        units: list[Unit] = []
        for name in _TEXT_FIELDS:
            units += _sentences(name, getattr(item, name))
        for name in _LIST_FIELDS:
            values = [v.strip() for v in getattr(item, name) if v and v.strip()]
            if values:
                units.append(Unit(name, "; ".join(values)))
        units += _sentences("eligibility", language.inclusion_part(item.eligibility))
        self._texts = (item.title, item.official_title, item.summary, item.eligibility)
        mesh = [v.strip() for v in item.mesh if v and v.strip()]
        if mesh:
            units.append(Unit("mesh", "; ".join(mesh), ordered=False))
        self.units = units


    @cached_property
    def abbreviations(self) -> dict[str, str]:
        """Short forms the item defines as something other than a gene ("postnatal day
        1 (PD1)"): a target gene spelled so is not the gene in this item."""
        found: dict[str, str] = {}
        for text in self._texts:
            if text and "(" in text:
                found.update(language.defined_abbreviations(text))
        return found


def _sentences(name: str, text: str) -> list[Unit]:
    text = text or ""
    return [Unit(name, text[s:e]) for s, e in language.sentences(text)]


# --- Mentions -----------------------------------------------------------------------


@dataclass
class Mention:
    start: int
    end: int
    #: "plain", "mutation" (a plain mutation word), "status", "class", "marker" (a cell
    #: population: "CD19+ B cells") or "other".
    role: str = "plain"
    #: For a status mention: the status word; for a mutation mention: the word.
    word: str = ""
    negated: bool = False
    #: The gene name as found, without case and separators ("cldn18.2").
    name: str = ""

    @property
    def is_target(self) -> bool:
        return self.role != "other"


@dataclass
class Finding:
    """Spans of one unit that count toward the target, and the words they are."""

    unit: Unit
    spans: list[tuple[int, int]] = field(default_factory=list)

    @property
    def terms(self) -> list[str]:
        return [self.unit.text[s:e] for s, e in self.spans]


@dataclass
class Reading:
    """What a rule found in a whole item."""

    counting: list[Finding] = field(default_factory=list)
    generic: list[Finding] = field(default_factory=list)
    #: Units naming the target's gene, with what was found there, for `_names_other_variant`.
    gene_units: list[tuple[Unit, list[Mention], list[tuple[int, int]], list[Mention]]] = field(
        default_factory=list)
    #: A target variant is named but set aside ("other than exon 20 insertions").
    negated_variant: bool = False
    #: Variant terms in sentences that name no gene, left for the item's gene.
    orphans: list[Finding] = field(default_factory=list)
    #: A variant term belongs to another gene somewhere in the item ("EGFR exon 20").
    others_own_variants: bool = False
    target_gene_named: bool = False
    #: The target gene is named as a drug class ("EGFR inhibitors").
    class_named: bool = False


class Rule:
    """The compiled reading of one target definition."""

    def __init__(self, definition: Definition, lexicon: Lexicon) -> None:
        """`lexicon` must hold the definition's names (see `add_names`)."""
        self.definition = definition
        self.lexicon = lexicon
        self.gene_ids = {lexicon.add(GENE, g) for g in definition.genes}
        self.drug_ids = {lexicon.add(DRUG, n) for d in definition.drugs for n in d.spellings}
        self.variant_ids = {lexicon.add(VARIANT, t) for t in definition.variant_terms}
        self.variant_keys = {lexicon.terms[i].key for i in self.variant_ids}
        self.context_ids = {lexicon.add(CONTEXT, c) for c in definition.mutation_contexts}
        self.own_ids = self.gene_ids | self.drug_ids | self.variant_ids
        #: A variant term written as one word with the gene ("HER2ex20ins") needs no other.
        self.gene_keys = tuple(lexicon.terms[i].key.lower() for i in self.gene_ids)
        self.variant_patterns = [_pattern(p) for p in definition.variant_patterns]
        self.status_terms = {canonical(t) for t in definition.status_terms}
        #: The gene's own names, so that "(PD-1)" after "programmed death-1" stays the gene.
        self.names = {canonical(g) for g in definition.genes}
        #: The exons the variant terms name, for lists such as "exon 19 or 20".
        self.exons = {
            int(m.group(1)) for t in definition.variant_terms
            for m in [re.fullmatch(r"exon[\s-]*(\d+)", t, re.IGNORECASE)] if m
        }

    @staticmethod
    def add_names(lexicon: Lexicon, definition: Definition, owner: str | None = None) -> None:
        """Put a definition's names into a lexicon (before it is built)."""
        for gene in definition.genes:
            lexicon.add(GENE, gene, owner)
        for drug in definition.drugs:
            for name in drug.spellings:
                lexicon.add(DRUG, name, owner)
        for term in definition.variant_terms:
            lexicon.add(VARIANT, term)
        for context in definition.mutation_contexts:
            lexicon.add(CONTEXT, context)

    # The decision ----------------------------------------------------------------

    def match(self, document: Document) -> Match:
        from alerts.matching import Match

        reading = self.read(document)
        findings = reading.counting
        if not findings and reading.orphans and self._owns_orphans(reading) and not (
            reading.others_own_variants or reading.negated_variant
        ):
            findings = reading.orphans
        if not findings and reading.generic and self.context_ids and not (
            reading.negated_variant or self._names_other_variant(reading)
        ):
            findings = self._generic_in_context(reading.generic, document)
        if not findings:
            return Match(matched=False)
        terms: dict[str, str] = {}
        for finding in findings:
            for term in finding.terms:
                terms.setdefault(re.sub(r"[\s\-]", "", term).lower(), term)
        first = findings[0]
        return Match(
            matched=True,
            terms=tuple(terms.values()),
            evidence=first.unit.text,
            field=first.unit.field,
            highlights=tuple(merge_spans(first.spans)),
        )

    @staticmethod
    def _owns_orphans(reading: Reading) -> bool:
        """Whether the item's gene owns the variant terms of sentences naming no gene: it
        names the gene; or names it only as a drug class ("fourth-generation EGFR
        inhibitors ... C797S") and a variant is a residue change, which belongs to one
        gene, unlike an exon ("anti-HER2 therapy after exon 20 insertion")."""
        if reading.target_gene_named:
            return True
        return reading.class_named and any(
            language.PROTEIN_CHANGE.fullmatch(term)
            for finding in reading.orphans for term in finding.terms
        )

    def _generic_in_context(self, generic: list[Finding], document: Document) -> list[Finding]:
        """Plain mutation mentions that make the item this target: the gene's mutation
        is its subject (named in a headline field, or in two sentences or more) and the
        disease of the target's context is named with it (in the same unit or a title)."""
        if not self.context_ids or not generic:
            return []
        headline = [f for f in generic if f.unit.field in _HEADLINE_FIELDS]
        if not headline and len(generic) < 2:
            return []
        if any(self._names_context(u) for u in document.units if u.field in _TITLE_FIELDS):
            return generic
        return [f for f in generic if self._names_context(f.unit)]

    def _names_context(self, unit: Unit) -> bool:
        return any(h.term in self.context_ids for h in unit.hits(self.lexicon))

    def read(self, document: Document) -> Reading:
        reading = Reading()
        for unit in document.units:
            hits = unit.hits(self.lexicon)
            if any(h.term in self.own_ids for h in hits) or any(
                p.search(unit.norm) for p in self.variant_patterns
            ):
                self._read_unit(unit, hits, reading, document)
                if reading.counting:  # decided: the rest cannot undo it
                    break
        return reading

    def _read_unit(
        self, unit: Unit, hits: list[Hit], reading: Reading, document: Document
    ) -> None:
        counted: list[tuple[int, int]] = [
            (h.start, h.end) for h in hits
            if h.term in self.drug_ids and not language.ABSENT_AFTER.match(unit.norm, h.end)
        ]
        genes = self._gene_mentions(unit, hits, document.abbreviations)
        if any(g.role in ("plain", "mutation") and not g.negated for g in genes):
            reading.target_gene_named = True
        if any(g.role == "class" and not g.negated for g in genes):
            reading.class_named = True
        if not unit.ordered:
            if self.definition.gene_alone_counts:
                counted += [(g.start, g.end) for g in genes if not g.negated]
            if counted:
                reading.counting.append(Finding(unit, sorted(counted)))
            return
        protein = self.definition.protein_level
        for gene in genes:
            if gene.negated or gene.role == "marker" or (gene.role == "class" and not protein):
                continue
            if self.definition.gene_alone_counts or (
                gene.role == "status" and self._names_target(gene.word)
            ) or (gene.role == "mutation" and self._lists_as_variant(gene.word)) or (
                protein and gene.name in self.variant_keys
            ):  # a gene form that carries the variant itself: "CLDN18.2", "FGFR2b"
                counted.append((gene.start, gene.end))
        variants = self._variant_mentions(unit, hits, genes)
        others = [
            Mention(h.start, h.end, "other") for h in hits
            if self.lexicon.terms[h.term].role in (GENE, OTHER) and h.term not in self.gene_ids
            and not any(g.start <= h.start < g.end or h.start <= g.start < h.end for g in genes)
        ]
        owners = sorted([g for g in genes if protein or g.role != "class"] + others,
                        key=lambda m: m.start)
        # Whose variant a term can be: a plain or mutation mention; for a protein target
        # also its status ("MET amplification") and drug-class ("CD20xCD3 bispecific") words.
        owning = ("plain", "mutation", "status", "class") if protein else ("plain", "mutation")
        orphans: list[tuple[int, int]] = []
        for start, end in variants:
            negated = unit.is_negated(start, end)
            if self._spells_gene(unit.text[start:end]):
                if not negated:
                    counted.append((start, end))
                continue
            # A term that holds the gene names both at once: "EML4-ALK", "MTAP-deleted".
            inside = [g for g in genes if start <= g.start < end]
            owner = inside[0] if inside else _owner(unit, owners, start, end)
            if owner is None:
                if not negated and not owners:
                    orphans.append((start, end))
                continue
            if not owner.is_target:
                reading.others_own_variants = True
                continue
            if negated:
                reading.negated_variant = True
            elif owner.role in owning and not owner.negated:
                counted += [(owner.start, owner.end), (start, end)]
        if counted:
            reading.counting.append(Finding(unit, sorted(set(counted))))
        if orphans:
            reading.orphans.append(Finding(unit, orphans))
        generic = [g for g in genes if g.role == "mutation" and not g.negated]
        if generic:
            reading.generic.append(Finding(unit, [(g.start, g.end) for g in generic]))
        if genes:
            reading.gene_units.append((unit, genes, variants, owners))

    def _spells_gene(self, written: str) -> bool:
        """A term written in one word with the gene: "HER2ex20ins", "BRAFV600E"."""
        return written.isalnum() and any(key in written.lower() for key in self.gene_keys)

    def _lists_as_variant(self, word: str) -> bool:
        """A definition that lists a plain mutation word ("mutation", as the older shape
        does) as a variant term asks for any mutation of the gene."""
        key = canonical(word)
        return any(
            key in (term.key, term.key + "s", term.key + "es")
            for term in (self.lexicon.terms[i] for i in self.variant_ids)
        )

    def _gene_mentions(
        self, unit: Unit, hits: list[Hit], abbreviations: dict[str, str]
    ) -> list[Mention]:
        text = unit.norm
        mentions: list[Mention] = []
        for hit in hits:
            if hit.term not in self.gene_ids or (mentions and hit.start < mentions[-1].end):
                continue
            written = unit.text[hit.start:hit.end]
            if written in abbreviations and canonical(abbreviations[written]) not in self.names:
                continue  # "resistance exercise training (RET)": not the gene here
            start, end = hit.start, hit.end
            mention = Mention(start, end, name=canonical(written))
            before = text[max(0, start - 40) : start]
            status = language.STATUS_AFTER.match(text, end)
            own = self._own_status(text, end)
            if own is not None:
                mention.role, mention.word, mention.end = "status", text[own[0]:own[1]], own[1]
            elif language.DRUG_CLASS_AFTER.match(text, end):
                mention.role = "class"
            elif status:
                mention.role, mention.word = "status", language.status_word(status)
                if mention.word.lower().startswith("positiv") and (
                        language.CELL_POPULATION_AFTER.match(text, status.end())):
                    mention.role = "marker"  # "CD19+ B cells": a cell population
            elif prior_status := language.STATUS_BEFORE.search(before):
                mention.role, mention.word = "status", prior_status["word"]
            else:
                after = language.MUTATION_AFTER.match(text, end)
                prior = language.MUTATION_BEFORE.search(before)
                if after:
                    mention.role, mention.word, mention.end = "mutation", after["word"], after.end()
                elif prior:
                    mention.role, mention.word = "mutation", prior["word"]
                    mention.start = max(0, start - 40) + prior.start()
            mention.negated = unit.is_negated(start, mention.end) or (
                mention.role == "status"
                and bool(language.NEGATIVE_STATUS.fullmatch(mention.word))
            )
            mentions.append(mention)
        return mentions

    def _names_target(self, word: str) -> bool:
        """Whether a status word is one of the target's ("positivity" is "positive")."""
        key = canonical(word)
        return key in self.status_terms or (
            key.startswith("positiv") and "positive" in self.status_terms)

    def _own_status(self, text: str, end: int) -> tuple[int, int] | None:
        """The span of one of the target's status terms written with the gene name
        ("ALK-positive", "ALK (anaplastic lymphoma kinase)-rearranged")."""
        if not self.status_terms:
            return None
        found = language.NEXT_WORD.match(text, end)
        if found and self._names_target(found["word"]):
            return found.span("word")
        return None

    def _variant_mentions(
        self, unit: Unit, hits: list[Hit], genes: Sequence[Mention]
    ) -> list[tuple[int, int]]:
        text = unit.norm
        spans = [(h.start, h.end) for h in hits if h.term in self.variant_ids]
        for pattern in self.variant_patterns:
            spans += [m.span() for m in pattern.finditer(text)]
        if self.exons:
            spans += [
                m.span() for m in language.EXON_LIST.finditer(text)
                if self.exons & {int(n) for n in re.findall(r"\d+", m["numbers"])}
            ]
        # A term that spells a gene name in itself is that gene's variant when written in
        # one word ("HER2ex20ins"), when it names a partner before the gene ("EML4-ALK"),
        # or when it holds the gene's drug-class or status word ("menin inhibitor");
        # spelled apart from a plain mention ("ERBB2 ex20ins"), the gene and the variant
        # are read as two words.
        spans = [
            (s, e) for s, e in spans
            if unit.text[s:e].isalnum()
            or not any(g.start == s and (g.role == "plain" or e <= g.end) for g in genes)
        ]
        # Overlapping spans: keep the longest; words of a gene mention are not variants
        # ("HER2-mutant" is the gene's mutation word, not a variant term).
        kept: list[tuple[int, int]] = []
        for start, end in sorted(spans, key=lambda s: (s[0], -(s[1] - s[0]))):
            if kept and start < kept[-1][1]:
                if end > kept[-1][1]:
                    kept[-1] = (kept[-1][0], end)
                continue
            kept.append((start, end))
        return [
            (s, e) for s, e in kept
            if (self._spells_gene(unit.text[s:e])
                or not any(g.start <= s and e <= g.end and g.role != "plain" for g in genes))
            and not _another_change(text, s, e)
        ]

    def _names_other_variant(self, reading: Reading) -> bool:
        """Whether the item names a variant of the target gene that is not the target's
        ("HER2 L755S", "HER2 point mutations", "exon 19")."""
        for unit, genes, variants, owners in reading.gene_units:
            candidates = [m.span() for m in language.PROTEIN_CHANGE.finditer(unit.norm)]
            candidates += [m.span() for m in language.OTHER_VARIANT_WORDS.finditer(unit.norm)]
            for start, end in candidates:
                if any(s < end and start < e for s, e in variants):
                    continue
                if any(g.start <= start and end <= g.end for g in genes):
                    continue
                owner = _owner(unit, owners, start, end)
                if owner is not None and owner.is_target and not unit.is_negated(start, end):
                    return True
        return False


@lru_cache(maxsize=4096)
def _pattern(pattern: str) -> re.Pattern[str]:
    """A definition's variant pattern, compiled once however many targets share it."""
    return re.compile(pattern, re.IGNORECASE)


def _another_change(text: str, start: int, end: int) -> bool:
    """A bare location ("exon 20") that the sentence says is another kind of change."""
    if not language.LOCATION_ONLY.fullmatch(text, start, end):
        return False
    return bool(language.OTHER_CHANGE_AFTER.match(text, end)
                or language.OTHER_CHANGE_BEFORE.search(text, max(0, start - 50), start))


def _owner(unit: Unit, owners: Sequence[Mention], start: int, end: int) -> Mention | None:
    """The gene mention a variant term at [start, end) belongs to, if any."""
    text = unit.norm
    after = [m for m in owners if m.start >= end]
    before = [m for m in owners if m.end <= start]
    if after and language.LINK_TO_GENE_AFTER.match(text[end : after[0].start]):
        return after[0]
    if before and unit.words_between(before[-1].end, start) <= WINDOW:
        owner = before[-1]
        if owner.is_target:
            return owner
        # "EGFR and HER2 exon 20", "HER2 or EGFR exon 20 insertions": coordinated genes
        # share the variant.
        chain = before[-1]
        for previous in reversed(before[:-1]):
            if previous.role not in ("plain", "other") or not language.COORDINATION.match(
                text[previous.end : chain.start]
            ):
                break
            if previous.is_target:
                return previous
            chain = previous
        return owner
    if after and unit.words_between(end, after[0].start) <= WINDOW_AFTER:
        return after[0]
    # A sentence about one gene only: its variant terms are that gene's, however far
    # ("insertions ... are the predominant HER2 alteration").
    if owners and all(m.is_target for m in owners):
        return min(owners, key=lambda m: min(abs(m.start - end), abs(start - m.end)))
    return None


