"""The body cache: its key is everything a digest body depends on.

The templates read nothing but a `DigestBody` and the reader's `DigestLinks`, and the
cache keys on the `DigestBody` itself. These tests hold both halves: a template that
reads another name fails the first; a field of the body (at any depth) that the key
leaves out fails the others, including a field added later, since they walk the
records' own fields."""

from __future__ import annotations

import typing
from dataclasses import fields, is_dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from jinja2 import meta

from alerts.digests.compose import (
    Change,
    Evidence,
    ItemGroup,
    ItemView,
    PhaseMove,
    Section,
    SourceHealth,
)
from alerts.digests.delivery import bodies
from alerts.digests.message import DigestBody, DigestLinks, SectionBody, render_body
from alerts.mail.message import Part
from alerts.templating import environment

MOMENT = datetime(2026, 5, 4, 8, tzinfo=UTC)


def sample_body() -> DigestBody:
    """A body in which every field holds something (so that each can be changed)."""
    item = ItemView(
        event_id=7, section=Section.trial_updates, title="SOHO-01",
        source_label="ClinicalTrials.gov", date=MOMENT,
        url="https://clinicaltrials.gov/study/NCT05099172", matched_terms=("HER2",),
        changes=(Change("Overall status", "RECRUITING", "ACTIVE_NOT_RECRUITING"),),
        byline=("Phase 1/2", "Bayer"),
        evidence=Evidence("Title", (("HER2", True), (" exon 20", False)), cut_before=True),
    )
    section = SectionBody(
        target_slug="her2-exon20", target_name="HER2 exon 20",
        groups=(ItemGroup(Section.trial_updates, "Trial updates", (item,)),),
        phase_moves=(PhaseMove(("sevabertinib",), "Phase 1", "Phase 1/2", "NCT05099172"),),
        counts=((Section.trial_updates, 3),), hidden=2,
        more="http://alerts.test/targets/her2-exon20/items?since=2026-05-01T04:00:00Z",
        sources=(SourceHealth("rss", "RSS feeds", MOMENT, 4, True, "HTTP 503", ("slow",)),),
    )
    return DigestBody(subject="HER2 exon 20: 3 trial updates", frequency="weekly",
                      day=date(2026, 5, 4), public_url="http://alerts.test",
                      sections=(section,))


def links(sections: int) -> DigestLinks:
    return DigestLinks(manage="http://alerts.test/manage?token=m", unsubscribe_all="",
                       unsubscribe=tuple(f"http://alerts.test/u?token={n}"
                                         for n in range(sections)),
                       feedback="http://alerts.test/feedback?token=f")


# --- the templates read the body and the links, nothing else ----------------------------


@pytest.mark.parametrize(
    ("template", "loop_names"),
    [("digest.txt", set()), ("digest.html", set()),
     # Included inside `{% for section in body.sections %}`.
     ("_section.txt", {"section"}), ("_section.html", {"section"})],
)
def test_the_templates_read_nothing_but_the_body_and_the_links(
    template: str, loop_names: set[str]
) -> None:
    env = environment()
    source = env.loader.get_source(env, f"digest/{template}")[0]  # type: ignore[union-attr]
    assert meta.find_undeclared_variables(env.parse(source)) <= {"body", "links", *loop_names}


# --- every field of the body is in the key ----------------------------------------------


def _is_named_tuple(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields")


def _records_in(hint: Any) -> set[type]:
    """The dataclasses and named tuples a field's type names, at any depth (tuples,
    unions, ...)."""
    if is_dataclass(hint) or _is_named_tuple(hint):
        return {typing.cast(type, hint)}
    found: set[type] = set()
    for argument in typing.get_args(hint):
        found |= _records_in(argument)
    return found


def _reachable(root: type) -> set[type]:
    seen: set[type] = set()
    todo = [root]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        for hint in typing.get_type_hints(cls).values():
            todo.extend(_records_in(hint))
    return seen


def test_the_body_reaches_every_record_the_templates_show() -> None:
    assert _reachable(DigestBody) >= {SectionBody, ItemGroup, ItemView, Change, Evidence,
                                      PhaseMove, SourceHealth}


@pytest.mark.parametrize("cls", sorted(_reachable(DigestBody), key=lambda c: c.__name__),
                         ids=lambda c: c.__name__)
def test_every_field_at_every_depth_takes_part_in_equality_and_hash(cls: type) -> None:
    """A field left out of `==` or `hash` (field(compare=False), a hand-written __eq__
    or __hash__) would be shown by the templates without telling cached bodies apart."""
    if _is_named_tuple(cls):
        assert (cls.__eq__, cls.__hash__) == (tuple.__eq__, tuple.__hash__), cls.__name__
        return
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    assert params.eq and params.frozen, f"{cls.__name__} must be a frozen dataclass"
    left_out = [f.name for f in fields(cls) if not f.compare or f.hash is False]
    assert not left_out, f"{cls.__name__} fields outside the key: {left_out}"


def _changed(value: Any) -> Any:
    """A different value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + " (changed)"
    if isinstance(value, datetime | date):
        return value + timedelta(days=1)
    if isinstance(value, tuple):
        return value[:-1] if value else ("x",)
    raise AssertionError(f"no change known for {value!r}")


def _body_fields() -> list[tuple[str, str]]:
    return ([("body", name) for name in DigestBody._fields]
            + [("section", name) for name in SectionBody._fields])


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[DigestBody]:
    """The bodies the cache rendered (its misses), from an empty cache."""
    monkeypatch.setattr(bodies, "_cache", {})
    rendered: list[DigestBody] = []

    def counted(body: DigestBody, with_links: DigestLinks) -> tuple[str, str]:
        rendered.append(body)
        return render_body(body, with_links)

    monkeypatch.setattr(bodies, "render_body", counted)
    return rendered


@pytest.mark.parametrize(("level", "name"), _body_fields(), ids=lambda v: str(v))
def test_a_body_differing_in_any_one_field_is_rendered_anew(
    renders: list[DigestBody], level: str, name: str
) -> None:
    body = sample_body()
    if level == "body":
        other = body._replace(**{name: _changed(getattr(body, name))})
    else:
        section = body.sections[0]
        changed = section._replace(**{name: _changed(getattr(section, name))})
        other = body._replace(sections=(changed,))
    bodies.body_parts(body, links(len(body.sections)))
    bodies.body_parts(body, links(len(body.sections)))
    assert len(renders) == 1  # the same body again: from the cache
    bodies.body_parts(other, links(len(other.sections)))
    assert len(renders) == 2, f"a body with another {level}.{name} came from the cache"


# --- the cache gives what a fresh render gives ------------------------------------------


@pytest.mark.parametrize("reader", [0, 1])
def test_a_cached_body_is_the_fresh_render_with_the_readers_links(
    renders: list[DigestBody], reader: int
) -> None:
    body = sample_body()
    bodies.body_parts(body, links(1))  # fills the cache
    own = replace(links(1), manage=f"http://alerts.test/manage?token=reader{reader}&x=<1>")
    text, html = render_body(body, own)
    assert bodies.body_parts(body, own) == (Part.of(text), Part.of(html))
    assert len(renders) == 1
