"""A target's drug pipeline from its trials (pure functions, no database).

ClinicalTrials.gov writes phases as a list (`["PHASE1", "PHASE2"]` is a phase 1/2
trial; `EARLY_PHASE1` is phase 0/early phase 1; `NA` is a study without phases, such as
a device or observational study). A drug's highest phase is the furthest phase among
its trials that went ahead: a WITHDRAWN trial never enrolled anybody, so it counts for
nothing but is still listed in the drug's trial count as withdrawn.

Interventions are named as each sponsor wrote them ("Zongertinib", "BI 1810631",
"Drug: zongertinib (BI 1810631)"). Names are folded to one drug where the catalogue
knows a drug's generic, code and brand names; other names are folded by case and
spacing only. Placebo and similar non-drugs are left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Phase ranks, so "furthest" is a comparison. A combined phase ranks between its two.
_PHASE_RANK = {"EARLY_PHASE1": 1, "PHASE1": 2, "PHASE2": 4, "PHASE3": 6, "PHASE4": 8}
_RANK_LABEL = {
    0: "Not applicable", 1: "Early phase 1", 2: "Phase 1", 3: "Phase 1/2", 4: "Phase 2",
    5: "Phase 2/3", 6: "Phase 3", 7: "Phase 3/4", 8: "Phase 4",
}

RECRUITING = frozenset({"RECRUITING", "NOT_YET_RECRUITING", "ENROLLING_BY_INVITATION"})
ACTIVE = frozenset({"ACTIVE_NOT_RECRUITING"})
COMPLETED = frozenset({"COMPLETED"})
WITHDRAWN = "WITHDRAWN"

#: Interventions that are not drugs of anybody's pipeline.
_NOT_DRUGS = re.compile(
    r"^(placebos?|matching placebo|placebo comparator|saline|best supportive care|"
    r"standard of care|observation|no intervention|sham)\b", re.IGNORECASE,
)
#: "Drug: name", "Biological: name" prefixes as some records carry them.
_TYPE_PREFIX = re.compile(
    r"^(drug|biological|device|procedure|radiation|other|combination product|"
    r"genetic|dietary supplement|behavioral|diagnostic test)\s*:\s*", re.IGNORECASE,
)


def phase_rank(phases: Sequence[str] | None) -> int:
    """The rank of a trial's phase list: 0 for none or `NA`; a two-phase trial ranks
    between its phases (PHASE1 + PHASE2 is 3, "Phase 1/2")."""
    ranks = sorted(_PHASE_RANK[p] for p in phases or () if p in _PHASE_RANK)
    if not ranks:
        return 0
    if len(ranks) > 1 and ranks[-1] - ranks[0] == 2:
        return ranks[0] + 1
    return ranks[-1]


def phase_label(rank: int) -> str:
    return _RANK_LABEL[rank]


def _fold(name: str) -> str:
    return re.sub(r"[\s\-]+", "", name).casefold()


@dataclass(frozen=True)
class DrugNames:
    """How intervention names fold to one drug: every generic, code and brand name the
    catalogue knows maps to the drug's generic name."""

    canonical: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_definitions(cls, definitions: Iterable[Mapping[str, Any]]) -> DrugNames:
        canonical: dict[str, str] = {}
        for definition in definitions:
            for drug in definition.get("drugs", ()):
                if isinstance(drug, str):
                    canonical.setdefault(_fold(drug), drug)
                    continue
                name = str(drug.get("name", "")).strip()
                if not name:
                    continue
                for alias in [name, *drug.get("codes", ()), *drug.get("brands", ())]:
                    canonical.setdefault(_fold(str(alias)), name)
            for name in definition.get("related_drugs", ()):
                canonical.setdefault(_fold(str(name)), str(name))
        return cls(canonical)

    def drugs_in(self, intervention: str) -> list[str]:
        """The drug names one intervention stands for ([] for placebo and the like).
        "zongertinib (BI 1810631)" is one drug; "A + B" and "A and B" are two."""
        text = _TYPE_PREFIX.sub("", intervention.strip())
        if not text or _NOT_DRUGS.match(text):
            return []
        names: list[str] = []
        for part in re.split(r"\s*(?:\+|/| and | plus |,|;)\s*", text):
            part = part.strip()
            if not part or _NOT_DRUGS.match(part):
                continue
            outside, _, inside = part.partition("(")
            known = self._known(outside) or self._known(inside.rstrip(") "))
            name = known or outside.strip() or part
            if name not in names:
                names.append(name)
        return names

    def _known(self, name: str) -> str | None:
        name = name.strip()
        if not name:
            return None
        found = self.canonical.get(_fold(name))
        if found:
            return found
        # "Zongertinib tablets", "BI 1810631 60 mg": a known name followed by dosage words.
        words = name.split()
        for end in range(len(words) - 1, 0, -1):
            found = self.canonical.get(_fold(" ".join(words[:end])))
            if found:
                return found
        return None

    def display(self, name: str) -> str:
        """A name that is not in the catalogue, shown as the first sponsor wrote it."""
        return self.canonical.get(_fold(name), name)


