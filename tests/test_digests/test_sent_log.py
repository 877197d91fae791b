"""The recording thread gives up only after its patience: an unreachable database makes
`check` stop the sender at once, and `close` report what could not be recorded."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from alerts.digests.delivery.sent_log import RecordingFailed, SentLog


def test_an_unreachable_database_stops_the_sender_and_is_reported(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'alerts.db'}")
    sent_log = SentLog(sessionmaker(bind=engine), "test", patience=1.0)
    sent_log.check()  # nothing failed yet: sending may go on
    sent_log.add(1, "HER2 exon 20: 1 publication")
    deadline = time.monotonic() + 10
    while sent_log.failing is None and time.monotonic() < deadline:
        time.sleep(0.01)
    # Still trying, and meanwhile nothing more is to be sent.
    assert sent_log.error is None
    with pytest.raises(RecordingFailed, match="could not record"):
        sent_log.check()
    with pytest.raises(RecordingFailed):
        sent_log.close()  # tried for a second, then given up
    assert sent_log.error is not None
    with pytest.raises(RecordingFailed, match="could not record"):
        sent_log.check()
    engine.dispose()
