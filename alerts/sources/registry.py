"""SourceName -> adapter. Adding a source is one module and one entry here."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from alerts.config import Settings
from alerts.sources.base import Source, SourceName
from alerts.sources.http import UpstreamClient, host_key, user_agent

AdapterFactory = Callable[[Settings, UpstreamClient], Source]


def _pubmed(settings: Settings, client: UpstreamClient) -> Source:
    from alerts.sources.pubmed import PubMedSource

    return PubMedSource.from_settings(settings, client)


def _ctgov(settings: Settings, client: UpstreamClient) -> Source:
    from alerts.sources.ctgov import ClinicalTrialsSource

    return ClinicalTrialsSource.from_settings(settings, client)


def _rss(settings: Settings, client: UpstreamClient) -> Source:
    from alerts.sources.rss import FeedSource

    return FeedSource.from_settings(settings, client)


REGISTRY: dict[SourceName, AdapterFactory] = {
    SourceName.pubmed: _pubmed,
    SourceName.ctgov: _ctgov,
    SourceName.rss: _rss,
}


def make_adapter(name: SourceName, settings: Settings, client: UpstreamClient) -> Source:
    return REGISTRY[name](settings, client)


def make_client(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> UpstreamClient:
    """The shared upstream client, with the NCBI and ClinicalTrials.gov rate limits."""
    ncbi_rate = 10.0 if settings.ncbi_api_key else 3.0
    return UpstreamClient(
        timeout=settings.http_timeout_seconds,
        max_retries=settings.http_max_retries,
        host_rates={
            host_key(settings.ctgov_base): 1.0,
            host_key(settings.pubmed_base): ncbi_rate,
        },
        transport=transport,
        agent=user_agent(settings.public_base),
        max_connections=max(settings.feed_concurrency, 8),
    )
