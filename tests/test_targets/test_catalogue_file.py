"""The review of the shipped target catalogue (alerts/targets/catalogue.toml), as a test.

The catalogue is data that people edit by hand, so its review must not depend on the
loader: this reads the file with the standard library's tomllib and checks the contract
the match rule and `alerts targets sync` rely on. Each check collects every problem with
the slug it belongs to, so a bad edit reads as a list of fixes, not a first failure.
The checks themselves are tested on small broken catalogues below the real one.
"""

from __future__ import annotations

import re
import tomllib
from collections import defaultdict
from importlib.resources import files
from typing import Any

import pytest

Target = dict[str, Any]

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
KINDS = {"variant", "fusion", "protein", "pathway"}
STRING_LISTS = ("genes", "variant_terms", "variant_patterns", "related_drugs", "sources")
STRINGS = ("slug", "name", "description", "kind", "pubmed_query", "ctgov_term", "ctgov_intr")
DRUG_LISTS = ("codes", "brands", "shared_with")
MIN_TARGETS = 40


def load_catalogue() -> list[Target]:
    text = (files("alerts.targets") / "catalogue.toml").read_text(encoding="utf-8")
    targets: list[Target] = tomllib.loads(text)["targets"]
    return targets


def _is_string_list(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, str) and v.strip() == v and v for v in value
    )


def shape_problems(targets: list[Target]) -> list[str]:
    """Required keys with the right types, well-formed unique slugs, known kinds, valid regexes."""
    problems: list[str] = []
    seen: set[str] = set()
    for index, target in enumerate(targets):
        slug = target.get("slug")
        where = slug if isinstance(slug, str) else f"entry {index}"
        for key in STRINGS:
            value = target.get(key)
            if not isinstance(value, str) or value != value.strip():
                problems.append(f"{where}: {key} must be a string without outer spaces")
        for key in ("slug", "name", "description", "kind", "pubmed_query", "ctgov_term"):
            if isinstance(target.get(key), str) and not target[key]:
                problems.append(f"{where}: {key} is empty")
        for key in STRING_LISTS:
            if not _is_string_list(target.get(key)):
                problems.append(f"{where}: {key} must be a list of non-empty trimmed strings")
        if not isinstance(target.get("positive_status_counts"), bool):
            problems.append(f"{where}: positive_status_counts must be true or false")
        if isinstance(slug, str):
            if not SLUG.match(slug):
                problems.append(f"{where}: slug is not of the form {SLUG.pattern}")
            if slug in seen:
                problems.append(f"{where}: slug is used twice")
            seen.add(slug)
        if target.get("kind") not in KINDS:
            problems.append(f"{where}: kind {target.get('kind')!r} is not one of {sorted(KINDS)}")
        if not target.get("genes"):
            problems.append(f"{where}: needs at least one gene")
        if not target.get("sources"):
            problems.append(f"{where}: needs its sources")
        if target.get("kind") in {"variant", "fusion"} and not (
            target.get("variant_terms") or target.get("variant_patterns")
        ):
            problems.append(f"{where}: a {target['kind']} target needs variant terms or patterns")
        for pattern in target.get("variant_patterns") or []:
            try:
                re.compile(pattern)
            except (re.error, TypeError) as error:
                problems.append(f"{where}: pattern {pattern!r} does not compile: {error}")
        drugs = target.get("drugs", [])
        if not isinstance(drugs, list) or not drugs:
            problems.append(f"{where}: needs at least one target-specific drug")
            continue
        for drug in drugs:
            if (
                not isinstance(drug, dict)
                or not isinstance(drug.get("name"), str)
                or not drug["name"]
            ):
                problems.append(f"{where}: every drug needs a name")
                continue
            for key in DRUG_LISTS:
                value = drug.get(key)
                if not (isinstance(value, list) and (not value or _is_string_list(value))):
                    problems.append(
                        f"{where}: drug {drug['name']}: {key} must be a list of strings"
                    )
    return problems


