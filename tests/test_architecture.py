"""The dependency direction of STYLE.md: db <- alerts <- scheduler."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("db", {"alerts", "scheduler"}), ("alerts", {"scheduler"})],
)
def test_dependency_direction(package: str, forbidden: set[str]) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if path == ROOT / "alerts" / "cli.py":
            continue  # the composition root may start the scheduler
        bad = _imports(path) & forbidden
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert offenders == []


def test_adapters_touch_no_database_or_mail() -> None:
    for path in sorted((ROOT / "alerts" / "sources").glob("*.py")):
        imports = _imports(path)
        assert "db" not in imports, path
        assert "sqlalchemy" not in imports, path
        assert "smtplib" not in imports, path
