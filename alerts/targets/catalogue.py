"""The catalogue file: target definitions as reviewed data, read and validated.

`alerts/targets/catalogue.toml` holds one `[[targets]]` entry per target (slug, name,
description, kind, genes, variant terms and patterns, drugs with codes and brands, the
upstream queries). `load_catalogue` reads it with the standard library's tomllib and
validates every entry; `alerts targets sync` (alerts.targets.sync) writes the result
into the database.

Validation is all or nothing: every problem of every entry is collected and raised
together in one `CatalogueError` (entry index and slug, key, what is wrong), and a sync
writes nothing unless the whole file is good. Unknown keys are errors, so a misspelt key
never passes silently; options of the match rule that the catalogue does not know go
under the entry's `[targets.rule]` table, which is handed to the rule as it is.

What the match rule reads of an entry (`rule_definition`: every key in `RULE_KEYS`) is
stored as the target's `match_terms` and compiled by alerts.matching.compile_rule.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

CATALOGUE_PATH = Path(__file__).with_name("catalogue.toml")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
KINDS = ("variant", "fusion", "protein", "pathway")
#: The keys of an entry that make up its match rule (stored as `Target.match_terms`).
RULE_KEYS = (
    "kind", "genes", "variant_terms", "variant_patterns", "positive_status_counts",
    "related_drugs", "drugs", "rule",
)

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def _one_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("must be one line")
    return value


def _unique_terms(values: list[str]) -> list[str]:
    """The terms without repeats (case-insensitive), first spelling kept."""
    seen: dict[str, str] = {}
    for value in values:
        seen.setdefault(value.lower(), value)
    return list(seen.values())


def _patterns_compile(values: list[str]) -> list[str]:
    problems = []
    for n, pattern in enumerate(values):
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(f"[{n}] {pattern!r} is not a valid Python regex: {exc}")
    if problems:
        raise ValueError("; ".join(problems))
    return values


def _slug(value: str) -> str:
    if not SLUG.match(value):
        raise ValueError(
            f"{value!r} must match {SLUG.pattern} (lowercase letters, digits, hyphens)"
        )
    return value


Terms = Annotated[list[Text], AfterValidator(_unique_terms)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Drug(_Strict):
    """A drug aimed at the target: generic name, code names, brand names. `shared_with`
    names the other targets that list the same drug on purpose."""

    name: Text
    codes: Terms = []
    brands: Terms = []
    shared_with: list[Annotated[str, AfterValidator(_slug)]] = []

    def spellings(self) -> list[str]:
        return [self.name, *self.codes, *self.brands]


class CatalogueEntry(_Strict):
    """One `[[targets]]` entry, validated."""

    slug: Annotated[str, AfterValidator(_slug)]
    name: Annotated[Text, Field(max_length=200), AfterValidator(_one_line)]
    description: Annotated[str, AfterValidator(_one_line)]
    kind: Literal["variant", "fusion", "protein", "pathway"]
    genes: Annotated[Terms, Field(min_length=1)]
    variant_terms: Terms = []
    variant_patterns: Annotated[list[Text], AfterValidator(_patterns_compile)] = []
    positive_status_counts: bool = False
    related_drugs: Terms = []
    drugs: list[Drug] = []
    pubmed_query: Text | None = None
    ctgov_term: Text | None = None
    ctgov_intr: Text | None = None
    #: Where the synonyms and drugs come from (URLs or citations), for review.
    sources: list[Text] = []
    #: Options of the match rule the catalogue does not know itself; passed on as they are.
    rule: dict[str, Any] = {}

    def rule_definition(self) -> dict[str, Any]:
        """What the match rule reads: the entry's RULE_KEYS, as plain JSON values."""
        values = self.model_dump(include=set(RULE_KEYS))
        if not values.get("rule"):
            values.pop("rule", None)
        return values


class CatalogueError(Exception):
    """The catalogue cannot be used; `problems` lists every one found."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        super().__init__(
            f"{source}: {count} problem{'' if count == 1 else 's'}:\n"
            + "\n".join(f"  {problem}" for problem in self.problems)
        )


@dataclass(frozen=True)
class Catalogue:
    source: str
    entries: tuple[CatalogueEntry, ...]

    def by_slug(self) -> dict[str, CatalogueEntry]:
        return {entry.slug: entry for entry in self.entries}


def load_catalogue(path: Path = CATALOGUE_PATH) -> Catalogue:
    """The validated catalogue at `path`; CatalogueError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise CatalogueError(str(path), [f"not UTF-8 text: {exc}"]) from None
    return parse_catalogue(text, source=str(path))


