"""`alerts serve` and `alerts run` serve through `cli.http_server`: the configured uvicorn
server, with what start-up built frozen out of the garbage collector's scans."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from alerts.cli import http_server


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
def test_the_server_is_configured_and_start_up_objects_are_frozen() -> None:
    app = FastAPI()
    assert gc.get_freeze_count() == 0
    server = http_server(app, "127.0.0.1", 8765)
    assert gc.get_freeze_count() > 0
    assert (server.config.app, server.config.host, server.config.port) == (
        app, "127.0.0.1", 8765)
    assert server.config.log_config is None  # our one-line log format
