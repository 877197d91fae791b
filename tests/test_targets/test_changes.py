"""Targets changed by hand: the admin API and `alerts targets add/edit/remove/history`
check a target as the catalogue file's entries are checked, record who changed what in
the change's own transaction, rematch a changed rule, and meet `alerts targets sync` by
one rule: the file's changes are applied, changes made by hand are kept (with a warning
when both changed) until `--reset`."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.errors import Conflict, InvalidFields
from alerts.items.service import ingest
from alerts.targets.catalogue import parse_catalogue
from alerts.targets.changes import add_target, edit_target, remove_target, target_history
from alerts.targets.sync import sync_catalogue
from db.models import Alert, ItemTarget, Target, TargetChange
from tests.fakes.adapters import article
from tests.test_digests.factories import Factory
from tests.test_subscriptions.harness import ADMIN_TOKEN, Harness, text_of
from tests.test_targets.conftest import Invoke

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ADMIN_NAME = f"admin token {hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()[:12]}"


def kras(**keys: Any) -> dict[str, Any]:
    """A good entry, with `keys` replaced."""
    return {"slug": "kras-g12c", "name": "KRAS G12C", "description": "KRAS p.G12C",
            "kind": "variant", "genes": ["KRAS"], "variant_terms": ["G12C"],
            "drugs": [{"name": "sotorasib", "codes": ["AMG 510"]}], **keys}


def target(session: Session, slug: str) -> Target | None:
    session.expire_all()
    return session.scalars(select(Target).where(Target.slug == slug)).one_or_none()


# -- the admin API ---------------------------------------------------------------------


def test_only_the_admin_token_changes_targets(client: TestClient, harness: Harness) -> None:
    assert client.post("/api/v1/targets", json=kras()).status_code == 401
    harness.verified_subscriber("ann@example.org")
    personal = {"Authorization": f"Bearer {harness.personal_token('ann@example.org')}"}
    for call in (client.post("/api/v1/targets", json=kras(), headers=personal),
                 client.patch("/api/v1/targets/her2-exon20", json={"name": "x"},
                              headers=personal),
                 client.delete("/api/v1/targets/her2-exon20", headers=personal),
                 client.get("/api/v1/targets/her2-exon20/changes", headers=personal)):
        assert call.status_code == 403, call.text


def test_an_added_target_is_recorded_and_found_by_search(
    client: TestClient, session: Session
) -> None:
    assert client.get("/api/v1/targets", params={"q": "sotorasib"}).json()["data"] == []
    added = client.post("/api/v1/targets", json=kras(), headers=ADMIN)
    assert added.status_code == 201, added.text
    body = added.json()
    assert (body["origin"], body["entry"]["slug"], body["entry"]["drugs"][0]["codes"]) == (
        "local", "kras-g12c", ["AMG 510"])
    assert body["rematched"] == {"kept": 0, "newly_matched": 0, "newly_rejected": 0}
    # The search index follows the catalogue's version: the new target is found at once.
    found = client.get("/api/v1/targets", params={"q": "AMG 510"}).json()["data"]
    assert [t["slug"] for t in found] == ["kras-g12c"]

    [change] = client.get("/api/v1/targets/kras-g12c/changes", headers=ADMIN).json()["data"]
    assert (change["action"], change["changed_by"], change["before"]) == (
        "add", ADMIN_NAME, None)
    assert change["after"] == body["entry"]


@pytest.mark.parametrize(
    ("entry", "errors"),
    [
        (kras(kind="gene", genes=[]), {("body", "kind"), ("body", "genes")}),
        (kras(varaint_terms=["G12C"]), {("body", "varaint_terms")}),
        (kras(description="two\nlines", variant_patterns=["G12(C"]),
         {("body", "description"), ("body", "variant_patterns")}),
        (kras(drugs=[{"codes": ["AMG 510"]}]), {("body", "drugs", 0, "name")}),
        # A drug another target lists needs marking as shared, as in the file.
        (kras(drugs=[{"name": "zongertinib"}]), {("body", "drugs", 0)}),
        (kras(drugs=[{"name": "x", "shared_with": ["nope"]}]),
         {("body", "drugs", 0, "shared_with")}),
    ],
)
def test_each_bad_field_is_named_and_nothing_is_added(
    client: TestClient, session: Session, entry: dict[str, Any], errors: set[tuple[Any, ...]]
) -> None:
    answer = client.post("/api/v1/targets", json=entry, headers=ADMIN)
    assert answer.status_code == 422, answer.text
    assert {tuple(e["loc"]) for e in answer.json()["detail"]} == errors
    assert target(session, "kras-g12c") is None
    assert session.scalars(select(TargetChange).where(
        TargetChange.target_slug == "kras-g12c")).all() == []


def test_a_drug_marked_shared_and_a_taken_slug(client: TestClient) -> None:
    shared = kras(drugs=[{"name": "zongertinib", "shared_with": ["her2-exon20"]}])
    assert client.post("/api/v1/targets", json=shared, headers=ADMIN).status_code == 201
    again = client.post("/api/v1/targets", json=kras(slug="her2-exon20"), headers=ADMIN)
    assert again.status_code == 409
    assert again.json() == {"detail": "target 'her2-exon20' already exists"}


def test_an_edit_replaces_the_keys_it_names_and_is_recorded(
    client: TestClient, session: Session
) -> None:
    edited = client.patch("/api/v1/targets/her2-exon20",
                          json={"name": "HER2 exon 20 insertions", "pubmed_query": None},
                          headers=ADMIN)
    assert edited.status_code == 200, edited.text
    entry = edited.json()["entry"]
    assert (entry["name"], entry["pubmed_query"], edited.json()["rematched"]) == (
        "HER2 exon 20 insertions", None, None)  # the rule did not change
    assert "zongertinib" in [d["name"] for d in entry["drugs"]]  # untouched keys stay
    found = client.get("/api/v1/targets", params={"q": "insertions"}).json()["data"]
    assert "her2-exon20" in [t["slug"] for t in found]
    changes = client.get("/api/v1/targets/her2-exon20/changes", headers=ADMIN).json()["data"]
    assert [c["action"] for c in changes][-1] == "edit"
    assert changes[-1]["before"]["name"] == "HER2 (ERBB2) exon 20"
    assert changes[-1]["after"]["name"] == "HER2 exon 20 insertions"


@pytest.mark.parametrize(
    ("slug", "body", "status"),
    [
        ("nope", {"name": "x"}, 404),
        ("her2-exon20", {"genes": []}, 422),
        ("her2-exon20", {"name": None}, 422),
        ("her2-exon20", {"slug": "her2-ex20"}, 422),
        ("her2-exon20", {"colour": "red"}, 422),
    ],
)
def test_a_bad_edit_changes_nothing(
    client: TestClient, session: Session, slug: str, body: dict[str, Any], status: int
) -> None:
    before = client.get("/api/v1/targets/her2-exon20/changes", headers=ADMIN).json()["data"]
    answer = client.patch(f"/api/v1/targets/{slug}", json=body, headers=ADMIN)
    assert answer.status_code == status, answer.text
    found = target(session, "her2-exon20")
    assert found is not None and found.name == "HER2 (ERBB2) exon 20"
    assert client.get("/api/v1/targets/her2-exon20/changes",
                      headers=ADMIN).json()["data"] == before


def test_removing_a_followed_target_needs_force(
    client: TestClient, session: Session, harness: Harness
) -> None:
    harness.verified_subscriber("ann@example.org")
    refused = client.delete("/api/v1/targets/her2-exon20", headers=ADMIN)
    assert refused.status_code == 409
    assert "1 alert" in refused.json()["detail"]
    assert target(session, "her2-exon20") is not None

    harness.api_subscribe("bob@example.org")  # never confirmed: told nothing
    assert client.delete("/api/v1/targets/her2-exon20", params={"force": "true"},
                         headers=ADMIN).status_code == 204
    assert target(session, "her2-exon20") is None
    *_confirmation, notice = harness.mails("ann@example.org")
    assert notice["Subject"] == "Your alert ended: HER2 (ERBB2) exon 20"
    assert "/manage?token=" in text_of(notice)
    assert [str(m["Subject"]) for m in harness.mails("bob@example.org")] == [
        "Confirm your alert: HER2 (ERBB2) exon 20"]
    assert session.scalars(select(Alert)).all() == []
    assert client.get("/api/v1/targets/her2-exon20/items").status_code == 404
    history = client.get("/api/v1/targets/her2-exon20/changes", headers=ADMIN).json()["data"]
    assert (history[-1]["action"], history[-1]["after"]) == ("remove", None)
    assert history[-1]["before"]["slug"] == "her2-exon20"
    assert client.delete("/api/v1/targets/her2-exon20", headers=ADMIN).status_code == 404
    assert client.get("/api/v1/targets/nope/changes", headers=ADMIN).status_code == 404


# -- the service: rematching --------------------------------------------------------------


def test_an_edit_of_the_rule_rematches_the_stored_items(session: Session) -> None:
    added = add_target(session, kras(), by="test", now=NOW).target
    ingest(session, source=article("1", "x").source, target_id=added.id,
           match_terms=added.match_terms, now=NOW,
           fetched=[article("1", "Sotorasib in NSCLC"), article("2", "Adagrasib in NSCLC")])
    linked = select(ItemTarget.item_id).where(ItemTarget.target_id == added.id)
    assert len(session.scalars(linked).all()) == 1

    done = edit_target(session, "kras-g12c", {"drugs": [{"name": "adagrasib"}]},
                       by="test", now=NOW)
    assert done.rematched is not None
    assert (done.rematched.newly_matched, done.rematched.newly_rejected) == (1, 1)
    same = edit_target(session, "kras-g12c", {"drugs": [{"name": "adagrasib"}]},
                       by="test", now=NOW)
    assert not same.changed  # nothing recorded for an edit that changes nothing
    assert [c.action for c in target_history(session, "kras-g12c")] == ["add", "edit"]


def test_errors_of_the_service(session: Session, harness: Harness) -> None:
    settings = harness.settings
    with pytest.raises(Conflict):
        add_target(session, kras(slug="her2-exon20"), by="test", now=NOW)
    with pytest.raises(InvalidFields) as raised:
        add_target(session, kras(genes=[], kind="gene"), by="test", now=NOW)
    assert len(raised.value.detail) == 2
    make = Factory(session)
    make.alert(make.subscriber(), target(session, "her2-exon20"))
    with pytest.raises(Conflict):
        remove_target(session, "her2-exon20", by="test", now=NOW, settings=settings)
    assert remove_target(session, "her2-exon20", by="test", now=NOW, settings=settings,
                         force=True) == 1


# -- the file and the changes made by hand ------------------------------------------------


def catalogue(**keys: Any) -> Any:
    """A catalogue file of one entry (kras-g12c), with `keys` replaced."""
    entry = kras(**keys)
    lines = [f"{key} = {_toml(value)}" for key, value in entry.items() if key != "drugs"]
    drugs = "".join(f'[[targets.drugs]]\nname = "{d["name"]}"\n'
                    f'codes = {_toml(d.get("codes", []))}\n' for d in entry["drugs"])
    return parse_catalogue("[[targets]]\n" + "\n".join(lines) + "\n" + drugs)


def _toml(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    return f'"{value}"'


def test_sync_applies_the_files_changes_to_a_target_nobody_edited(session: Session) -> None:
    assert sync_catalogue(session, catalogue(), now=NOW).added == ["kras-g12c"]
    report = sync_catalogue(session, catalogue(name="KRAS p.G12C"), now=NOW)
    assert report.updated == {"kras-g12c": ["name"]} and report.kept == {}
    [add, edit] = target_history(session, "kras-g12c")
    assert (add.changed_by, edit.changed_by, edit.after["name"]) == (
        "catalogue sync", "catalogue sync", "KRAS p.G12C")


def test_sync_keeps_an_edit_made_by_hand_and_warns_when_the_file_changes_too(
    session: Session
) -> None:
    sync_catalogue(session, catalogue(), now=NOW)
    edit_target(session, "kras-g12c", {"name": "Edited by hand"}, by="ann", now=NOW)

    # The file did not change: nothing to apply, nothing to warn about.
    quiet = sync_catalogue(session, catalogue(), now=NOW)
    assert quiet.kept == {} and "kras-g12c" in quiet.unchanged
    assert target(session, "kras-g12c").name == "Edited by hand"  # type: ignore[union-attr]

    # The file changed too: the edit is kept, and every sync says so until resolved.
    for _ in range(2):
        both = sync_catalogue(session, catalogue(description="From the file"), now=NOW)
        assert list(both.kept) == ["kras-g12c"]
        assert ("warning: kept kras-g12c as it is: edited by hand, and the file's entry "
                "changed too; `alerts targets sync --reset kras-g12c` takes the file's "
                "entry") in both.lines()
    kept = target(session, "kras-g12c")
    assert kept is not None and (kept.name, kept.description) == ("Edited by hand", "KRAS p.G12C")

    reset = sync_catalogue(session, catalogue(description="From the file"), now=NOW,
                           reset=["kras-g12c"])
    assert reset.updated == {"kras-g12c": ["name", "description"]}
    taken = target(session, "kras-g12c")
    assert taken is not None and (taken.name, taken.description) == ("KRAS G12C", "From the file")
    # From now on the file owns it again.
    later = sync_catalogue(session, catalogue(description="Later"), now=NOW)
    assert later.updated == {"kras-g12c": ["description"]}


def test_an_edit_that_makes_the_target_what_the_file_says_ends_the_warning(
    session: Session
) -> None:
    sync_catalogue(session, catalogue(), now=NOW)
    edit_target(session, "kras-g12c", {"name": "Same as the file will say"}, by="ann", now=NOW)
    report = sync_catalogue(session, catalogue(name="Same as the file will say"), now=NOW)
    assert report.kept == {} and report.updated == {}
    assert sync_catalogue(session, catalogue(name="Next"), now=NOW).updated == {
        "kras-g12c": ["name"]}


def test_sync_leaves_targets_added_or_removed_by_hand_alone_until_reset(
    session: Session, harness: Harness
) -> None:
    add_target(session, kras(name="Added by hand"), by="ann", now=NOW)
    local = sync_catalogue(session, catalogue(), now=NOW)
    assert local.kept == {"kras-g12c": "added by hand, the file lists it differently"}
    assert target(session, "kras-g12c").name == "Added by hand"  # type: ignore[union-attr]

    remove_target(session, "her2-exon20", by="ann", now=NOW, settings=harness.settings)
    shipped_her2 = sync_catalogue(session, _her2_file(), now=NOW)
    assert shipped_her2.kept == {"her2-exon20": "removed by hand, still in the file"}
    assert target(session, "her2-exon20") is None

    back = sync_catalogue(session, _her2_file(), now=NOW, reset=["her2-exon20"])
    assert back.added == ["her2-exon20"]
    handed = sync_catalogue(session, catalogue(), now=NOW, reset=["kras-g12c"])
    assert handed.updated == {"kras-g12c": ["name"]}
    assert target(session, "kras-g12c").origin == "file"  # type: ignore[union-attr]


def _her2_file() -> Any:
    from alerts.targets.catalogue import Catalogue, load_catalogue

    shipped = load_catalogue()
    return Catalogue(shipped.source, (shipped.by_slug()["her2-exon20"],))


# -- the command line ----------------------------------------------------------------------



def test_the_commands_add_edit_remove_and_show_the_history(
    invoke: Invoke, tmp_path: Path
) -> None:
    entry = tmp_path / "kras.toml"
    entry.write_text('[[targets]]\nslug = "kras-g12c"\nname = "KRAS G12C"\n'
                     'description = "KRAS p.G12C"\nkind = "variant"\ngenes = ["KRAS"]\n'
                     'variant_terms = ["G12C"]\n[[targets.drugs]]\nname = "sotorasib"\n')
    added = invoke("targets", "add", "--file", str(entry), "--by", "ann")
    assert added.exit_code == 0, added.output
    assert added.stdout.startswith("added target kras-g12c; rematched: 0 kept")

    edited = invoke("targets", "edit", "kras-g12c", "--name", "KRAS p.G12C",
                    "--drug", "adagrasib", "--pubmed-query", "KRAS G12C[tiab]", "--by", "bob")
    assert edited.exit_code == 0, edited.output
    assert edited.stdout.startswith("edited kras-g12c; rematched:")
    assert invoke("targets", "edit", "kras-g12c", "--name", "KRAS p.G12C").stdout == (
        "kras-g12c: already so, nothing changed\n")

    removed = invoke("targets", "remove", "kras-g12c")
    assert (removed.exit_code, removed.stdout) == (0, "removed kras-g12c\n")

    history = invoke("targets", "history", "kras-g12c").stdout.splitlines()
    assert [line.split("  ", 1)[1] for line in history[:2]] == [
        "add  by ann", "edit  by bob: drugs, name, pubmed_query"]
    assert history[2].split("  ", 1)[1].startswith("remove  by ")
    assert history[2].endswith("(command line)")


def test_a_bad_target_gets_one_error_line_per_field_and_nothing_is_written(
    invoke: Invoke
) -> None:
    outcome = invoke("targets", "add", "kras-g12c", "--name", "KRAS", "--kind", "gene",
                     "--variant-pattern", "G12(C")
    assert outcome.exit_code == 1
    lines = outcome.stderr.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == [
        "description", "kind", "genes", "variant_patterns"]
    assert invoke("targets", "history", "kras-g12c").stderr == (
        "error: unknown target 'kras-g12c'\n")
    bad_edit = invoke("targets", "edit", "her2-exon20", "--gene")
    assert bad_edit.exit_code == 2  # an option without its value: the usage error
    assert invoke("targets", "edit", "her2-exon20").stderr.startswith(
        "error: nothing to change")
