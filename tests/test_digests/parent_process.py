"""A parent for `test_workers.py` to kill: it starts digest render workers (or one bare
spawned child that only watches its parent), says so on stdout, then waits forever.

    python -m tests.test_digests.parent_process pool DATABASE_URL VAR_DIR
    python -m tests.test_digests.parent_process watch
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from alerts.digests.delivery.workers import Workers, watch_parent
from tests.conftest import make_settings


def sleep_watching_parent() -> None:
    """A spawned child with only the portable fallback (no PR_SET_PDEATHSIG)."""
    watch_parent()
    time.sleep(600)


def main(mode: str, *args: str) -> None:
    if mode == "pool":
        url, var_dir = args
        workers = Workers(make_settings(Path(var_dir), url), 2, None)  # type: ignore[arg-type]
        workers.start_pool()
        for _ in range(2):  # both workers up, initialised and answering
            workers.submit_render([], datetime.now(UTC)).result(timeout=60)
    else:
        child = multiprocessing.get_context("spawn").Process(target=sleep_watching_parent)
        child.start()
    print("ready", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main(*sys.argv[1:])
