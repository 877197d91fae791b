"""The her2-exon20 rule as the shipped catalogue defines it."""

from __future__ import annotations

from typing import Any

import pytest

from alerts.matching import TargetRule, compile_rule
from alerts.matching.catalogue import CATALOGUE_FILE, load_definitions


@pytest.fixture(scope="session")
def her2_definition() -> dict[str, Any]:
    return load_definitions(CATALOGUE_FILE)["her2-exon20"]


@pytest.fixture(scope="session")
def her2(her2_definition: dict[str, Any]) -> TargetRule:
    return compile_rule(her2_definition)

