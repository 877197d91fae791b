"""The subscribe page searches the catalogue without JavaScript: `GET /?q=` lists at most
SEARCH_RESULTS matching targets as checkboxes, ticked targets stay ticked across
searches and errors, the form's POST subscribes to them, and a catalogue of thousands
never becomes thousands of checkboxes."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
from sqlalchemy import select

from alerts.web.pages import FEATURED_TARGETS, MAX_FORM_TARGETS, SEARCH_RESULTS
from db.models import Target
from tests.test_digests.factories import Factory
from tests.test_subscriptions.harness import Harness, csrf_field
from tests.test_targets.search_data import add_targets, synthetic_targets


class Form(HTMLParser):
    """The controls of the page's forms: every input with its form, and the buttons."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[dict[str, str | None]] = []
        self.inputs: list[dict[str, str | None]] = []
        self.buttons: list[dict[str, str | None]] = []
        self.scripts: list[str | None] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append(attributes)
        elif tag == "input":
            self.inputs.append({**attributes, "form": str(len(self.forms) - 1)})
        elif tag == "button":
            self.buttons.append(attributes)
        elif tag == "script":
            self.scripts.append(attributes.get("src"))

    def targets(self) -> dict[str, bool]:
        """Each target checkbox's slug -> ticked."""
        return {str(i["value"]): "checked" in i for i in self.inputs
                if i.get("name") == "target" and i.get("type") == "checkbox"}

    def ticked(self) -> list[str]:
        return [slug for slug, checked in self.targets().items() if checked]


@pytest.fixture
def catalogue(harness: Harness) -> None:
    with harness.db() as session:
        add_targets(session)


def page(harness: Harness, status: int = 200, **params: Any) -> Any:
    response = harness.client.get("/", params=params)
    assert response.status_code == status, response.text
    return response


@pytest.mark.usefixtures("catalogue")
def test_a_search_lists_the_matching_targets_and_why(harness: Harness) -> None:
    response = page(harness, q="zongertinib")

    form = Form(response.text)
    assert form.targets() == {"her2": False, "her2-exon20": False}
    assert response.text.count("Matched on drug: zongertinib") == 2
    assert "Targets matching &ldquo;zongertinib&rdquo;" in response.text
    assert 'value="zongertinib"' in response.text  # the box keeps the query
    assert 'value="weekly" checked' in response.text  # a link to /?q= keeps the defaults


@pytest.mark.usefixtures("catalogue")
def test_a_search_without_a_match_says_so(harness: Harness) -> None:
    response = page(harness, q="nothing like it")

    assert Form(response.text).targets() == {}
    assert "No target matches &ldquo;nothing like it&rdquo;" in response.text


@pytest.mark.usefixtures("catalogue")
def test_the_search_needs_no_javascript(harness: Harness) -> None:
    form = Form(page(harness).text)

    # one form: the search button posts all of it (ticks included) to /search, the other
    # button posts it to /subscribe; the search button comes first, so without
    # JavaScript Enter searches (nothing sent, nothing lost)
    [subscribe_form] = form.forms
    assert (subscribe_form["method"], subscribe_form["action"]) == ("post", "/subscribe")
    search, subscribe = form.buttons
    assert (search["formaction"], search["formmethod"]) == ("/search", "post")
    assert "formnovalidate" in search and "formaction" not in subscribe
    [box] = [i for i in form.inputs if i.get("name") == "q"]
    assert box["type"] == "search" and box["id"] == "q"
    assert 'label for="q"' in page(harness).text
    # conveniences only: the visitor's time zone, and Enter subscribing outside the box
    assert form.scripts == ["/static/timezone.js", "/static/subscribe.js"]
    assert harness.client.get("/static/subscribe.js").status_code == 200


def searched(harness: Harness, **fields: Any) -> Any:
    response = harness.client.post("/search", data=fields)
    assert response.status_code == 200, response.text
    return response


@pytest.mark.usefixtures("catalogue")
def test_ticked_targets_stay_ticked_across_searches(harness: Harness) -> None:
    # ticked her2-exon20 while it was listed for "zongertinib", then searched "kras"
    response = searched(harness, q="kras", target=["her2-exon20"], email="ann@example.org",
                        frequency="daily", timezone="Europe/Paris")

    form = Form(response.text)
    assert form.targets() == {"her2-exon20": True, "kras-g12c": False, "kras-g12d": False,
                              "kras-pan": False}
    assert response.text.index('value="her2-exon20"') < response.text.index("Targets matching")
    assert 'value="ann@example.org"' in response.text  # nothing typed is lost
    assert 'value="Europe/Paris"' in response.text
    assert harness.mails() == [] and harness.subscriber("ann@example.org") is None

    again = Form(page(harness, q="g12c", target=["her2-exon20", "kras-g12c"]).text)
    assert again.targets() == {"her2-exon20": True, "kras-g12c": True}
    assert Form(page(harness, target=["no-such-target"]).text).ticked() == []


