"""Finding a target in the catalogue: the in-memory index behind `GET /api/v1/targets?q=`
and the subscribe page's search box.

A person types what they know of a target: a gene symbol or synonym ("ERBB2", "HER-2"),
a variant ("G12C", "ex20"), a drug by its generic, code or brand name ("zongertinib",
"BI1810631", "Hernexeos"), or words of its name. Every term of a target is folded
(Unicode NFKC, case-folded) and cut into its runs of letters and digits, so spacing,
hyphens and slashes never matter: "BI 1810631", "BI-1810631" and "bi1810631" are one
key. A term is indexed under its whole compact form and under the compact form from
each of its later words on ("c-erbB-2" under "cerbb2", "erbb2" and "2"), so a query word
matches the start of a term or of any word in it. Every query word must match
something of the target (or the whole query a single term: "kras g12c" is the name
"KRAS G12C"). Hits rank exact slug/name/gene first, then exact drug names, then terms
every word matches exactly, then prefixes; ties go by name and slug, so the order is
stable.

The index is built once per catalogue version (`CatalogueVersion`) and shared by every
request of the process; a search is a few bisections in sorted keys, not a scan of the
catalogue. `match_terms` of a target is read in both shapes it has had: the first
{"genes", "mutations", "drugs": [str]} and the catalogue's rule keys (genes,
variant_terms, drugs as {name, codes, brands}, related_drugs); anything else in it is
ignored, never an error.
"""

from __future__ import annotations

import heapq
import re
import threading
import unicodedata
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

#: Longest query accepted (the API answers 422 beyond; the page says so).
MAX_QUERY_LENGTH = 100
#: Query words looked at; a query of 100 characters has at most 50 anyway.
MAX_QUERY_WORDS = 12
#: Words of a term indexed from (bounds the keys of a long name).
_MAX_TERM_WORDS = 12
#: Terms of one target the index holds (a posting packs the term's position in 16 bits).
_MAX_TERMS = 2**16 - 1

#: Shortest query word that also matches as the start of longer terms.
_MIN_PREFIX = 2

_WORD = re.compile(r"[^\W_]+")

#: What a term is, as `matched_on` names it, and how much a match on it weighs.
_WEIGHTS = {"slug": 3, "name": 3, "gene": 3, "drug": 2, "variant": 1, "related drug": 0}

# Ranks (lower first), and the rank of a query equal to a whole term, by its weight.
_EXACT_IDENTITY, _EXACT_DRUG, _EXACT_WORDS, _PREFIX = 0, 1, 2, 3
_EXACT_BY_WEIGHT = {_WEIGHTS["name"]: _EXACT_IDENTITY, _WEIGHTS["drug"]: _EXACT_DRUG}


def fold(text: str) -> str:
    """`text` as it is compared: NFKC, case-folded."""
    return unicodedata.normalize("NFKC", text).casefold()


def words_of(text: str) -> list[str]:
    """The runs of letters and digits of `text`, folded ("HER2/neu" -> her2, neu)."""
    return _WORD.findall(fold(text))


class Term(NamedTuple):
    """One searchable term of a target; `drug` is the generic name a code or brand
    stands for. (A tuple: a large catalogue has hundreds of thousands.)"""

    kind: str
    text: str
    drug: str | None = None

    @property
    def label(self) -> str:
        if self.drug and fold(self.drug) != fold(self.text):
            return f"{self.kind}: {self.drug} ({self.text})"
        return f"{self.kind}: {self.text}"


@dataclass(frozen=True, slots=True)
class Entry:
    """A target as the index holds it."""

    id: int
    slug: str
    name: str
    description: str
    terms: tuple[Term, ...]


@dataclass(frozen=True, slots=True)
class Hit:
    """A target that matched, with the best match of the whole query (`phrase`) and of
    each query word (one per part of a word matched part by part), each packed in an
    int (see `_TERM_BITS`); `matched_on` names them."""

    entry: Entry
    phrase: int | None = None
    words: tuple[tuple[int, ...], ...] = ()

    @property
    def matched_on(self) -> tuple[str, ...]:
        terms = self.entry.terms
        if self.phrase is not None and (_exactness(self.phrase) == 3 or not self.words):
            return (terms[_term(self.phrase)].label,)
        return tuple(dict.fromkeys(terms[_term(m)].label for w in self.words for m in w))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


