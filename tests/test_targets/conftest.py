"""The API tests of the catalogue run on the subscription harness's app, inside the
test's rolled-back transaction (rows added through `session` are seen by requests); the
command tests run `alerts` on the test's own database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from alerts.cli import app
from tests.test_subscriptions.harness import Harness, harness

__all__ = ["client", "harness"]

Invoke = Callable[..., Result]


@pytest.fixture
def client(harness: Harness) -> TestClient:
    return harness.client


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> Invoke:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALERTS_DATABASE_URL", db_url)
    monkeypatch.setenv("ALERTS_VAR_DIR", str(tmp_path / "var"))
    return lambda *args: CliRunner().invoke(app, list(args))
