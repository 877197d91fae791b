"""poll(transport=...) reaches the upstreams through the given transport, for every
source, and leaves it open for its owner."""

from __future__ import annotations

import json

import httpx
import pytest

from alerts.sources.base import SourceName
from tests.test_polling.conftest import SLUG, Run, report_for


@pytest.fixture
def no_real_adapters() -> None:
    """Overrides the package's scripted fakes: the real adapters are under test here."""


class RecordingTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.paths: list[str] = []
        self.closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if request.url.path.endswith("/esearch.fcgi"):
            body = {"esearchresult": {"count": "0", "retmax": "0", "idlist": []}}
        elif request.url.path.endswith("/version"):
            body = {"apiVersion": "2.0.5", "dataTimestamp": "2026-06-01T09:00:00"}
        else:
            body = {"studies": []}
        return httpx.Response(200, content=json.dumps(body).encode(),
                              headers={"Content-Type": "application/json"})

    async def aclose(self) -> None:
        self.closed = True


def test_every_source_uses_the_given_transport_and_leaves_it_open(run: Run) -> None:
    transport = RecordingTransport()
    reports = run(transport=transport)
    for source in (SourceName.pubmed, SourceName.ctgov):
        report = report_for(reports, source, SLUG)
        assert (report.failed, report.new) == (False, 0), report
    assert "/entrez/eutils/esearch.fcgi" in transport.paths
    assert {"/api/v2/version", "/api/v2/studies"} <= set(transport.paths)
    assert not transport.closed
