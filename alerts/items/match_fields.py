"""What the match rule reads of an item, the same whether it was just fetched or stored.

Ingest decides on a `FetchedItem`; `alerts targets rematch` decides again on the stored
`Item` row. Both carry the same `source`, `title`, `summary` and `data` (the adapters
put every field the rule reads into `data`, and ingest stores `data` as it is), so one
function builds the rule's `MatchInput` from either, and a rematch reads an item exactly
as the ingest that stored it did.

Per source (keys of `data` written by the adapters):
- PubMed: title, abstract (`summary`), author `keywords`, MeSH headings (`mesh`) and
  substances (`substances`), the last two both in `MatchInput.mesh`.
- ClinicalTrials.gov: brief title, `official_title`, brief summary, `conditions`,
  `keywords`, interventions (`interventions` names and `intervention_other_names`) and the
  whole `eligibility` text (the rule reads its inclusion part).
- Feeds: title, and the entry's content (`summary`) with its `teaser` (the entry's own
  summary when it differs from the content).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from alerts.matching import MatchInput


class Readable(Protocol):
    """A fetched or stored item: `FetchedItem` and `db.models.Item` both are."""

    @property
    def source(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def summary(self) -> str | None: ...
    @property
    def data(self) -> Mapping[str, Any]: ...


def match_input(item: Readable) -> MatchInput:
    """The fields of `item` the match rule reads (see the module docstring)."""
    data = item.data if isinstance(item.data, Mapping) else {}
    source = str(item.source)
    summary = item.summary or ""
    if source == "pubmed":
        return MatchInput(
            source=source,
            title=item.title,
            summary=summary,
            keywords=_texts(data.get("keywords")),
            mesh=_texts(data.get("mesh")) + _texts(data.get("substances")),
        )
    if source == "ctgov":
        return MatchInput(
            source=source,
            title=item.title,
            summary=summary,
            official_title=_text(data.get("official_title")),
            keywords=_texts(data.get("keywords")),
            conditions=_texts(data.get("conditions")),
            interventions=tuple(dict.fromkeys(
                _texts(data.get("interventions")) + _texts(data.get("intervention_other_names"))
            )),
            eligibility=_text(data.get("eligibility")),
        )
    teaser = _text(data.get("teaser"))
    return MatchInput(
        source=source,
        title=item.title,
        summary=f"{summary}\n\n{teaser}" if teaser and summary else teaser or summary,
    )


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(text for part in value if (text := _text(part)))
