"""The trial fields whose change is a trial update, and how a digest shows them.

Kept apart from the ClinicalTrials.gov adapter so the ingest and the digest renderer
(which runs in worker processes) can use them without importing the HTTP stack.
"""

from __future__ import annotations

from typing import Any

TRACKED_FIELD_LABELS: dict[str, str] = {
    "overall_status": "Overall status",
    "phases": "Phases",
    "has_results": "Results posted",
    "enrollment": "Enrollment",
    "primary_completion_date": "Primary completion date",
    "countries": "Countries",
}


def format_tracked_value(value: Any) -> str:
    """A tracked value as a digest line shows it: lists joined, booleans as yes/no."""
    if value is None or value == []:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(part) for part in value)
    return str(value)