def _drug_forms(drug: dict[str, Any]) -> list[str]:
    return [drug["name"], *drug.get("codes", []), *drug.get("brands", [])]


def drug_problems(targets: list[Target]) -> list[str]:
    """A drug form (name, code, brand) in two targets' drugs needs shared_with both ways;
    no drug is both specific and related in one target; shared_with names real slugs."""
    problems: list[str] = []
    slugs = {t["slug"] for t in targets}
    owners: dict[str, dict[str, set[str]]] = defaultdict(dict)
    for target in targets:
        specific_forms: set[str] = set()
        for drug in target["drugs"]:
            shared = set(drug.get("shared_with", []))
            for other in shared - slugs:
                problems.append(f"{target['slug']}: {drug['name']} is shared with unknown {other}")
            if target["slug"] in shared:
                problems.append(f"{target['slug']}: {drug['name']} is shared with itself")
            for form in _drug_forms(drug):
                key = form.casefold()
                if key in specific_forms:
                    problems.append(f"{target['slug']}: {form} is listed twice")
                specific_forms.add(key)
                owners[key][target["slug"]] = shared
        for related in target["related_drugs"]:
            if related.casefold() in specific_forms:
                problems.append(f"{target['slug']}: {related} is both specific and related")
    for form, by_slug in sorted(owners.items()):
        for slug, shared in by_slug.items():
            for other in by_slug.keys() - {slug}:
                if other not in shared:
                    problems.append(f"{slug}: {form} is also {other}'s drug but not shared_with it")
    return problems


def _target(slug: str, **changes: Any) -> Target:
    base: Target = {
        "slug": slug,
        "name": slug.upper(),
        "description": "A target for the checks' own tests.",
        "kind": "variant",
        "genes": ["GENE1"],
        "variant_terms": ["V1A"],
        "variant_patterns": [],
        "positive_status_counts": False,
        "related_drugs": [],
        "pubmed_query": '"GENE1"[tiab]',
        "ctgov_term": "GENE1",
        "ctgov_intr": "",
        "sources": ["HGNC:1"],
        "drugs": [{"name": f"{slug}nib", "codes": [], "brands": [], "shared_with": []}],
    }
    base.update(changes)
    return base


# --- the shipped catalogue ---------------------------------------------------------


@pytest.fixture(scope="module")
def catalogue() -> list[Target]:
    return load_catalogue()


def test_the_catalogue_ships_with_the_package_and_holds_enough_targets(
    catalogue: list[Target],
) -> None:
    assert len(catalogue) >= MIN_TARGETS


def test_every_entry_has_the_keys_types_slug_kind_and_regexes_the_rule_needs(
    catalogue: list[Target],
) -> None:
    assert shape_problems(catalogue) == []


def test_no_two_targets_share_a_drug_unless_both_say_so(catalogue: list[Target]) -> None:
    assert drug_problems(catalogue) == []


def test_every_gene_list_starts_with_the_hgnc_symbol_its_sources_cite(
    catalogue: list[Target],
) -> None:
    problems = []
    for target in catalogue:
        symbol = target["genes"][0]
        if not re.fullmatch(r"[A-Z][A-Z0-9-]*", symbol):
            problems.append(f"{target['slug']}: {symbol} does not look like an HGNC symbol")
        if not re.match(r"HGNC:\d+ ", target["sources"][0]):
            problems.append(f"{target['slug']}: the first source must be the HGNC entry")
    assert problems == []


def test_every_kind_is_represented(catalogue: list[Target]) -> None:
    assert {t["kind"] for t in catalogue} == KINDS


def test_her2_exon20_carries_the_specs_facts(catalogue: list[Target]) -> None:
    her2_exon20 = next(t for t in catalogue if t["slug"] == "her2-exon20")
    drugs = {d["name"]: d for d in her2_exon20["drugs"]}
    assert "BI 1810631" in drugs["zongertinib"]["codes"]
    assert "BAY 2927088" in drugs["sevabertinib"]["codes"]
    related = {r.casefold() for r in her2_exon20["related_drugs"]}
    specific = {form.casefold() for d in her2_exon20["drugs"] for form in _drug_forms(d)}
    for drug in ("poziotinib", "mobocertinib", "pyrotinib", "trastuzumab deruxtecan"):
        assert drug in related
        assert drug not in specific
    assert {"ERBB2", "HER2"} <= set(her2_exon20["genes"])