def _drug_terms(value: Any, kind: str) -> list[Term]:
    """Drugs as plain names, or as {name, codes, brands} tables."""
    terms: list[Term] = []
    for drug in value if isinstance(value, list | tuple) else _strings(value):
        if isinstance(drug, str):
            terms.append(Term(kind, drug))
        elif isinstance(drug, Mapping) and isinstance(drug.get("name"), str):
            name = drug["name"]
            terms.append(Term(kind, name))
            for other in _strings(drug.get("codes")) + _strings(drug.get("brands")):
                terms.append(Term(kind, other, drug=name))
    return terms


def terms_of(slug: str, name: str, match_terms: Any) -> tuple[Term, ...]:
    """Every searchable term of a target, from its slug, name and `match_terms` (either
    shape; unknown keys and values of the wrong type are skipped)."""
    rules: Mapping[str, Any] = match_terms if isinstance(match_terms, Mapping) else {}
    terms = [Term("name", name), Term("slug", slug)]
    terms += [Term("gene", g) for g in _strings(rules.get("genes"))]
    terms += [Term("gene", g) for g in _strings(rules.get("synonyms"))]
    terms += _drug_terms(rules.get("drugs"), "drug")
    terms += [Term("variant", v) for key in ("variant_terms", "mutations")
              for v in _strings(rules.get(key))]
    terms += _drug_terms(rules.get("related_drugs"), "related drug")
    return tuple(dict.fromkeys(t for t in terms if t.text.strip()))[:_MAX_TERMS]


def _keys(text: str) -> list[str]:
    """The compact forms a term is found under: whole, then from each later word on."""
    if text.isascii() and text.isalnum():  # most terms: one plain word
        return [text.lower()]
    words = words_of(text)[:_MAX_TERM_WORDS]
    return ["".join(words[i:]) for i in range(len(words))]


# A match is one int: quality (exactness * 4 + the term's weight) above the term's
# position in its entry, reversed. Exactness: 3 the whole term, 2 a later word of it,
# 1 the start of the whole term, 0 the start of a later word.
_TERM_BITS = 16
_TERM_MASK = (1 << _TERM_BITS) - 1


def _exactness(match: int) -> int:
    return match >> (_TERM_BITS + 2)


def _term(match: int) -> int:
    """The term's position in its entry (stored reversed, so that the earlier term of
    two of the same quality is the greater match)."""
    return _TERM_MASK - (match & _TERM_MASK)


