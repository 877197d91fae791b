"""A target's rule applied to one item, sentence by sentence.

An item is read as a list of units: each sentence of the titles, abstract or summary and
inclusion criteria, and each list field (keywords, conditions, interventions) as one
value. In each unit the rule finds the target's gene names, variant terms and drugs and
the other genes named, then decides as a reader would (see `language` for the shared
reading rules):

1. a target-specific drug counts alone;
2. a variant term counts when it belongs to a target gene mention of the same unit: the
   nearest gene name before it within `WINDOW` words (or one linked after it: "exon 20
   insertions in ERBB2"), where a gene coordinated with it ("EGFR and HER2 exon 20")
   counts as well; the gene mention must not be a status word, a drug class or negated,
   and the variant must not be negated;
3. for a fusion target, a gene name with one of its `status_terms` ("ALK-positive");
4. for a protein or pathway target, a gene name that is not negated;
5. otherwise a plain mutation mention of the gene ("HER2-mutant NSCLC") counts only where
   the target says the disease makes it this target (`mutation_contexts`), and only when
   the item names no other variant of the gene and does not set the target's variants
   aside ("HER2 mutations other than exon 20 insertions");
6. a variant term in a sentence that names no gene at all belongs to the item's gene
   when the item speaks of the target's gene and of no other gene's variants.

MeSH headings carry no word order, so they count only for drugs and protein targets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import ahocorasick

from alerts.matching import language
from alerts.matching.definition import Definition

if TYPE_CHECKING:
    from alerts.matching import Match, MatchInput

#: How many words may stand between a gene name and its variant term.
WINDOW = 20
#: How many words a gene written after its variant may follow it by.
WINDOW_AFTER = 6

_ALNUM = "A-Za-z0-9"


def term_pattern(term: str) -> str:
    """A literal term as a regex body: spaces and hyphens interchangeable or absent,
    letters and digits may be split ("exon20" = "exon 20" = "exon-20")."""
    parts = [p for p in re.split(r"[\s\-\u2010-\u2013]+", term.strip()) if p]
    pieces = []
    for part in parts:
        chunks = re.findall(r"[A-Za-z]+|[0-9]+|[^A-Za-z0-9]+", part)
        pieces.append(r"[\s\-\u2010-\u2013]?".join(re.escape(c) for c in chunks))
    return r"[\s\-\u2010-\u2013]*".join(pieces)


def bounded(body: str, plural: bool = False) -> str:
    suffix = "(?:s|es)?" if plural else ""
    return rf"(?<![{_ALNUM}])(?:{body}){suffix}(?![{_ALNUM}])"


def case_sensitive(name: str) -> bool:
    """Short all-letter symbols are words in other spellings ("MET", "RET", "KIT")."""
    return name.isalpha() and len(name) <= 4


def names_regex(
    names: Iterable[str], plural: bool = False, symbols: bool = True
) -> re.Pattern[str] | None:
    """One regex for names, longest first; short gene symbols (`symbols`) case-sensitive."""
    bodies = []
    for name in sorted(set(names), key=len, reverse=True):
        body = term_pattern(name)
        bodies.append(body if symbols and case_sensitive(name) else f"(?i:{body})")
    if not bodies:
        return None
    return re.compile(bounded("|".join(bodies), plural))


# --- The item as units --------------------------------------------------------------


class GeneVocabulary:
    """Gene symbols of other genes, found in one Aho-Corasick pass (case as written)."""

    def __init__(self, symbols: Iterable[str]) -> None:
        self.symbols = frozenset(s for s in symbols if s)
        self._automaton = ahocorasick.Automaton()
        for symbol in self.symbols:
            self._automaton.add_word(symbol, symbol)
        if self.symbols:
            self._automaton.make_automaton()

    def find(self, text: str) -> list[tuple[int, int, str]]:
        if not self.symbols:
            return []
        found = []
        for last, symbol in self._automaton.iter(text):
            start, end = last - len(symbol) + 1, last + 1
            if (start == 0 or not text[start - 1].isalnum()) and (
                end == len(text) or not text[end].isalnum()
            ):
                found.append((start, end, symbol))
        return found


COMMON_VOCABULARY = GeneVocabulary(language.COMMON_GENES)


@dataclass
class Unit:
    field: str
    text: str
    #: False for MeSH headings: a bag of terms, no sentence to read.
    ordered: bool = True

    @cached_property
    def word_starts(self) -> list[int]:
        return [m.start() for m in language.WORD.finditer(self.text)]

    @cached_property
    def negated(self) -> list[tuple[int, int]]:
        return language.negated_spans(self.text)

    def words_between(self, start: int, end: int) -> int:
        from bisect import bisect_left

        return bisect_left(self.word_starts, end) - bisect_left(self.word_starts, start)

    def is_negated(self, start: int, end: int) -> bool:
        if any(s <= start < e for s, e in self.negated):
            return True
        return bool(language.NEGATION_AFTER.match(self.text, end))

    def other_genes(self, vocabulary: GeneVocabulary) -> list[tuple[int, int, str]]:
        cache = self.__dict__.setdefault("_genes", {})
        if id(vocabulary) not in cache:
            cache[id(vocabulary)] = vocabulary.find(self.text)
        found: list[tuple[int, int, str]] = cache[id(vocabulary)]
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
        mesh = [v.strip() for v in item.mesh if v and v.strip()]
        if mesh:
            units.append(Unit("mesh", "; ".join(mesh), ordered=False))
        self.units = units

    @cached_property
    def text(self) -> str:
        return "\n".join(u.text for u in self.units)


def _sentences(name: str, text: str) -> list[Unit]:
    text = text or ""
    return [Unit(name, text[s:e]) for s, e in language.sentences(text)]


# --- Mentions -----------------------------------------------------------------------


@dataclass
class Mention:
    start: int
    end: int
    #: "plain", "mutation" (a plain mutation word), "status", "class" or "other".
    role: str = "plain"
    #: For a status mention: the status word; for a mutation mention: the word.
    word: str = ""
    negated: bool = False

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
    #: A variant of the gene other than the target's is named ("HER2 L755S").
    other_variant: bool = False
    #: A target variant is named but set aside ("other than exon 20 insertions").
    negated_variant: bool = False
    #: Variant terms in sentences that name no gene, left for the item's gene.
    orphans: list[Finding] = field(default_factory=list)
    #: A variant term belongs to another gene somewhere in the item ("EGFR exon 20").
    others_own_variants: bool = False
    target_gene_named: bool = False


class Rule:
    """The compiled reading of one target definition."""

    def __init__(self, definition: Definition, vocabulary: GeneVocabulary | None) -> None:
        self.definition = definition
        self.vocabulary = vocabulary or COMMON_VOCABULARY
        self.genes = names_regex(definition.genes)
        self.drugs = names_regex([s for d in definition.drugs for s in d.spellings], symbols=False)
        variant_bodies = [term_pattern(t) for t in definition.variant_terms]
        self.variant_terms = (
            re.compile(bounded("|".join(sorted(variant_bodies, key=len, reverse=True)), True),
                       re.IGNORECASE)
            if variant_bodies else None
        )
        self.variant_patterns = [re.compile(p, re.IGNORECASE) for p in definition.variant_patterns]
        self.status_terms = {re.sub(r"[\s-]", "", t.lower()) for t in definition.status_terms}
        self.own_status = (
            re.compile(
                rf"{language.APPOSITION}[\s-]+(?P<word>"
                + "|".join(term_pattern(t) for t in definition.status_terms)
                + rf")(?![{_ALNUM}])",
                re.IGNORECASE,
            )
            if definition.status_terms else None
        )
        self.contexts = names_regex(definition.mutation_contexts, plural=True, symbols=False)
        #: The exons the variant terms name, for lists such as "exon 19 or 20".
        self.exons = {
            int(m.group(1)) for t in definition.variant_terms
            for m in [re.fullmatch(r"exon[\s-]*(\d+)", t, re.IGNORECASE)] if m
        }

    # The decision ----------------------------------------------------------------

    def match(self, document: Document) -> Match:
        from alerts.matching import Match

        reading = self.read(document)
        findings = reading.counting
        if not findings and reading.orphans and reading.target_gene_named and not (
            reading.others_own_variants or reading.negated_variant
        ):
            findings = reading.orphans
        if not findings and not (reading.other_variant or reading.negated_variant):
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
            highlights=tuple(_merged(first.spans)),
        )

    def _generic_in_context(self, generic: list[Finding], document: Document) -> list[Finding]:
        """Plain mutation mentions that make the item this target: the gene's mutation
        is its subject (named in a headline field, or in two sentences or more) and the
        disease of the target's context is named with it (in the same unit or a title)."""
        if self.contexts is None or not generic:
            return []
        headline = [f for f in generic if f.unit.field in _HEADLINE_FIELDS]
        if not headline and len(generic) < 2:
            return []
        contexts = self.contexts
        if any(contexts.search(u.text) for u in document.units if u.field in _TITLE_FIELDS):
            return generic
        return [f for f in generic if contexts.search(f.unit.text)]

    def read(self, document: Document) -> Reading:
        reading = Reading()
        for unit in document.units:
            self._read_unit(unit, reading)
        return reading

    def _read_unit(self, unit: Unit, reading: Reading) -> None:
        text = unit.text
        drugs = [m.span() for m in self.drugs.finditer(text)] if self.drugs else []
        genes = self._gene_mentions(unit)
        if any(g.role in ("plain", "mutation") and not g.negated for g in genes):
            reading.target_gene_named = True
        counted: list[tuple[int, int]] = list(drugs)
        if not unit.ordered:
            if self.definition.gene_alone_counts:
                counted += [(g.start, g.end) for g in genes if not g.negated]
            if counted:
                reading.counting.append(Finding(unit, sorted(counted)))
            return
        for gene in genes:
            if gene.negated or gene.role == "class":
                continue
            if self.definition.gene_alone_counts or (
                gene.role == "status" and re.sub(r"[\s-]", "", gene.word.lower())
                in self.status_terms
            ) or (gene.role == "mutation" and self._lists_as_variant(gene.word)):
                counted.append((gene.start, gene.end))
        variants = self._variant_mentions(text, genes)
        others = [
            Mention(s, e, "other") for s, e, _ in unit.other_genes(self.vocabulary)
            if not any(g.start <= s < g.end for g in genes)
        ]
        owners = sorted([g for g in genes if g.role != "class"] + others, key=lambda m: m.start)
        orphans: list[tuple[int, int]] = []
        for start, end in variants:
            owner = _owner(unit, owners, start, end)
            negated = unit.is_negated(start, end)
            if owner is None:
                if not negated and not owners:
                    orphans.append((start, end))
                continue
            if not owner.is_target:
                reading.others_own_variants = True
                continue
            if negated:
                reading.negated_variant = True
            elif owner.role in ("plain", "mutation") and not owner.negated:
                counted += [(owner.start, owner.end), (start, end)]
        if counted:
            reading.counting.append(Finding(unit, sorted(set(counted))))
        if orphans:
            reading.orphans.append(Finding(unit, orphans))
        generic = [g for g in genes if g.role == "mutation" and not g.negated]
        if generic:
            reading.generic.append(Finding(unit, [(g.start, g.end) for g in generic]))
        if genes and self._names_other_variant(unit, genes, variants, owners):
            reading.other_variant = True

    def _lists_as_variant(self, word: str) -> bool:
        """A definition that lists a plain mutation word ("mutation", as the older shape
        does) as a variant term asks for any mutation of the gene."""
        return self.variant_terms is not None and bool(self.variant_terms.fullmatch(word))

    def _gene_mentions(self, unit: Unit) -> list[Mention]:
        if self.genes is None:
            return []
        text = unit.text
        mentions = []
        for found in self.genes.finditer(text):
            start, end = found.span()
            mention = Mention(start, end)
            before = text[max(0, start - 40) : start]
            status = language.STATUS_AFTER.match(text, end)
            own = self.own_status.match(text, end) if self.own_status else None
            if own:
                mention.role, mention.word, mention.end = "status", own["word"], own.end()
            elif language.DRUG_CLASS_AFTER.match(text, end):
                mention.role = "class"
            elif status or language.STATUS_BEFORE.search(before):
                mention.role = "status"
                if status:
                    mention.word = status.group("word") or ""
            else:
                after = language.MUTATION_AFTER.match(text, end)
                prior = language.MUTATION_BEFORE.search(before)
                if after:
                    mention.role, mention.word, mention.end = "mutation", after["word"], after.end()
                elif prior:
                    mention.role, mention.word = "mutation", prior["word"]
                    mention.start = max(0, start - 40) + prior.start()
            mention.negated = unit.is_negated(start, mention.end) or (
                mention.role == "status" and (mention.word or "").lower().startswith("negativ")
            )
            mentions.append(mention)
        return mentions

    def _variant_mentions(self, text: str, genes: Sequence[Mention]) -> list[tuple[int, int]]:
        spans = []
        if self.variant_terms is not None:
            spans += [m.span() for m in self.variant_terms.finditer(text)]
        for pattern in self.variant_patterns:
            spans += [m.span() for m in pattern.finditer(text)]
        if self.exons:
            spans += [
                m.span() for m in language.EXON_LIST.finditer(text)
                if self.exons & {int(n) for n in re.findall(r"\d+", m["numbers"])}
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
            if not any(g.start <= s and e <= g.end and g.role != "plain" for g in genes)
        ]

    def _names_other_variant(
        self,
        unit: Unit,
        genes: Sequence[Mention],
        variants: Sequence[tuple[int, int]],
        owners: Sequence[Mention],
    ) -> bool:
        """Whether the unit names a variant of the target gene that is not the target's."""
        candidates = [m.span() for m in language.PROTEIN_CHANGE.finditer(unit.text)]
        candidates += [m.span() for m in language.OTHER_VARIANT_WORDS.finditer(unit.text)]
        for start, end in candidates:
            if any(s < end and start < e for s, e in variants):
                continue
            if any(g.start <= start and end <= g.end for g in genes):
                continue
            owner = _owner(unit, owners, start, end)
            if owner is not None and owner.is_target and not unit.is_negated(start, end):
                return True
        return False


def _owner(unit: Unit, owners: Sequence[Mention], start: int, end: int) -> Mention | None:
    """The gene mention a variant term at [start, end) belongs to, if any."""
    text = unit.text
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
    return None


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
