"""Bad input from anyone is a 4xx with a clear detail, never a 500: ids past what a row
can hold, forged cursors (huge numbers, deep nesting, long text), dates that overflow
once moved to UTC, in paths, queries and forms."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from alerts.pagination import MAX_ID, decode_cursor, encode_cursor
from alerts.subscriptions.tokens import manage_url
from tests.test_subscriptions.harness import ADMIN_TOKEN, SLUG, Harness, csrf_field, relative

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HUGE = str(2**64)


def b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


BAD_CURSORS = {
    "garbage": "garbage!",
    "huge number": b64(f"[{'9' * 5000}]"),
    "past bigint": b64(f"[{2**63}]"),
    "negative": b64("[-1]"),
    "float": b64("[1e999]"),
    "deep brackets": b64("[" * 5000 + "]" * 5000),
    "long": "A" * 5000,
    "not a list": b64('{"after": 1}'),
    "boolean": b64("[true]"),
    "not utf-8": base64.urlsafe_b64encode(b"\xff\xfe[1]").decode(),
    "overflowing date": b64('["9999-12-31T23:59:59-23:59", 1]'),
    "naive parts": b64('["yesterday", 1]'),
}


@pytest.mark.parametrize("cursor", BAD_CURSORS.values(), ids=BAD_CURSORS.keys())
@pytest.mark.parametrize(
    "path", [f"/api/v1/targets/{SLUG}/items", "/api/v1/alerts", "/api/v1/digests"]
)
def test_a_forged_cursor_is_422_on_every_list(harness: Harness, path: str, cursor: str) -> None:
    response = harness.client.get(path, params={"cursor": cursor}, headers=ADMIN)

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_the_codec_reads_back_what_it_wrote() -> None:
    from datetime import UTC, datetime

    moment = datetime(2026, 5, 1, 8, tzinfo=UTC)
    assert decode_cursor(encode_cursor(moment, MAX_ID), datetime, int) == (moment, MAX_ID)
    assert decode_cursor(encode_cursor(7), int) == (7,)


@pytest.mark.parametrize("since", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59",
                                   "2026-02-30", "x" * 100])
def test_a_since_that_is_no_utc_moment_is_refused(harness: Harness, since: str) -> None:
    api = harness.client.get(f"/api/v1/targets/{SLUG}/items", params={"since": since})
    page = harness.client.get(f"/targets/{SLUG}/items", params={"since": since})

    assert api.status_code == 422 and api.json()["detail"][0]["loc"] == ["query", "since"]
    assert page.status_code == 400 and "not a date" in page.text


@pytest.mark.parametrize("alert_id", [HUGE, str(MAX_ID + 1), "0", "-1", "1e3", "١"])
@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/preview")]
)
def test_an_id_no_row_can_have_is_422(
    harness: Harness, alert_id: str, method: str, suffix: str
) -> None:
    response = harness.client.request(method, f"/api/v1/alerts/{alert_id}{suffix}",
                                      headers=ADMIN, json={} if method == "PATCH" else None)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["path", "alert_id"]


def test_the_largest_id_is_simply_not_found(harness: Harness) -> None:
    response = harness.client.get(f"/api/v1/alerts/{MAX_ID}", headers=ADMIN)
    assert response.status_code == 404


@pytest.mark.parametrize("alert_id", [HUGE, str(MAX_ID + 1), "0", "²", "9" * 400, ""])
def test_the_manage_form_with_an_impossible_alert_id_is_a_page(
    harness: Harness, alert_id: str
) -> None:
    harness.verified_subscriber("ann@example.org")
    subscriber = harness.subscriber("ann@example.org")
    assert subscriber is not None
    link = relative(manage_url(harness.settings, subscriber.id))
    page = harness.client.get(link)
    data: dict[str, Any] = {"csrf_token": csrf_field(page.text), "alert_id": alert_id,
                            "action": "pause"}

    response = harness.client.post(link, data=data)

    assert response.status_code == 422
    assert "That alert does not exist." in response.text
    assert harness.statuses("ann@example.org") == ["active"]
