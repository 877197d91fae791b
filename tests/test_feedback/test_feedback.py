"""A digest item's "not relevant" link: the GET shows a button and records nothing, the
POST records one label per reader, the operator lists labels, and they export as
evaluation cases. Nothing about the item changes for other readers."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from alerts.subscriptions.tokens import Purpose, feedback_url, make_token
from db.models import ItemEvent, ItemTarget, ReaderLabel, Subscriber
from tests.test_subscriptions.harness import ADMIN_TOKEN, SLUG, Harness, relative

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _announce(harness: Harness, item_id: int) -> int:
    """The `new` event of the item for the target, as a digest shows it."""
    with harness.db() as session:
        event = ItemEvent(item_id=item_id, target_id=harness.target_id(), kind="new",
                          changes=[])
        session.add(event)
        session.flush()
        return event.id


def _reader_and_item(harness: Harness, email: str = "ann@example.org") -> tuple[int, int, int]:
    """(subscriber id, item id, event id) of a reader and an item in their digest."""
    harness.verified_subscriber(email)
    harness.add_item("HER2-positive breast cancer with a PIK3CA mutation",
                     external_id="40000001", url="https://pubmed.ncbi.nlm.nih.gov/40000001/")
    with harness.db() as session:
        subscriber_id = session.scalars(
            select(Subscriber.id).where(Subscriber.email == email)).one()
        item_id = session.scalars(select(ItemTarget.item_id)).all()[-1]
    return subscriber_id, item_id, _announce(harness, item_id)


def _link(harness: Harness, subscriber_id: int, event_id: int) -> str:
    return relative(feedback_url(harness.settings, subscriber_id)) + f"&event={event_id}"


def _labels(harness: Harness) -> list[ReaderLabel]:
    with harness.db() as session:
        return list(session.scalars(select(ReaderLabel).order_by(ReaderLabel.id)))


def test_the_link_shows_the_item_and_a_button_and_records_nothing(harness: Harness) -> None:
    subscriber_id, item_id, event_id = _reader_and_item(harness)
    link = _link(harness, subscriber_id, event_id)

    page = harness.client.get(link)

    assert page.status_code == 200
    assert "HER2-positive breast cancer with a PIK3CA mutation" in page.text
    assert '<form method="post"' in page.text and "Not relevant</button>" in page.text
    assert _labels(harness) == []


def test_the_button_records_one_label_per_reader(harness: Harness) -> None:
    subscriber_id, item_id, event_id = _reader_and_item(harness)
    link = _link(harness, subscriber_id, event_id)

    first = harness.client.post(link)
    again = harness.client.post(link)

    assert first.status_code == 200 and again.status_code == 200
    assert "Thank you" in first.text
    [label] = _labels(harness)
    assert (label.item_id, label.target_id, label.subscriber_id, label.label) == (
        item_id, harness.target_id(), subscriber_id, "not_relevant")


def test_a_label_changes_nothing_for_other_readers(harness: Harness) -> None:
    subscriber_id, _item_id, event_id = _reader_and_item(harness)
    harness.client.post(_link(harness, subscriber_id, event_id))

    items = harness.client.get(f"/api/v1/targets/{SLUG}/items").json()["data"]

    assert [i["external_id"] for i in items] == ["40000001"]


@pytest.mark.parametrize("payload, event", [
    ({}, 1),  # no reader
    ({"s": "1"}, 1),  # not a number
    ({"s": True}, 1),  # not a number either
    ({"s": 10**6}, 1),  # no such reader
    (None, 10**6),  # no such event
])
def test_a_bad_link_is_a_clear_page(
    harness: Harness, payload: dict[str, object] | None, event: int
) -> None:
    subscriber_id, _item_id, _event_id = _reader_and_item(harness)
    token = make_token(harness.settings, Purpose.feedback,
                       {"s": subscriber_id} if payload is None else payload)
    for method in (harness.client.get, harness.client.post):
        response = method("/feedback", params={"token": token, "event": event})
        assert response.status_code == 400
        assert "This link does not work" in response.text
    assert _labels(harness) == []


@pytest.mark.parametrize("event", ["", "x", "0", str(2**63), "-1"])
def test_a_bad_event_is_refused(harness: Harness, event: str) -> None:
    subscriber_id, _item_id, _event_id = _reader_and_item(harness)
    link = relative(feedback_url(harness.settings, subscriber_id)) + f"&event={event}"
    response = harness.client.post(link)
    assert response.status_code == 422
    assert "This address is damaged" in response.text  # a page, not JSON
    assert _labels(harness) == []


def test_a_link_of_another_purpose_is_refused(harness: Harness) -> None:
    token = make_token(harness.settings, Purpose.manage, {"s": 1})
    response = harness.client.post("/feedback", params={"token": token, "event": 1})
    assert response.status_code == 400


def test_the_operator_lists_labels_without_the_reader(harness: Harness) -> None:
    subscriber_id, _item_id, event_id = _reader_and_item(harness)
    harness.client.post(_link(harness, subscriber_id, event_id))

    response = harness.client.get("/api/v1/feedback", params={"target": SLUG}, headers=ADMIN)

    assert response.status_code == 200
    [row] = response.json()["data"]
    assert row["external_id"] == "40000001" and row["target"] == SLUG
    assert row["label"] == "not_relevant"
    assert "ann@example.org" not in response.text
    assert response.json()["next_cursor"] is None


def test_labels_are_paged(harness: Harness) -> None:
    harness.verified_subscriber("ann@example.org")
    for n in range(3):
        harness.add_item(f"Item {n}", external_id=f"4000010{n}", url=f"https://x.org/{n}")
    with harness.db() as session:
        subscriber_id = session.scalars(select(Subscriber.id)).one()
        item_ids = session.scalars(select(ItemTarget.item_id).order_by(ItemTarget.id)).all()
    for item_id in item_ids:
        harness.client.post(_link(harness, subscriber_id, _announce(harness, item_id)))

    first = harness.client.get("/api/v1/feedback?limit=2", headers=ADMIN).json()
    second = harness.client.get("/api/v1/feedback", params={
        "limit": 2, "cursor": first["next_cursor"]}, headers=ADMIN).json()

    seen = [row["external_id"] for row in first["data"] + second["data"]]
    assert seen == ["40000102", "40000101", "40000100"]
    assert second["next_cursor"] is None


@pytest.mark.parametrize("headers, status", [({}, 401), ({"Authorization": "Bearer nope"}, 401)])
def test_only_the_operator_lists_labels(
    harness: Harness, headers: dict[str, str], status: int
) -> None:
    assert harness.client.get("/api/v1/feedback", headers=headers).status_code == status


def test_a_subscriber_token_is_not_enough(harness: Harness) -> None:
    harness.verified_subscriber("ann@example.org")
    token = harness.personal_token("ann@example.org")
    response = harness.client.get("/api/v1/feedback",
                                  headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403


@pytest.mark.parametrize("query", [{"cursor": "%%%"}, {"cursor": "OTk5OTk5OTk5OTk5OTk5OTk5OTk5"},
                                   {"target": "no-such-target"}, {"limit": "0"}])
def test_bad_list_queries_are_4xx(harness: Harness, query: dict[str, str]) -> None:
    response = harness.client.get("/api/v1/feedback", params=query, headers=ADMIN)
    assert response.status_code in (404, 422)


def test_labels_export_as_evaluation_cases(harness: Harness) -> None:
    from alerts.feedback.service import evaluation_cases

    subscriber_id, _item_id, event_id = _reader_and_item(harness)
    harness.client.post(_link(harness, subscriber_id, event_id))
    harness.verified_subscriber("bob@example.org")
    with harness.db() as session:
        bob = session.scalars(select(Subscriber.id).where(
            Subscriber.email == "bob@example.org")).one()
    harness.client.post(_link(harness, bob, event_id))

    with harness.db() as session:
        cases = list(evaluation_cases(session, target=SLUG))

    [case] = cases
    assert case["label"] is False and case["target"] == SLUG and case["source"] == "pubmed"
    assert case["title"] == "HER2-positive breast cancer with a PIK3CA mutation"
    assert "2 reader(s)" in case["reason"]
    json.dumps(case)  # one JSON line each


def test_export_command_prints_one_json_line_per_case(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from alerts.cli import app

    subscriber_id, _item_id, event_id = _reader_and_item(harness)
    harness.client.post(_link(harness, subscriber_id, event_id))
    monkeypatch.setenv("ALERTS_DATABASE_URL", harness.settings.database_url)
    monkeypatch.setenv("ALERTS_VAR_DIR", str(harness.settings.var_dir))

    unknown = CliRunner().invoke(app, ["feedback", "export", "--target", "no-such"])

    assert unknown.exit_code == 1 and "no-such" in unknown.output
