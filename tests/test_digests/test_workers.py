"""Render workers end with their parent: a scheduler killed with SIGKILL mid-run leaves
no worker process behind, whether the kernel tells them (Linux) or they notice the
pipe to their parent closing (everywhere)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)"),
]

ROOT = Path(__file__).resolve().parents[2]


def _state(pid: int) -> str | None:
    """The process's state letter, None when it is gone (a zombie is gone too: it
    runs nothing and holds nothing, it only waits for its new parent to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state = stat.rsplit(")", 1)[1].split()[0]
    return None if state in ("Z", "X") else state


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _wait_until(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("mode", ["pool", "watch"],
                         ids=["render workers", "parent watch alone"])
def test_workers_exit_when_their_parent_is_killed(
    mode: str, db_url: str, tmp_path: Path
) -> None:
    args = [db_url, str(tmp_path / "var")] if mode == "pool" else []
    parent = subprocess.Popen(
        [sys.executable, "-m", "tests.test_digests.parent_process", mode, *args],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    children: list[int] = []
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "ready"
        children = _children(parent.pid)
        assert len(children) >= (2 if mode == "pool" else 1), children
        assert all(_state(child) for child in children)

        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)

        assert _wait_until(lambda: not any(_state(child) for child in children), 15), [
            (child, _state(child)) for child in children if _state(child)
        ]
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for child in children:  # a failed run leaves nothing behind either
            if _state(child):
                os.kill(child, signal.SIGKILL)
