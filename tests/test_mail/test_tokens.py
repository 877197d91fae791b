from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from itsdangerous import URLSafeTimedSerializer

from alerts.config import Settings
from alerts.subscriptions import tokens
from alerts.subscriptions.tokens import InvalidToken, Purpose


def _token(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def test_links_round_trip(settings: Settings) -> None:
    url = tokens.unsubscribe_url(settings, [3, 1])
    assert url.startswith("http://alerts.test/unsubscribe?token=")
    assert tokens.read_token(settings, Purpose.unsubscribe, _token(url)) == {"a": [1, 3]}
    manage = tokens.manage_url(settings, 7)
    assert tokens.read_token(settings, Purpose.manage, _token(manage)) == {"s": 7}


def test_a_token_is_bound_to_its_purpose(settings: Settings) -> None:
    manage = _token(tokens.manage_url(settings, 7))
    with pytest.raises(InvalidToken):
        tokens.read_token(settings, Purpose.unsubscribe, manage)


@pytest.mark.parametrize("garbage", ["", "abc", "eyJzIjo3fQ.bad.sig"])
def test_garbled_tokens_are_refused(settings: Settings, garbage: str) -> None:
    with pytest.raises(InvalidToken):
        tokens.read_token(settings, Purpose.manage, garbage)


@pytest.mark.parametrize(
    ("purpose", "payload"),
    [(Purpose.manage, {"s": 7}), (Purpose.unsubscribe, {"a": [1, 3]}),
     (Purpose.confirm, {"s": 2, "a": [5]})],
)
def test_tokens_are_what_itsdangerous_writes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, purpose: Purpose, payload: dict
) -> None:
    # The clock itself, not a name in one module: both sides must read the same second.
    monkeypatch.setattr(time, "time", lambda: 1_780_000_000.5)
    reference = URLSafeTimedSerializer(settings.signing_key(), salt=f"target-alerts/{purpose}")
    assert tokens.make_token(settings, purpose, payload) == reference.dumps(payload)


def test_compressed_tokens_of_mails_already_sent_still_work(settings: Settings) -> None:
    alert_ids = list(range(1, 200))
    old = URLSafeTimedSerializer(settings.signing_key(), salt="target-alerts/unsubscribe")
    token = old.dumps({"a": alert_ids})
    assert token.startswith(".")  # itsdangerous compressed it
    assert tokens.read_token(settings, Purpose.unsubscribe, token) == {"a": alert_ids}
    fresh = _token(tokens.unsubscribe_url(settings, alert_ids))
    assert tokens.read_token(settings, Purpose.unsubscribe, fresh) == {"a": alert_ids}
