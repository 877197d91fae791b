"""The shipped catalogue's HER2 exon 20 rule, as tests use it.

Tests about storage, rematching and rendering assert on the decisions the match-rule
interface (alerts.matching) returns, not on a rule's exact wording. A few realistic
items are recognised only by a rule that reads a target's variant terms (the SPEC's
"ERBB2 ex20ins", "HER2 YVMA"); those tests run when the rule in the tree does
(`needs_variant_rule`), and are skipped, saying why, while it does not.
"""

from __future__ import annotations

from typing import Any

import pytest

from alerts.matching import MatchInput, compile_rule
from alerts.targets.catalogue import load_catalogue

HER2_SLUG = "her2-exon20"
HER2_RULE: dict[str, Any] = load_catalogue().by_slug()[HER2_SLUG].rule_definition()


def rule_reads_variant_terms() -> bool:
    rule = compile_rule(HER2_RULE)
    return rule.match(MatchInput("pubmed", title="ERBB2 ex20ins in lung cancer")).matched


needs_variant_rule = pytest.mark.skipif(
    not rule_reads_variant_terms(),
    reason="the match rule in this tree does not read the catalogue's variant terms yet",
)
