"""`GET /api/v1/targets?q=`: finding a target by name, slug, gene, variant or drug (generic,
code, brand), whatever the case, spacing and hyphens; every word must match; exact
identity first, then drugs, then prefixes; the catalogue without `q`, paged; bad input
is a 422."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from db.models import Target
from tests.test_targets.search_data import add_targets, synthetic_targets


@pytest.fixture
def catalogue(session: Session) -> dict[str, Target]:
    return add_targets(session)


def search(client: TestClient, q: str, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/targets", params={"q": q, **params})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def slugs(client: TestClient, q: str) -> list[str]:
    return [t["slug"] for t in search(client, q)["data"]]


@pytest.mark.usefixtures("catalogue")
@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("zongertinib", ["her2", "her2-exon20"]),
        ("Zongertinib", ["her2", "her2-exon20"]),
        ("ERBB2", ["her2", "her2-exon20"]),
        ("HER2 ex20", ["her2-exon20"]),
        ("BI1810631", ["her2", "her2-exon20"]),
        ("bi-1810631", ["her2", "her2-exon20"]),
        ("Hernexeos", ["her2", "her2-exon20"]),
        ("kras g12c", ["kras-g12c"]),
        ("KRAS-G12C", ["kras-g12c"]),
        ("sevabert", ["her2-exon20"]),
        ("TAK788", ["egfr-exon20"]),
        ("k ras g12d", ["kras-g12d"]),
        ("c-erbB-2", ["her2"]),
        ("erbb2 herceptin", ["her2"]),
        ("her2-exon20", ["her2-exon20"]),
        ("nothing like it", []),
    ],
)
def test_a_query_finds_the_targets_of_every_word(client: TestClient, q: str,
                                                 expected: list[str]) -> None:
    assert sorted(slugs(client, q)) == expected


@pytest.mark.usefixtures("catalogue")
@pytest.mark.parametrize(
    ("q", "first"),
    [
        ("kras", ["kras-g12c", "kras-g12d", "kras-pan"]),  # the gene of all three
        ("KRAS G12C", ["kras-g12c"]),  # the name, before anything else
        ("g12", ["kras-g12c", "kras-g12d"]),  # prefixes only; G12V of kras-pan too
        ("exon 20", ["her2-exon20", "egfr-exon20"]),
        ("erbb2 trastuzumab", ["her2", "her2-exon20"]),  # its drug before a related one
    ],
)
def test_results_come_best_first(client: TestClient, q: str, first: list[str]) -> None:
    assert slugs(client, q)[: len(first)] == first


@pytest.mark.usefixtures("catalogue")
def test_exact_identity_comes_before_drug_and_prefix_matches(client: TestClient) -> None:
    # "her2" is a gene of both HER2 targets; the prefix "her" also reaches HER1 (EGFR)
    assert slugs(client, "her2")[:2] == ["her2", "her2-exon20"]
    assert slugs(client, "her") == ["egfr-exon20", "her2", "her2-exon20"]
    # the same order on every call (ties by name, then slug)
    assert all(slugs(client, "her") == ["egfr-exon20", "her2", "her2-exon20"]
               for _ in range(3))


def test_a_gene_symbol_ranks_before_a_drug_name(session: Session, client: TestClient) -> None:
    add_targets(session, ["egfr-exon20", "kras-g12c"])
    # one target names the gene "MOBO", the other a drug "mobocertinib": the gene first
    session.execute(update(Target).where(Target.slug == "kras-g12c").values(
        match_terms={"genes": ["MOBO"], "mutations": [], "drugs": []}))
    session.flush()
    assert slugs(client, "mobo") == ["kras-g12c", "egfr-exon20"]


@pytest.mark.usefixtures("catalogue")
@pytest.mark.parametrize(
    ("q", "slug", "matched_on"),
    [
        ("zongertinib", "her2-exon20", ["drug: zongertinib"]),
        ("BI 1810631", "her2-exon20", ["drug: zongertinib (BI 1810631)"]),
        ("hernexeos", "her2", ["drug: zongertinib (Hernexeos)"]),
        ("HER2 ex20", "her2-exon20", ["gene: HER2", "variant: ex20ins"]),
        ("kras g12c", "kras-g12c", ["name: KRAS G12C"]),
        ("poziotinib", "egfr-exon20", ["related drug: poziotinib"]),
    ],
)
def test_each_result_says_what_it_matched_on(client: TestClient, q: str, slug: str,
                                             matched_on: list[str]) -> None:
    [hit] = [t for t in search(client, q)["data"] if t["slug"] == slug]
    assert hit["matched_on"] == matched_on


def test_the_first_shape_of_match_terms_is_searched_too(client: TestClient) -> None:
    # the migration's her2-exon20: {"genes", "mutations", "drugs": [str]}
    assert slugs(client, "zongertinib") == ["her2-exon20"]
    assert slugs(client, "BI1810631") == ["her2-exon20"]
    assert slugs(client, "HER2 ex20") == ["her2-exon20"]
    assert search(client, "yvma")["data"][0]["matched_on"] == ["variant: YVMA"]


def test_match_terms_of_an_unexpected_shape_are_skipped(session: Session,
                                                        client: TestClient) -> None:
    session.add_all([
        Target(slug="odd-1", name="Odd one", description="", match_terms=["not", "a", "map"]),
        Target(slug="odd-2", name="Odd two", description="", match_terms={
            "genes": "ODD2", "drugs": [7, None, {"codes": ["X-1"]}, {"name": "oddinib",
                                                                    "codes": "OD-2"}],
            "variant_terms": [{"x": 1}], "related_drugs": None}),
    ])
    session.flush()
    assert slugs(client, "odd") == ["odd-1", "odd-2"]
    assert slugs(client, "odd2") == ["odd-2"]
    assert slugs(client, "OD 2") == ["odd-2"]
    assert slugs(client, "oddinib") == ["odd-2"]


def test_without_q_the_whole_catalogue_comes_by_slug(catalogue: dict[str, Target],
                                                     client: TestClient) -> None:
    for params in ({}, {"q": ""}, {"q": "   "}, {"q": "--"}):
        body = client.get("/api/v1/targets", params=params).json()
        assert [t["slug"] for t in body["data"]] == sorted(catalogue)
        assert body["next_cursor"] is None
        assert all(t["matched_on"] == [] for t in body["data"])


def test_a_large_catalogue_comes_in_pages(session: Session, client: TestClient) -> None:
    synthetic_targets(session, 250)
    seen: list[str] = []
    body = client.get("/api/v1/targets").json()
    pages = 1
    while body["next_cursor"]:
        assert len(body["data"]) == 100
        seen += [t["slug"] for t in body["data"]]
        body = client.get("/api/v1/targets", params={"cursor": body["next_cursor"]}).json()
        pages += 1
    seen += [t["slug"] for t in body["data"]]
    assert pages == 3
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 251


def test_search_results_come_in_pages_too(session: Session, client: TestClient) -> None:
    synthetic_targets(session, 30)
    first = search(client, "synthetic", limit=20)
    second = search(client, "synthetic", limit=20, cursor=first["next_cursor"])
    found = [t["slug"] for t in first["data"] + second["data"]]
    assert len(found) == len(set(found)) == 30 and second["next_cursor"] is None


def test_a_changed_catalogue_is_searched_as_it_is_now(session: Session,
                                                      client: TestClient) -> None:
    add_targets(session, ["kras-g12c"])
    assert slugs(client, "sotorasib") == ["kras-g12c"]
    # the same lengths, other letters: the index must still notice
    session.execute(update(Target).values(match_terms={
        "genes": ["KRAS"], "variant_terms": ["G12C"], "drugs": ["sotorasix"]}))
    session.flush()
    assert slugs(client, "sotorasib") == []
    assert slugs(client, "sotorasix") == ["kras-g12c"]
    session.execute(update(Target).values(name="KRAS G12Q"))
    session.flush()
    assert search(client, "G12Q")["data"][0]["matched_on"] == ["name: KRAS G12Q"]
    add_targets(session, ["kras-g12d"])
    assert slugs(client, "kras") == ["kras-g12d"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": "x" * 101}, "q"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
def test_bad_input_is_a_422_naming_the_parameter(client: TestClient, params: dict[str, str],
                                                 field: str) -> None:
    response = client.get("/api/v1/targets", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", field]


@pytest.mark.usefixtures("catalogue")
@pytest.mark.parametrize(
    "q", ["x" * 100, "a " * 50, "\x00", "%", "_", "\\", "'; drop table targets; --",
          "\U0010ffff", "ﬁ", "e\u0301", "*", "[", "(", "Δex14"],
)
def test_odd_queries_answer_200(client: TestClient, q: str) -> None:
    assert client.get("/api/v1/targets", params={"q": q}).status_code == 200


def test_the_search_is_documented(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/api/v1/targets"]["get"]
    [q] = [p for p in operation["parameters"] if p["name"] == "q"]
    assert "zongertinib" in q["description"] and q["schema"]["anyOf"][0]["maxLength"] == 100
    target = schema["components"]["schemas"]["TargetOut"]["properties"]
    assert "drug: zongertinib" in target["matched_on"]["description"]
    assert "422" in operation["responses"]


def test_the_index_is_built_once_per_catalogue_version(session: Session,
                                                       client: TestClient) -> None:
    cache = client.app.state.target_index  # type: ignore[attr-defined]
    for q in ("zongertinib", "erbb2", "", "kras"):
        client.get("/api/v1/targets", params={"q": q})
    assert cache.builds == 1
    add_targets(session, ["kras-g12c"])
    assert slugs(client, "kras") == ["kras-g12c"]
    assert slugs(client, "sotorasib") == ["kras-g12c"]
    assert cache.builds == 2