@pytest.mark.usefixtures("catalogue")
def test_an_address_is_never_taken_from_the_url(harness: Harness) -> None:
    """The search never puts the address in a URL, and a URL that carries one (an old
    link, a crafted one) does not fill it in."""
    response = page(harness, q="kras", email="ann@example.org")
    assert "ann@example.org" not in response.text
    too_long = harness.client.post("/search", data={"q": "x" * 101, "email": "ann@example.org"})
    assert too_long.status_code == 422  # the page says the query is too long
    assert 'value="ann@example.org"' in too_long.text and "at most 100" in too_long.text


@pytest.mark.usefixtures("catalogue")
def test_posting_the_page_subscribes_to_the_ticked_targets(harness: Harness) -> None:
    response = page(harness, q="kras g12c", target=["her2-exon20"])
    form = Form(response.text)
    ticked = form.ticked() + ["kras-g12c"]  # and ticks KRAS G12C from the results

    answer = harness.client.post("/subscribe", data={
        "csrf_token": csrf_field(response.text), "email": "ann@example.org",
        "target": ticked, "frequency": "weekly", "weekday": "monday", "send_hour": "8",
        "timezone": "UTC", "max_items": "50", "q": "kras g12c"})

    assert answer.status_code == 200 and "Check your inbox" in answer.text
    with harness.db() as session:
        slugs = {harness_target.slug for harness_target in session.scalars(
            select(Target).where(Target.id.in_([a.target_id for a in
                                                harness.alerts("ann@example.org")])))}
    assert slugs == {"her2-exon20", "kras-g12c"}
    assert len(harness.mails("ann@example.org")) == 1


@pytest.mark.usefixtures("catalogue")
def test_an_error_redisplays_the_search_with_the_ticked_targets(harness: Harness) -> None:
    token = csrf_field(page(harness).text)

    answer = harness.client.post("/subscribe", data={
        "csrf_token": token, "email": "not an address", "q": "kras",
        "target": ["her2-exon20", "kras-g12d"], "frequency": "weekly"})

    assert answer.status_code == 422
    form = Form(answer.text)
    assert form.ticked() == ["her2-exon20", "kras-g12d"]
    assert {"kras-g12c", "kras-pan"} <= set(form.targets())  # the search is shown again
    assert harness.mails() == []


def test_too_many_targets_in_one_form_are_refused(harness: Harness) -> None:
    token = csrf_field(page(harness).text)

    answer = harness.client.post("/subscribe", data={
        "csrf_token": token, "email": "ann@example.org", "frequency": "weekly",
        "target": [f"t-{n}" for n in range(MAX_FORM_TARGETS + 1)]})

    assert answer.status_code == 422
    assert f"Choose at most {MAX_FORM_TARGETS} targets at a time." in answer.text
    assert harness.mails() == []


@pytest.mark.usefixtures("catalogue")
@pytest.mark.parametrize("q", ["x" * 101, "\x00", "%", "'", "\U0010ffff"])
def test_an_odd_query_is_answered_with_the_page(harness: Harness, q: str) -> None:
    response = harness.client.get("/", params={"q": q})
    assert response.status_code in (200, 422)
    assert csrf_field(response.text)
    if len(q) > 100:
        assert response.status_code == 422 and "Type at most 100 characters." in response.text


def test_thousands_of_targets_never_make_thousands_of_checkboxes(harness: Harness) -> None:
    with harness.db() as session:
        add_targets(session)
        synthetic_targets(session, 2000)
        factory = Factory(session)
        followed = session.scalars(select(Target).where(Target.slug == "kras-g12d")).one()
        factory.alert(factory.subscriber(), followed)

    start = Form(page(harness).text)
    assert len(start.targets()) == FEATURED_TARGETS
    assert list(start.targets())[0] == "kras-g12d"  # the most followed first
    assert "2006 targets in the catalogue: search to find the others." in page(harness).text

    found = page(harness, q="synthetic")
    assert len(Form(found.text).targets()) == SEARCH_RESULTS
    assert "The best 20 of 2000 matches: add a word to narrow the search." in found.text
    assert Form(page(harness, q="synthib1999").text).targets() == {"synthetic-01999": False}

    ticked = Form(page(harness, q="synthetic", target=["her2", "kras-g12c"]).text)
    assert len(ticked.targets()) == SEARCH_RESULTS + 2 and ticked.ticked() == [
        "her2", "kras-g12c"]


def test_a_small_catalogue_is_listed_whole_and_one_target_comes_ticked(
    harness: Harness,
) -> None:
    assert Form(page(harness).text).targets() == {"her2-exon20": True}  # the seed alone
    with harness.db() as session:
        add_targets(session)
    assert Form(page(harness).text).targets() == dict.fromkeys(
        ["egfr-exon20", "her2", "her2-exon20", "kras-g12c", "kras-g12d", "kras-pan"], False)