@dataclass(frozen=True)
class Trial:
    """What the pipeline needs of one trial of the target."""

    nct_id: str
    title: str
    phases: Sequence[str]
    overall_status: str | None
    interventions: Sequence[str]
    #: The trial's newest event for the target: (when, "new" | "updated", changes).
    last_event_at: datetime | None = None
    last_change: str = ""


@dataclass
class Drug:
    name: str
    highest_phase: int = 0
    recruiting: int = 0
    active: int = 0
    completed: int = 0
    withdrawn: int = 0
    other: int = 0
    trials: list[str] = field(default_factory=list)
    newest_change: str = ""
    newest_change_at: datetime | None = None
    #: True when the drug is one of the target's own drugs in the catalogue.
    target_drug: bool = False

    @property
    def highest_phase_label(self) -> str:
        return phase_label(self.highest_phase)

    @property
    def trial_count(self) -> int:
        return len(self.trials)


SORTS = ("phase", "name", "recent")


def build_pipeline(
    trials: Iterable[Trial], names: DrugNames, *, target_drugs: Iterable[str] = (),
    sort: str = "phase",
) -> list[Drug]:
    """One row per drug named in the trials: highest phase (withdrawn trials excluded),
    trials by status, the newest change among its trials. Sorted by `sort`: "phase"
    (furthest first), "name", or "recent" (newest change first)."""
    own = {_fold(n) for n in target_drugs}
    drugs: dict[str, Drug] = {}
    for trial in trials:
        seen: set[str] = set()
        for intervention in trial.interventions:
            for name in names.drugs_in(intervention):
                key = _fold(name)
                if key in seen:
                    continue
                seen.add(key)
                drug = drugs.setdefault(key, Drug(name=name, target_drug=key in own))
                _add_trial(drug, trial)
    rows = list(drugs.values())
    if sort == "name":
        rows.sort(key=lambda d: d.name.casefold())
    elif sort == "recent":
        rows.sort(key=lambda d: (d.newest_change_at is None, _neg_time(d.newest_change_at),
                                 d.name.casefold()))
    else:
        rows.sort(key=lambda d: (not d.target_drug, -d.highest_phase, -d.trial_count,
                                 d.name.casefold()))
    return rows


def _neg_time(moment: datetime | None) -> float:
    return -moment.timestamp() if moment else 0.0


def _add_trial(drug: Drug, trial: Trial) -> None:
    drug.trials.append(trial.nct_id)
    status = (trial.overall_status or "").upper()
    if status == WITHDRAWN:
        drug.withdrawn += 1
    else:
        drug.highest_phase = max(drug.highest_phase, phase_rank(trial.phases))
        if status in RECRUITING:
            drug.recruiting += 1
        elif status in ACTIVE:
            drug.active += 1
        elif status in COMPLETED:
            drug.completed += 1
        else:
            drug.other += 1
    if trial.last_event_at and (
        drug.newest_change_at is None or trial.last_event_at > drug.newest_change_at
    ):
        drug.newest_change_at = trial.last_event_at
        drug.newest_change = f"{trial.nct_id}: {trial.last_change}" if trial.last_change \
            else trial.nct_id
