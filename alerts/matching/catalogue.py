"""Every target of the catalogue matched against an item in one pass over its text.

A rule can only match where one of its gene or drug names occurs, so one Aho-Corasick
automaton over the names of all targets finds the few targets worth reading an item
for; only their rules then read its sentences, from one `Document` cut once. The cost
per item grows with the targets it names, not with the size of the catalogue. Rules are
compiled the first time an item names them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alerts.matching.definition import DefinitionError, read_definition
from alerts.matching.lexicon import Lexicon
from alerts.matching.rule import Document, Rule, add_common_genes

if TYPE_CHECKING:
    from alerts.matching import Match, MatchInput


class CatalogueRule:
    """All targets' rules behind one scan. Build with `compile_catalogue`."""

    def __init__(self, definitions: Mapping[str, Mapping[str, Any]]) -> None:
        self._definitions = {}
        for slug, raw in definitions.items():
            try:
                self._definitions[slug] = read_definition(raw)
            except DefinitionError as exc:
                raise DefinitionError(f"{slug}: {exc}") from None
        # One lexicon for all: every target's genes are "other genes" to the rest.
        self._lexicon = Lexicon()
        add_common_genes(self._lexicon)
        for slug, definition in self._definitions.items():
            Rule.add_names(self._lexicon, definition, owner=slug)
        self._lexicon.build()
        self._rules: dict[str, Rule] = {}

    @property
    def slugs(self) -> tuple[str, ...]:
        return tuple(self._definitions)

    def candidates(self, document: Document) -> set[str]:
        """Targets one of whose gene or drug names occurs in the item."""
        owners = self._lexicon.owners
        found: set[str] = set()
        for unit in document.units:
            for hit in unit.hits(self._lexicon):
                found |= owners[hit.term]
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
            rule = self._rules[slug] = Rule(self._definitions[slug], self._lexicon)
        return rule


def load_definitions(path: Path) -> dict[str, dict[str, Any]]:
    """The rule definitions of a catalogue file, by slug ({} when there is none), read
    and validated as `alerts targets sync` reads it; DefinitionError listing every
    problem of a bad file."""
    from alerts.targets.catalogue import CatalogueError, load_catalogue

    if not path.exists():
        return {}
    try:
        catalogue = load_catalogue(path)
    except CatalogueError as exc:
        raise DefinitionError(str(exc)) from None
    return {entry.slug: entry.rule_definition() for entry in catalogue.entries}


def _shipped_catalogue() -> Path:
    from alerts.targets.catalogue import CATALOGUE_PATH

    return CATALOGUE_PATH


#: The catalogue shipped with the product.
CATALOGUE_FILE = _shipped_catalogue()