class CatalogueIndex:
    """The catalogue, ready to search: entries by slug, and every term key in sorted
    order with the (entry, term) pairs it stands for."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self.entries: tuple[Entry, ...] = tuple(sorted(entries, key=lambda e: e.slug))
        self.by_slug: dict[str, Entry] = {e.slug: e for e in self.entries}
        self.by_id: dict[int, Entry] = {e.id: e for e in self.entries}
        self._order = [(fold(e.name), e.slug) for e in self.entries]
        self.by_name: tuple[Entry, ...] = tuple(
            entry for _, entry in sorted(zip(self._order, self.entries, strict=True))
        )
        # key -> postings: entry position, term position, term weight, whole key, as
        # one int each
        postings: dict[str, list[int]] = {}
        keys_of: dict[str, list[str]] = {}  # terms recur across targets ("mutation")
        for e, entry in enumerate(self.entries):
            for t, term in enumerate(entry.terms):
                keys = keys_of.get(term.text)
                if keys is None:
                    keys = keys_of[term.text] = _keys(term.text)
                code = (e << (_TERM_BITS + 3)) | (t << 3) | (_WEIGHTS[term.kind] << 1)
                for position, key in enumerate(keys):
                    found = postings.get(key)
                    if found is None:
                        postings[key] = [code | (position == 0)]
                    else:
                        found.append(code | (position == 0))
        self._postings = postings
        self._keys = sorted(postings)

    def __len__(self) -> int:
        return len(self.entries)

    def _keys_from(self, word: str) -> Iterable[str]:
        """The keys starting with `word`; only `word` itself for a word of one
        character ("a" as a prefix says nothing)."""
        if len(word) < _MIN_PREFIX:
            return [word] if word in self._postings else []
        keys = self._keys
        start = bisect_left(keys, word)
        return keys[start:bisect_left(keys, word + "\U0010ffff", lo=start)]

    def _lookup(self, word: str, *, whole_only: bool = False) -> dict[int, int]:
        """Entry position -> its best match among the terms starting with `word`."""
        best: dict[int, int] = {}
        get = best.get
        for key in self._keys_from(word):
            exact = 8 if key == word else 0  # exactness 2, times 4
            for code in self._postings[key]:
                whole = code & 1
                if whole_only and not whole:
                    continue
                weight = (code >> 1) & 3
                # the earlier term wins a tie (the name before the slug, a drug before its code)
                match = ((exact + whole * 4 + weight) << _TERM_BITS) | (
                    _TERM_MASK - ((code >> 3) & _TERM_MASK))
                e = code >> (_TERM_BITS + 3)
                if match > get(e, -1):
                    best[e] = match
        return best

    def _word(self, token: str) -> dict[int, tuple[int, ...]]:
        """Entry position -> the matches of one query word: its compact form, or each
        of its parts ("HER2/neu" as her2neu, else her2 and neu)."""
        parts = words_of(token)
        found: dict[int, tuple[int, ...]] = {
            e: (m,) for e, m in self._lookup("".join(parts)).items()
        }
        if len(parts) > 1:
            each = [self._lookup(part) for part in parts]
            for e in set.intersection(*(set(p) for p in each)) - set(found):
                found[e] = tuple(p[e] for p in each)
        return found

    def search(self, query: str, limit: int | None = None) -> tuple[list[Hit], int]:
        """The first `limit` (default: all) targets matching every word of `query`, best
        first, and how many match in all; the whole catalogue (by slug, nothing matched)
        when the query has no letter or digit."""
        tokens = [t for t in fold(query).split() if words_of(t)][:MAX_QUERY_WORDS]
        if not tokens:
            return [Hit(entry) for entry in self.entries[:limit]], len(self.entries)
        per_word = [self._word(token) for token in tokens]
        phrase = self._lookup("".join("".join(words_of(t)) for t in tokens), whole_only=True)
        matched = set.intersection(*(set(w) for w in per_word)) | set(phrase)
        ranked = []
        order, rank, phrase_of = self._order, self._rank, phrase.get
        for e in matched:
            words = tuple([w[e] for w in per_word if e in w])
            if len(words) < len(per_word):
                words = ()  # the whole query matched one term, its words alone did not
            p = phrase_of(e)
            ranked.append((rank(p, words), order[e], e, p, words))
        if limit is not None and limit < len(ranked):
            ranked = heapq.nsmallest(limit, ranked)
        else:
            ranked.sort()
        return [Hit(self.entries[e], p, words) for _, _, e, p, words in ranked], len(matched)

    @staticmethod
    def _rank(phrase: int | None, words: tuple[tuple[int, ...], ...]) -> tuple[int, int, int]:
        quality = (phrase >> _TERM_BITS) if phrase is not None else 0
        word_quality = 0
        all_exact = bool(words)
        for word in words:
            weakest = min(word) if len(word) > 1 else word[0]
            word_quality += weakest >> _TERM_BITS
            all_exact = all_exact and _exactness(weakest) >= 2
        if quality >> 2 == 3:  # the whole query is one whole term
            tier = _EXACT_BY_WEIGHT.get(quality & 3, _EXACT_WORDS)
        else:
            tier = _EXACT_WORDS if all_exact else _PREFIX
        return tier, -quality, -word_quality


#: What a built index is valid for: a value that changes whenever the catalogue does.
CatalogueVersion = tuple[Any, ...]
T = TypeVar("T")


class VersionedCache(Generic[T]):
    """One value per process computed from the catalogue (the search index, the drug
    names of the target pages), rebuilt when the catalogue's version changes. Requests
    run in threads: one builds while the others wait, then all share the result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: CatalogueVersion | None = None
        self._value: T | None = None
        self.builds = 0

    def get(self, version: CatalogueVersion, build: Callable[[], T]) -> T:
        with self._lock:
            if self._value is None or self._version != version:
                self._value = build()
                self._version = version
                self.builds += 1
            return self._value


#: The search index of the process.
IndexCache = VersionedCache[CatalogueIndex]
