"""Log lines: one event name, then `key=value` fields that always split cleanly."""

from __future__ import annotations

import io
import logging
import shlex

import pytest

from alerts.ops.logging import configure_logging, format_event, log_event


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        ({"name": "poll", "polled": 3, "failed": 0}, "scheduler.job name=poll polled=3 failed=0"),
        ({"key": "daily:7:2026-03-29T06:00Z"}, "scheduler.job key=daily:7:2026-03-29T06:00Z"),
        ({"error": "HTTP 503 from upstream"}, 'scheduler.job error="HTTP 503 from upstream"'),
        ({"error": 'said "no"'}, 'scheduler.job error="said \\"no\\""'),
        ({"error": "two\nlines"}, 'scheduler.job error="two\\nlines"'),
        ({"owner": None, "note": ""}, 'scheduler.job owner=- note=""'),
    ],
)
def test_an_event_is_one_line_of_key_value_fields(fields: dict[str, object], line: str) -> None:
    formatted = format_event("scheduler.job", **fields)
    assert formatted == line
    assert "\n" not in formatted
    event, *pairs = shlex.split(formatted)
    assert event == "scheduler.job"
    assert [pair.split("=", 1)[0] for pair in pairs] == list(fields)


def test_configure_logging_twice_keeps_one_handler_and_quiets_chatty_libraries() -> None:
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    try:
        configure_logging(stream=io.StringIO())
        configure_logging(stream=stream)
        ours = [h for h in root.handlers if getattr(h, "_alerts_handler", False)]
        assert len(ours) == 1
        assert logging.getLogger("apscheduler").getEffectiveLevel() == logging.WARNING

        log_event(logging.getLogger("alerts.test"), "digest.sent", key="k1", to="a@example.org")
        line = stream.getvalue().strip()
        assert line.endswith("INFO alerts.test digest.sent key=k1 to=a@example.org")
    finally:
        for handler in [h for h in root.handlers if getattr(h, "_alerts_handler", False)]:
            root.removeHandler(handler)
        root.setLevel(level)
