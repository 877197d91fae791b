"""Every target of the catalogue matched against an item in one pass over its text.

A rule can only match where one of its gene or drug names occurs, so one Aho-Corasick
automaton over the names of all targets finds the few targets worth reading an item
for; only their rules then read its sentences, from one `Document` cut once. The cost
per item grows with the targets it names, not with the size of the catalogue. Rules are
compiled the first time an item names them.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ahocorasick

from alerts.matching import language
from alerts.matching.definition import DefinitionError, read_definition
from alerts.matching.rule import Document, GeneVocabulary, Rule

if TYPE_CHECKING:
    from alerts.matching import Match, MatchInput


def _spellings(name: str) -> set[str]:
    """The lower-case forms a name takes in text: "BI 1810631", "BI-1810631", "BI1810631"."""
    name = name.lower().strip()
    joined = re.sub(r"[\s\-\u2010-\u2013]+", "", name)
    split = re.sub(r"(?<=[a-z])(?=[0-9])|(?<=[0-9])(?=[a-z])", " ", joined)
    return {name, joined, split, split.replace(" ", "-"), name.replace("-", " ")} - {""}


class CatalogueRule:
    """All targets' rules behind one scan. Build with `compile_catalogue`."""

    def __init__(self, definitions: Mapping[str, Mapping[str, Any]]) -> None:
        self._definitions = {}
        for slug, raw in definitions.items():
            try:
                self._definitions[slug] = read_definition(raw)
            except DefinitionError as exc:
                raise DefinitionError(f"{slug}: {exc}") from None
        genes = set(language.COMMON_GENES)
        for definition in self._definitions.values():
            genes.update(g for g in definition.genes if g.isupper() or any(c.isdigit() for c in g))
        #: Every target's genes are "other genes" to the rest of the catalogue.
        self._vocabulary = GeneVocabulary(genes)
        self._rules: dict[str, Rule] = {}
        self._automaton = ahocorasick.Automaton()
        slugs_by_name: dict[str, set[str]] = {}
        for slug, definition in self._definitions.items():
            for name in definition.names:
                for spelling in _spellings(name):
                    slugs_by_name.setdefault(spelling, set()).add(slug)
        for spelling, slugs in slugs_by_name.items():
            self._automaton.add_word(spelling, (len(spelling), tuple(sorted(slugs))))
        if slugs_by_name:
            self._automaton.make_automaton()

    @property
    def slugs(self) -> tuple[str, ...]:
        return tuple(self._definitions)

    def candidates(self, document: Document) -> set[str]:
        """Targets one of whose names occurs in the item, on word boundaries."""
        text = document.text.lower()
        found: set[str] = set()
        if not self._definitions or not len(self._automaton):
            return found
        for last, (length, slugs) in self._automaton.iter(text):
            start, end = last - length + 1, last + 1
            if (start == 0 or not text[start - 1].isalnum()) and (
                end == len(text) or not text[end].isalnum()
            ):
                found.update(slugs)
        return found

    def match(self, item: MatchInput) -> dict[str, Match]:
        """The targets the item matches, each with its evidence (others are left out)."""
        document = Document(item)
        matches = {}
        for slug in sorted(self.candidates(document)):
            result = self._rule(slug).match(document)
            if result.matched:
                matches[slug] = result
        return matches

    def _rule(self, slug: str) -> Rule:
        rule = self._rules.get(slug)
        if rule is None:
            rule = self._rules[slug] = Rule(self._definitions[slug], self._vocabulary)
        return rule



def load_definitions(path: Path) -> dict[str, dict[str, Any]]:
    """The target definitions of a catalogue file, by slug ({} when there is none).
    Raises DefinitionError for a file that is not TOML or an entry without a slug."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DefinitionError(f"{path}: {exc}") from None
    definitions = {}
    for number, entry in enumerate(data.get("targets", []), start=1):
        slug = entry.get("slug") if isinstance(entry, dict) else None
        if not isinstance(slug, str) or not slug:
            raise DefinitionError(f"{path}: target {number} has no slug")
        definitions[slug] = entry
    return definitions


#: The catalogue shipped with the product.
CATALOGUE_FILE = Path(__file__).resolve().parent.parent / "targets" / "catalogue.toml"
