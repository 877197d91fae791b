from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

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
