"""The local match rule of a target: a gene term together with a mutation term, or a
selective drug, case-insensitive, on word boundaries, over title and summary.

"HER2-mutant" matches (the hyphen is a boundary); "HER2-positive ... trastuzumab
deruxtecan" does not (no mutation term, and T-DXd is not a selective drug); "EGFR exon 20
insertion" does not (no gene term). A term matches its plural too ("mutations").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

_WORD = r"[0-9A-Za-z]"


def _term_pattern(term: str) -> str:
    parts = [re.escape(part) for part in re.split(r"[\s\-]+", term.strip()) if part]
    body = r"[\s\-]*".join(parts)
    return rf"(?<!{_WORD})(?P<t>{body})(?:s|es)?(?!{_WORD})"


@dataclass(frozen=True)
class _Group:
    #: (term as written, its key, its compiled pattern); "HER-2" and "HER2" share a key.
    terms: tuple[tuple[str, str, re.Pattern[str]], ...]
    #: All terms in one alternation: one scan decides whether any term is present.
    regex: re.Pattern[str] | None

    @classmethod
    def build(cls, terms: Iterable[str]) -> _Group:
        cleaned = tuple(t for t in (t.strip() for t in terms) if t)
        if not cleaned:
            return cls((), None)
        compiled = tuple(
            (t, re.sub(r"[\s\-]+", "", t).lower(), re.compile(_term_pattern(t), re.IGNORECASE))
            for t in cleaned
        )
        # Longest first, so "A775_G776insYVMA" wins over "YVMA" at the same position.
        ordered = sorted(cleaned, key=len, reverse=True)
        alternatives = "|".join(f"(?:{_term_pattern(t)})".replace("?P<t>", "") for t in ordered)
        return cls(compiled, re.compile(alternatives, re.IGNORECASE))

    def found(self, text: str) -> list[str]:
        """The group's terms present in `text`, in the group's own spelling."""
        if self.regex is None or not self.regex.search(text):
            return []
        found: dict[str, str] = {}
        for term, key, pattern in self.terms:
            if key not in found and pattern.search(text):
                found[key] = term
        return list(found.values())


@dataclass(frozen=True)
class Matcher:
    genes: _Group
    mutations: _Group
    drugs: _Group

    def terms_found(self, *texts: str | None) -> list[str]:
        """Every target term present in the texts, whether or not the rule is met."""
        text = "\n".join(t for t in texts if t)
        return self.genes.found(text) + self.mutations.found(text) + self.drugs.found(text)

    def match(self, *texts: str | None) -> list[str] | None:
        """The matched terms when the rule is met, else None."""
        text = "\n".join(t for t in texts if t)
        genes = self.genes.found(text)
        mutations = self.mutations.found(text) if genes else []
        drugs = self.drugs.found(text)
        if (genes and mutations) or drugs:
            return genes + mutations + drugs
        return None


def matcher_for(match_terms: Mapping[str, Iterable[str]]) -> Matcher:
    """A compiled matcher for a target's `match_terms` ({genes, mutations, drugs})."""
    return _compiled(
        tuple(match_terms.get("genes", ())),
        tuple(match_terms.get("mutations", ())),
        tuple(match_terms.get("drugs", ())),
    )


@lru_cache(maxsize=256)
def _compiled(
    genes: tuple[str, ...], mutations: tuple[str, ...], drugs: tuple[str, ...]
) -> Matcher:
    return Matcher(_Group.build(genes), _Group.build(mutations), _Group.build(drugs))
