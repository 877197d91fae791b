"""The API tests of the catalogue run on the subscription harness's app, inside the
test's rolled-back transaction (rows added through `session` are seen by requests)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.test_subscriptions.harness import Harness, harness

__all__ = ["client", "harness"]


@pytest.fixture
def client(harness: Harness) -> TestClient:
    return harness.client
