"""The catalogue file: it loads, every kind of bad entry is reported with where and
what, and all problems come at once."""

from __future__ import annotations

import re

import pytest

from alerts.matching import compile_rule
from alerts.targets.catalogue import (
    CATALOGUE_PATH,
    RULE_KEYS,
    CatalogueError,
    EntryError,
    load_catalogue,
    parse_catalogue,
    validate_entry,
)

GOOD = '''
[[targets]]
slug = "kras-g12c"
name = "KRAS G12C"
description = "KRAS G12C and the covalent inhibitors aimed at it."
kind = "variant"
genes = ["KRAS"]
variant_terms = ["G12C", "p.G12C"]
variant_patterns = ['G12C\\b']
related_drugs = ["cetuximab"]
pubmed_query = 'KRAS[tiab] AND G12C[tiab]'
[[targets.drugs]]
name = "sotorasib"
codes = ["AMG 510"]
brands = ["Lumakras"]
[targets.rule]
window_words = 12
'''


def entry(slug: str = "kras-g12c", **lines: str) -> str:
    """One entry in TOML: the minimal good one, with `lines` (key = TOML value) set."""
    values = {"slug": f'"{slug}"', "name": '"KRAS G12C"', "description": '"one line"',
              "kind": '"variant"', "genes": '["KRAS"]', **lines}
    body = "\n".join(f"{key} = {value}" for key, value in values.items() if value)
    return f"[[targets]]\n{body}\n"


def problems(text: str) -> list[str]:
    with pytest.raises(CatalogueError) as raised:
        parse_catalogue(text, source="test.toml")
    return raised.value.problems


def test_the_shipped_catalogue_loads_and_every_rule_compiles() -> None:
    catalogue = load_catalogue()
    slugs = [entry.slug for entry in catalogue.entries]
    assert "her2-exon20" in slugs and len(slugs) == len(set(slugs))
    for target in catalogue.entries:
        definition = target.rule_definition()
        assert set(definition) <= set(RULE_KEYS)
        compile_rule(definition)
    her2 = catalogue.by_slug()["her2-exon20"]
    drugs = {drug.name: drug for drug in her2.drugs}
    assert drugs["zongertinib"].codes[0] == "BI 1810631"
    assert drugs["sevabertinib"].codes[0] == "BAY 2927088"
    assert "trastuzumab deruxtecan" in her2.related_drugs


def test_a_good_entry_gives_its_rule_keys_and_queries() -> None:
    [kras] = parse_catalogue(GOOD).entries
    assert kras.pubmed_query == "KRAS[tiab] AND G12C[tiab]"
    assert kras.rule_definition() == {
        "kind": "variant", "genes": ["KRAS"], "variant_terms": ["G12C", "p.G12C"],
        "variant_patterns": ["G12C\\b"], "positive_status_counts": False,
        "related_drugs": ["cetuximab"],
        "drugs": [{"name": "sotorasib", "codes": ["AMG 510"], "brands": ["Lumakras"],
                   "shared_with": []}],
        "rule": {"window_words": 12},  # options of the rule pass through as they are
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (entry(slug="KRAS_G12C"), r"targets\[0\] \(KRAS_G12C\): slug: 'KRAS_G12C' must match"),
        (entry(kind='"gene"'), r"targets\[0\] \(kras-g12c\): kind: Input should be 'variant'"),
        (entry(genes="[]"), r"genes: .*at least 1 item"),
        (entry(genes='"KRAS"'), r"genes: Input should be a valid list"),
        (entry(varaint_terms='["G12C"]'), r"varaint_terms: unknown key \(rule options go "
                                           r"under \[targets.rule\]\)"),
        (entry(variant_patterns="['G12(C']"), r"variant_patterns: \[0\] 'G12\(C' is not a "
                                               r"valid Python regex: missing \)"),
        (entry(description='"two\\nlines"'), r"description: must be one line"),
        (entry(name=""), r"name: required key missing"),
        (entry(positive_status_counts='"no"'), r"positive_status_counts: Input should be a "
                                                r"valid boolean"),
        (entry() + '[[targets.drugs]]\ncodes = ["AMG 510"]\n', r"drugs\[0\].name: required"),
        (entry() + '[[targets.drugs]]\nname = "x"\nshared_with = ["nope"]\n',
         r"drugs\[0\].shared_with: unknown target 'nope'"),
        (entry() + entry(), r"targets\[1\] \(kras-g12c\): slug: already used by targets\[0\]"),
        ('title = "x"\n' + entry(), r"unknown key 'title' at the top level"),
        ("[[targets]\n", r"not valid TOML"),
        ("", r"no \[\[targets\]\] entries"),
    ],
)
def test_each_bad_entry_is_reported_with_where_and_what(text: str, expected: str) -> None:
    found = problems(text)
    assert any(re.search(expected, problem) for problem in found), found


def test_a_drug_two_targets_list_must_be_marked_shared() -> None:
    sotorasib = '[[targets.drugs]]\nname = "sotorasib"\n'
    unmarked = entry("kras-g12c") + sotorasib + entry("kras") + sotorasib
    assert problems(unmarked) == [
        "targets[1] (kras): drugs[0]: 'sotorasib' is also a drug of kras-g12c; mark it "
        'shared_with = ["kras-g12c"] if both targets are meant'
    ]
    marked = (entry("kras-g12c") + sotorasib + entry("kras") + sotorasib
              + 'shared_with = ["kras-g12c"]\n')
    assert len(parse_catalogue(marked).entries) == 2


def test_every_problem_of_every_entry_comes_at_once() -> None:
    text = entry("a-1", kind='"gene"', genes="[]") + entry("b-2") + entry("C", name='""')
    found = problems(text)
    assert [p.split(":")[0] for p in found] == [
        "targets[0] (a-1)", "targets[0] (a-1)", "targets[2] (C)", "targets[2] (C)"]
    message = str(CatalogueError("test.toml", found))
    assert message.startswith("test.toml: 4 problems:\n  targets[0] (a-1): ")


def test_an_unreadable_file_is_one_problem(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CatalogueError, match="cannot read the file"):
        load_catalogue(tmp_path / "missing.toml")
    assert CATALOGUE_PATH.name == "catalogue.toml"


def test_every_shipped_entry_passes_the_check_of_a_target_added_by_hand() -> None:
    """The review of the file and the check of `alerts targets add/edit` are one rule:
    each shipped entry, given on its own beside the others, is accepted as it is."""
    entries = load_catalogue().entries
    for entry in entries:
        document = entry.model_dump(mode="json")
        assert validate_entry(document, entries) == entry


def test_an_entry_given_on_its_own_names_each_bad_field() -> None:
    [kras] = parse_catalogue(GOOD).entries
    with pytest.raises(EntryError) as raised:
        validate_entry({**kras.model_dump(mode="json"), "slug": "kras", "genes": [],
                        "kind": "gene"}, [kras])
    assert [loc for loc, _message in raised.value.problems] == [("kind",), ("genes",)]
    with pytest.raises(EntryError) as shared:
        validate_entry({**kras.model_dump(mode="json"), "slug": "kras"}, [kras])
    [(loc, message)] = shared.value.problems
    assert loc == ("drugs", 0) and "also a drug of kras-g12c" in message
