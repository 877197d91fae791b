"""Every page and API answer, errors included, carries the security headers: a strict
CSP (relaxed only for /docs and the development mailbox), no framing, nosniff, no
Referer."""

from __future__ import annotations

import pytest

from alerts.app import DOCS_CSP, STRICT_CSP
from tests.test_subscriptions.harness import SLUG, Harness


@pytest.mark.parametrize(
    ("method", "path", "csp"),
    [
        ("GET", "/", STRICT_CSP),
        ("GET", "/confirm?token=garbage", STRICT_CSP),
        ("GET", "/manage", STRICT_CSP),
        ("GET", f"/targets/{SLUG}/items?since=2026-01-01", STRICT_CSP),
        ("GET", "/static/site.css", STRICT_CSP),
        ("GET", "/api/v1/targets", STRICT_CSP),
        ("GET", "/api/v1/alerts", STRICT_CSP),  # 401
        ("GET", "/api/v1/alerts/0", STRICT_CSP),  # 422
        ("GET", "/nowhere", STRICT_CSP),  # 404
        ("GET", "/openapi.json", STRICT_CSP),
        ("GET", "/healthz", STRICT_CSP),
        ("GET", "/docs", DOCS_CSP),
    ],
)
def test_every_answer_carries_the_security_headers(
    harness: Harness, method: str, path: str, csp: str
) -> None:
    response = harness.client.request(method, path)

    assert response.headers["content-security-policy"] == csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_the_strict_policy_allows_nothing_inline_nor_from_elsewhere() -> None:
    assert "unsafe-inline" not in STRICT_CSP and "http" not in STRICT_CSP
    assert "script-src 'self'" in STRICT_CSP and "default-src 'none'" in STRICT_CSP


def test_a_413_carries_them_too(harness: Harness) -> None:
    response = harness.client.post("/api/v1/tokens", content=b"x" * 1_100_000,
                                   headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.headers["x-frame-options"] == "DENY"


def test_the_pages_have_no_inline_script_or_style(harness: Harness) -> None:
    page = harness.client.get("/").text
    assert "<style" not in page and "<script>" not in page and " style=" not in page
    assert harness.client.get("/static/site.css").headers["content-type"].startswith("text/css")