def parse_catalogue(text: str, *, source: str = "catalogue") -> Catalogue:
    """The validated catalogue in TOML `text` (see the module docstring)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(source, [f"not valid TOML: {exc}"]) from None
    problems = [f"unknown key {key!r} at the top level (only [[targets]])"
                for key in document if key != "targets"]
    raw = document.get("targets", [])
    if not isinstance(raw, list) or not raw:
        problems.append("no [[targets]] entries")
        raise CatalogueError(source, problems)

    entries: list[tuple[int, CatalogueEntry]] = []
    for index, table in enumerate(raw):
        where = _where(index, table)
        if not isinstance(table, Mapping):
            problems.append(f"{where}: must be a table")
            continue
        try:
            entries.append((index, CatalogueEntry.model_validate(table)))
        except ValidationError as exc:
            problems.extend(f"{where}: {_key(error['loc'])}: {_message(error)}"
                            for error in exc.errors())
    problems.extend(str(problem) for problem in _cross_entry_problems(entries))
    if problems:
        raise CatalogueError(source, problems)
    return Catalogue(source, tuple(entry for _index, entry in entries))


def _where(index: int, table: object) -> str:
    slug = table.get("slug") if isinstance(table, Mapping) else None
    return f"targets[{index}]" + (f" ({slug})" if isinstance(slug, str) and slug else "")


def _key(loc: Sequence[int | str]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "entry"


def _message(error: Mapping[str, Any]) -> str:
    kind = error.get("type")
    if kind == "extra_forbidden":
        return "unknown key (rule options go under [targets.rule])"
    if kind == "missing":
        return "required key missing"
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one entry: which entry (`index`, `slug`), which key, what."""

    index: int
    slug: str
    loc: tuple[int | str, ...]
    message: str

    def __str__(self) -> str:
        return f"targets[{self.index}] ({self.slug}): {_key(self.loc)}: {self.message}"


def _cross_entry_problems(entries: Sequence[tuple[int, CatalogueEntry]]) -> list[Problem]:
    """Slugs unique; `shared_with` names a target of the catalogue; no drug spelling
    listed by two targets unless one of them marks it `shared_with` the other."""
    problems: list[Problem] = []
    index_of: dict[str, int] = {}
    for index, entry in entries:
        if entry.slug in index_of:
            problems.append(Problem(index, entry.slug, ("slug",),
                                    f"already used by targets[{index_of[entry.slug]}]"))
        index_of.setdefault(entry.slug, index)

    owners: dict[str, list[tuple[CatalogueEntry, int, Drug]]] = {}
    for _index, entry in entries:
        for n, drug in enumerate(entry.drugs):
            for other in drug.shared_with:
                if other not in index_of:
                    problems.append(Problem(index_of[entry.slug], entry.slug,
                                            ("drugs", n, "shared_with"),
                                            _unknown_target(other)))
            for spelling in {s.lower() for s in drug.spellings()}:
                owners.setdefault(spelling, []).append((entry, n, drug))
    reported: set[tuple[str, str]] = set()
    for spelling, listed in sorted(owners.items()):
        for k, (first, _first_n, first_drug) in enumerate(listed):
            for second, second_n, second_drug in listed[k + 1:]:
                pair = (first.slug, second.slug)
                if first.slug == second.slug or pair in reported:
                    continue
                if second.slug in first_drug.shared_with or first.slug in second_drug.shared_with:
                    continue
                reported.add(pair)
                problems.append(Problem(
                    index_of[second.slug], second.slug, ("drugs", second_n),
                    f"{spelling!r} is also a drug of {first.slug}; mark it shared_with = "
                    f"[\"{first.slug}\"] if both targets are meant",
                ))
    return problems


def problems_beside(
    entry: CatalogueEntry, others: Sequence[CatalogueEntry], tolerated: Collection[str] = ()
) -> list[Problem]:
    """What is wrong with `entry` next to the `others` of a catalogue (by the rules of a
    file: unique slug, drugs shared only when marked), the others' own problems aside.
    The entry comes last, so a drug it shares unmarked is reported against it. A
    `shared_with` naming one of the `tolerated` slugs that no other target has is let
    be (an edit need not fix what it did not touch)."""
    listed = [(n, other) for n, other in enumerate(others) if other.slug != entry.slug]
    mine = len(listed)
    excused = {_unknown_target(slug) for slug in tolerated}
    return [problem for problem in _cross_entry_problems([*listed, (mine, entry)])
            if problem.slug == entry.slug and problem.message not in excused]


def _unknown_target(slug: str) -> str:
    return f"unknown target {slug!r}"


class EntryError(Exception):
    """One entry given on its own (`alerts targets add/edit`, the admin API) cannot be
    used: `problems` holds one (where, what) pair per bad field, `where` being the key's
    path in the entry, e.g. ("drugs", 0, "name")."""

    def __init__(self, problems: Sequence[tuple[tuple[int | str, ...], str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{_key(loc)}: {message}" for loc, message in self.problems))


def validate_entry(
    document: Mapping[str, Any],
    others: Sequence[CatalogueEntry] = (),
    tolerated: Collection[str] = (),
) -> CatalogueEntry:
    """`document` as a catalogue entry, checked by the file's rules (each key, then the
    entry beside the `others` of the catalogue: its slug free, its drugs shared only
    where marked, see `problems_beside` for `tolerated`) and its match rule compiled;
    EntryError naming every bad field."""
    from alerts.matching import DefinitionError, compile_rule

    try:
        entry = CatalogueEntry.model_validate(document)
    except ValidationError as exc:
        raise EntryError([(tuple(error["loc"]), _message(error))
                          for error in exc.errors()]) from None
    problems = [(problem.loc, problem.message)
                for problem in problems_beside(entry, others, tolerated)]
    try:
        compile_rule(entry.rule_definition())
    except DefinitionError as exc:
        problems.append((("rule",), str(exc)))
    if problems:
        raise EntryError(problems)
    return entry
