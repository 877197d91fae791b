"""The target catalogue: look targets up, find them by what people know of them, attach
feeds. Adding, editing and removing targets: alerts.targets.changes.

Other domains (alerts, digests, polling) resolve a slug with `get_target_by_slug`, so an
unknown target answers the same 404 everywhere. Searching and listing read the
in-memory index of `search.py`, rebuilt only when `repository.catalogue_version` says the
table changed. Services only flush; the caller commits.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerts.errors import Conflict, NotFound, Unprocessable
from alerts.pagination import decode_cursor, encode_cursor
from alerts.targets import repository
from alerts.targets.schemas import TargetOut, TargetPage
from alerts.targets.search import (
    CatalogueIndex,
    Entry,
    Hit,
    IndexCache,
    T,
    VersionedCache,
    terms_of,
)
from db.models import Feed, Target

#: Targets per page of `GET /api/v1/targets` (today's catalogue fits in one page).
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500


def get_target_by_slug(session: Session, slug: str) -> Target:
    """The target called `slug`; NotFound (404) when there is none."""
    target = repository.by_slug(session, slug)
    if target is None:
        raise NotFound(f"unknown target {slug!r}")
    return target


def list_targets(session: Session) -> list[Target]:
    """Every target, by slug."""
    return repository.all_targets(session)


def catalogue_index(session: Session, cache: IndexCache) -> CatalogueIndex:
    """The search index of the catalogue as it is now (built when it changed)."""
    return per_catalogue_version(session, cache, lambda: CatalogueIndex(_entries(session)))


def per_catalogue_version(
    session: Session, cache: VersionedCache[T], build: Callable[[], T]
) -> T:
    """The cached value, or `build()` when the catalogue changed since it was built."""
    return cache.get(repository.catalogue_version(session), build)


def _entries(session: Session) -> list[Entry]:
    return [
        Entry(target_id, slug, name, description, terms_of(slug, name, match_terms))
        for target_id, slug, name, description, match_terms in repository.search_rows(session)
    ]


def search_targets(
    session: Session, cache: IndexCache, query: str | None, limit: int | None = None
) -> tuple[list[Hit], int]:
    """The first `limit` targets matching `query`, best first, and how many match; the
    whole catalogue by slug without a query."""
    return catalogue_index(session, cache).search(query or "", limit)


def target_page(
    session: Session, cache: IndexCache, query: str | None, *, limit: int, cursor: str | None
) -> TargetPage:
    """One page of `search_targets`; the cursor is the position of the next hit."""
    start = decode_cursor(cursor, int)[0] if cursor else 0
    end = start + limit
    hits, total = search_targets(session, cache, query, end)
    return TargetPage(
        data=[
            TargetOut(slug=h.entry.slug, name=h.entry.name, description=h.entry.description,
                      matched_on=list(h.matched_on))
            for h in hits[start:end]
        ],
        next_cursor=encode_cursor(end) if end < total else None,
    )


def featured_targets(session: Session, cache: IndexCache, limit: int) -> list[Entry]:
    """What to show before anyone searched: the targets with the most active alerts,
    then the others by name, `limit` in all."""
    index = catalogue_index(session, cache)
    followed = [index.by_id[i] for i in repository.most_followed(session, limit)
                if i in index.by_id]
    shown = {e.slug for e in followed}
    rest = (e for e in index.by_name if e.slug not in shown)
    return (followed + [e for _, e in zip(range(limit - len(followed)), rest, strict=False)])


def targets_by_slugs(session: Session, slugs: list[str]) -> dict[str, Target]:
    """The targets among `slugs`, by slug (unknown slugs are left out)."""
    return repository.by_slugs(session, slugs)


def enabled_feeds(session: Session, target_ids: list[int]) -> dict[int, list[Feed]]:
    """The feeds to poll, per target id."""
    return repository.enabled_feeds(session, target_ids)


def catalogue_feeds(session: Session) -> list[Feed]:
    """The feeds of the whole catalogue, fetched once per cycle for every target."""
    return repository.catalogue_feeds(session)


def feed_counts(session: Session) -> dict[int, int]:
    """Enabled feeds per target id."""
    return repository.feed_counts(session)


def validate_feed_url(url: str) -> str:
    """The URL, stripped, when it is an absolute http(s) URL; Unprocessable otherwise."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not host
        or any(ch.isspace() for ch in url)
    ):
        raise Unprocessable("url", "must be an absolute http:// or https:// URL")
    return url


def add_feed(session: Session, target_slug: str | None, url: str) -> Feed:
    """Attach an RSS/Atom feed to a target, or with `target_slug` None to the whole
    catalogue (fetched once per cycle, its entries matched against every target);
    Conflict when the target (or the catalogue) already has it."""
    target_id = None if target_slug is None else get_target_by_slug(session, target_slug).id
    url = validate_feed_url(url)
    owner = "the catalogue" if target_slug is None else f"target {target_slug!r}"
    if repository.feed_by_url(session, target_id, url) is not None:
        raise Conflict(f"{owner} already has the feed {url}")
    feed = Feed(target_id=target_id, url=url, enabled=True)
    flush_new(session, feed, f"{owner} already has the feed {url}")
    return feed


def flush_new(session: Session, row: Target | Feed, conflict: str) -> None:
    """Insert `row`; a unique violation (another process won the race) is a Conflict, and
    only the savepoint is rolled back, not the caller's transaction."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise Conflict(conflict) from None
