"""`alerts match --target SLUG [FILE]`: one JSON line per item, the rule taken from the
catalogue file, else from the database for a target only it holds; a bad line is named
on standard error and the others still run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from alerts.cli import app
from alerts.targets.changes import add_target
from db.clock import utc_now
from db.session import make_engine, make_sessionmaker, transaction

Invoke = Callable[..., Result]
ITEMS = [
    {"id": "pm-1", "source": "pubmed", "title": "HER2 YVMA in NSCLC", "summary": ""},
    {"id": 2, "source": "rss", "title": "HER2-positive breast cancer", "summary": "T-DXd."},
    {"id": "ct-1", "source": "ctgov", "title": "A trial", "summary": "",
     "conditions": ["NSCLC"], "interventions": ["Drug: BI 1810631"],
     "eligibility": "Inclusion Criteria:\n- NSCLC\nExclusion Criteria:\n- HER2 ex20ins"},
]


def lines(items: list[object]) -> str:
    return "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in items)


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Invoke:
    """`alerts ...` in-process; the configured database does not exist (a fresh checkout)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALERTS_DATABASE_URL", f"sqlite:///{tmp_path / 'var' / 'none.db'}")
    monkeypatch.setenv("ALERTS_VAR_DIR", str(tmp_path / "var"))

    def run(*args: str, stdin: str = "") -> Result:
        return CliRunner().invoke(app, list(args), input=stdin)

    return run


def test_each_item_gets_one_line_with_terms_and_evidence(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text(lines(ITEMS))
    outcome = invoke("match", "--target", "her2-exon20", str(path))
    assert outcome.exit_code == 0, outcome.output
    assert [json.loads(line) for line in outcome.stdout.splitlines()] == [
        {"id": "pm-1", "matched": True, "terms": ["HER2", "YVMA"],
         "evidence": "HER2 YVMA in NSCLC"},
        {"id": 2, "matched": False, "terms": [], "evidence": ""},
        {"id": "ct-1", "matched": True, "terms": ["BI 1810631"],
         "evidence": "Drug: BI 1810631"},
    ]
    assert "rule: her2-exon20 from" in outcome.stderr
    assert "catalogue.toml" in outcome.stderr
    assert not (tmp_path / "var" / "none.db").exists()  # nothing created


def test_items_are_read_from_standard_input(invoke: Invoke) -> None:
    outcome = invoke("match", "--target", "her2-exon20", stdin=lines(ITEMS[:1]))
    assert outcome.exit_code == 0, outcome.output
    assert json.loads(outcome.stdout)["matched"] is True


def test_a_feed_entrys_content_is_read_with_its_summary(invoke: Invoke) -> None:
    entry = {"id": "f", "source": "rss", "title": "News", "summary": "Lung cancer.",
             "content": "Results in HER2 exon 20 insertion NSCLC."}
    outcome = invoke("match", "--target", "her2-exon20", stdin=lines([entry]))
    assert json.loads(outcome.stdout)["evidence"] == "Results in HER2 exon 20 insertion NSCLC."


def test_a_bad_line_is_named_and_the_rest_still_runs(invoke: Invoke) -> None:
    stdin = lines([ITEMS[0], "{not json", {"id": "x", "source": "web", "title": "t"},
                   {"id": "y", "source": "rss", "title": "t", "keywords": "a"}, "[1]",
                   {"id": "z", "source": "rss", "title": 5},
                   {"id": "w", "source": "rss", "title": "t", "content": ["x"]}, "", ITEMS[1]])
    outcome = invoke("match", "--target", "her2-exon20", stdin=stdin)
    assert outcome.exit_code == 0
    assert [json.loads(line)["id"] for line in outcome.stdout.splitlines()] == ["pm-1", "y", 2]
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("error")]
    assert errors == [
        "error: line 2: not a JSON object: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)",
        "error: line 3: source: expected one of pubmed, ctgov, rss, got 'web'",
        "error: line 5: expected a JSON object",
        "error: line 6: title: expected a string",
        "error: line 7: content: expected a string",
    ]


def test_an_unknown_target_fails_with_one_line(invoke: Invoke) -> None:
    outcome = invoke("match", "--target", "nope", stdin=lines(ITEMS))
    assert outcome.exit_code == 1
    assert outcome.stdout == ""
    assert outcome.stderr.startswith("error: unknown target 'nope': not in ")
    assert outcome.stderr.endswith("catalogue.toml nor in the database\n")


def test_an_edited_catalogue_file_can_be_tried(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "try.toml"
    # An entry as the catalogue writes it, with a rule option in its [targets.rule] table.
    path.write_text('[[targets]]\nslug = "her2-exon20"\nname = "HER2"\ndescription = "x"\n'
                    'genes = ["HER2"]\nvariant_terms = ["positive"]\nkind = "fusion"\n'
                    '[targets.rule]\nstatus_terms = ["positive"]\n')
    outcome = invoke("match", "--target", "her2-exon20", "--catalogue", str(path),
                     stdin=lines(ITEMS[1:2]))
    assert outcome.exit_code == 0, outcome.output
    assert json.loads(outcome.stdout)["terms"] == ["HER2-positive"]
    assert f"rule: her2-exon20 from {path}" in outcome.stderr
    missing = invoke("match", "--target", "her2-exon20", "--catalogue", str(tmp_path / "x"))
    assert (missing.exit_code, missing.stderr) == (
        1, f"error: no catalogue file {tmp_path / 'x'}\n")
    path.write_text('[[targets]]\nslug = "her2-exon20"\ngenes = "HER2"\n')
    broken = invoke("match", "--target", "her2-exon20", "--catalogue", str(path))
    assert broken.exit_code == 1
    # The file is read as `alerts targets sync` reads it: every problem, by entry and key.
    assert broken.stderr.startswith(f"error: {path}: ")
    assert "targets[0] (her2-exon20): genes:" in broken.stderr


def test_a_target_only_the_database_holds_comes_from_it(
    invoke: Invoke, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(db_url)
    with transaction(make_sessionmaker(engine)) as session:
        add_target(session, {"slug": "foo", "name": "Foo", "description": "", "kind": "variant",
                             "genes": ["FOO1"], "variant_terms": ["G12C"],
                             "drugs": [{"name": "footinib"}]}, by="test", now=utc_now())
    engine.dispose()
    monkeypatch.setenv("ALERTS_DATABASE_URL", db_url)
    stdin = lines([{"id": 1, "source": "rss", "title": "FOO1 G12C", "summary": ""}])
    outcome = invoke("match", "--target", "foo", stdin=stdin)
    assert outcome.exit_code == 0, outcome.output
    assert json.loads(outcome.stdout)["terms"] == ["FOO1", "G12C"]
    assert "rule: foo from the database" in outcome.stderr
    # The catalogue's entry wins over the database's copy, which holds the older terms
    # ("HER2 mutation" counted there).
    her2 = lines([{"id": 2, "source": "rss", "title": "HER2 mutation in NSCLC"}])
    outcome = invoke("match", "--target", "her2-exon20", stdin=her2)
    assert json.loads(outcome.stdout)["matched"] is False
    assert "catalogue.toml" in outcome.stderr