def test_her2_exon20_and_her2_protein_share_only_the_her2_selective_drugs(
    catalogue: list[Target],
) -> None:
    by_slug = {t["slug"]: t for t in catalogue}
    exon20 = {d["name"] for d in by_slug["her2-exon20"]["drugs"]}
    protein = {d["name"] for d in by_slug["her2"]["drugs"]}
    assert exon20 & protein == {"zongertinib", "sevabertinib"}
    assert "trastuzumab deruxtecan" in protein


def test_neighbouring_variant_targets_do_not_carry_each_others_defining_terms(
    catalogue: list[Target],
) -> None:
    terms = {t["slug"]: {v.casefold() for v in t["variant_terms"]} for t in catalogue}
    assert not {"exon 19 deletion", "l858r", "t790m", "exon 20"} & terms["egfr-exon20"]
    assert not {"insertion", "ex20ins", "exon20ins"} & terms["egfr-sensitising"]
    assert "g12d" not in terms["kras-g12c"] and "g12c" not in terms["kras-g12d"]
    assert not {"amplification", "overexpression"} & terms["met-exon14"]
    assert not {"amplification", "mutation", "f1174l"} & terms["alk-fusion"]


# --- the checks catch what they are for --------------------------------------------


def test_the_shape_check_names_each_broken_entry() -> None:
    broken = [
        _target("good"),
        _target("Bad Slug"),
        _target("good"),
        _target("kinded", kind="gene"),
        _target("regex", variant_patterns=["(unclosed"]),
        _target("typed", genes="GENE1", positive_status_counts="yes"),
        _target("bare", variant_terms=[], drugs=[]),
    ]
    problems = shape_problems(broken)
    assert any(p.startswith("Bad Slug: slug is not of the form") for p in problems)
    assert "good: slug is used twice" in problems
    assert any(p.startswith("kinded: kind 'gene'") for p in problems)
    assert any(p.startswith("regex: pattern '(unclosed' does not compile") for p in problems)
    assert "typed: genes must be a list of non-empty trimmed strings" in problems
    assert "typed: positive_status_counts must be true or false" in problems
    assert "bare: a variant target needs variant terms or patterns" in problems
    assert "bare: needs at least one target-specific drug" in problems


def test_the_shape_check_reports_a_missing_key() -> None:
    entry = _target("nokey")
    del entry["pubmed_query"]
    assert shape_problems([entry]) == ["nokey: pubmed_query must be a string without outer spaces"]


def test_a_drug_form_in_two_targets_needs_shared_with_on_both_sides() -> None:
    one_sided = [
        _target(
            "a", drugs=[{"name": "xnib", "codes": ["X-1"], "brands": [], "shared_with": ["b"]}]
        ),
        _target("b", drugs=[{"name": "ynib", "codes": ["X-1"], "brands": [], "shared_with": []}]),
    ]
    assert drug_problems(one_sided) == ["b: x-1 is also a's drug but not shared_with it"]
    both = [
        _target("a", drugs=[{"name": "xnib", "codes": [], "brands": [], "shared_with": ["b"]}]),
        _target("b", drugs=[{"name": "Xnib", "codes": [], "brands": [], "shared_with": ["a"]}]),
    ]
    assert drug_problems(both) == []


def test_a_drug_cannot_be_specific_and_related_in_one_target_nor_shared_with_nothing() -> None:
    both_ways = _target(
        "a",
        related_drugs=["XNIB"],
        drugs=[{"name": "xnib", "codes": [], "brands": [], "shared_with": ["ghost"]}],
    )
    assert drug_problems([both_ways]) == [
        "a: xnib is shared with unknown ghost",
        "a: XNIB is both specific and related",
    ]
