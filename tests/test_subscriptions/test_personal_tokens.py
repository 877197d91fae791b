"""Personal API tokens: mailed only to verified addresses, one answer for every
address, stored as a hash, limited per hour."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from alerts.subscriptions import service
from db.models import ApiToken
from tests.test_subscriptions.harness import Harness, text_of, token_in


def test_a_verified_address_gets_a_working_token_by_mail(harness: Harness) -> None:
    harness.verified_subscriber("ann@example.org")

    response = harness.client.post("/api/v1/tokens", json={"email": "Ann@Example.org"})

    assert response.status_code == 202
    mail = harness.mails("ann@example.org")[-1]
    assert not str(mail["Subject"]).startswith("Confirm")
    lines = text_of(mail).splitlines()
    token = lines[lines.index("Your API token:") + 1]
    assert token == token_in(mail) and token.startswith("ta_") and " " not in token
    listed = harness.client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200
    assert [a["email"] for a in listed.json()["data"]] == ["ann@example.org"]


def test_only_the_tokens_hash_is_stored(harness: Harness) -> None:
    harness.verified_subscriber("ann@example.org")
    token = harness.personal_token("ann@example.org")
    with harness.db() as session:
        stored = list(session.scalars(select(ApiToken.token_hash)))
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]


@pytest.mark.parametrize("who", ["unknown", "unverified", "verified"])
def test_the_answer_is_the_same_for_every_address(harness: Harness, who: str) -> None:
    harness.verified_subscriber("known@example.org")
    harness.api_subscribe("pending@example.org")
    email = {"unknown": "nobody@example.org", "unverified": "pending@example.org",
             "verified": "known@example.org"}[who]
    mails_before = len(harness.mails(email))

    response = harness.client.post("/api/v1/tokens", json={"email": email})

    assert (response.status_code, response.json()) == (
        202, {"detail": "If this address is verified, a token is on its way to it."})
    assert len(harness.mails(email)) - mails_before == (1 if who == "verified" else 0)


def test_tokens_are_limited_per_address_and_hour(harness: Harness) -> None:
    harness.verified_subscriber("ann@example.org")

    answers = {harness.client.post("/api/v1/tokens", json={"email": "ann@example.org"})
               .status_code for _ in range(service.TOKENS_PER_HOUR + 2)}

    assert answers == {202}
    token_mails = [m for m in harness.mails("ann@example.org") if "token" in str(m["Subject"])]
    assert len(token_mails) == service.TOKENS_PER_HOUR


@pytest.mark.parametrize("body", [{"email": "not-an-address"}, {}, {"email": "a@b.org", "x": 1}])
def test_a_bad_token_request_is_422(harness: Harness, body: dict[str, object]) -> None:
    assert harness.client.post("/api/v1/tokens", json=body).status_code == 422
    assert harness.mails() == []
