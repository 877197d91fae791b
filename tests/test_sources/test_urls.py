"""What an upstream may do to the URLs we store and follow: links safe to print, feed
credentials kept out of ids, links and errors, redirects kept out of the internal
network, redirect loops ended, and a feed that drips bytes ended by its deadline."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
from collections.abc import Iterator, Mapping, Sequence

import pytest

from alerts.sources import urls
from alerts.sources.base import FeedRef, FeedStatus, PollResult, RetryLater, TargetQuery
from alerts.sources.ctgov import parse_study
from alerts.sources.feedparse import entry_external_id, parse_feed
from alerts.sources.http import UpstreamClient
from alerts.sources.pubmed import parse_efetch
from alerts.sources.rss import FeedSource
from alerts.sources.urls import (
    RedirectRefused,
    check_redirect,
    is_internal,
    item_link,
    scrub_credentials,
    split_credentials,
    without_credentials,
)
from tests.fakes.upstream import FakeUpstream, drip
from tests.test_sources.test_rss import (
    ATOM_URL,
    NOW,
    FakeWeb,
    Reply,
    ok,
    only,
    poll,
    redirect,
    synthetic,
)

BASE = "https://news.example.org/feed.xml"


# --- links ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("https://x.example/a?b=1", "https://x.example/a?b=1"),
        ("  /relative/path  ", "https://news.example.org/relative/path"),
        ("https://x.example/?utm=Mobile Safari", "https://x.example/?utm=Mobile%20Safari"),
        ("https://x.example/a\r\nBcc: victim@example.org", None),
        ("https://x.example/a\nb", None),
        ("https://x.example/a\tb", None),
        ("https://x.example/a\x00b", None),
        ("https://x.example/a\x0bb", None),
        ("https://x.example/a\x85b", None),  # NEL
        ("https://x.example/a\u2028b", None),  # LINE SEPARATOR
        ("https://x.example/a\u202eb", None),  # RIGHT-TO-LEFT OVERRIDE
        ("javascript:alert(1)", None),
        ("data:text/html,<b>x</b>", None),
        ("mailto:a@example.org", None),
        ("http://[::1", None),
        ("https://user:pw@x.example/a", "https://x.example/a"),
        ("", None),
        (None, None),
    ],
)
def test_a_link_is_an_absolute_http_url_safe_to_print_or_none(
    link: str | None, expected: str | None
) -> None:
    assert item_link(link, BASE) == expected


def test_an_entry_with_a_crlf_in_its_link_is_kept_with_a_safe_link() -> None:
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
        b"<link>https://news.example.org/</link>"
        b"<item><title>HER2 exon 20</title><guid>tag:x,1</guid>"
        b"<link>https://news.example.org/a&#13;&#10;Bcc: victim@example.org</link></item>"
        b"</channel></rss>"
    )
    [item] = parse_feed(body, BASE).items
    assert item.url == "https://news.example.org/"  # the feed's own link
    assert item.external_id == "tag:x,1"


def test_an_entry_identified_by_a_link_with_a_space_keeps_the_id_it_always_had() -> None:
    entry = {"link": "https://x.example/post?utm=Mobile Safari"}
    # The id joins the link as before (stored items keep their identity); the link
    # shown in the digest is encoded.
    assert entry_external_id(entry, BASE) == "https://x.example/post?utm=Mobile Safari"
    assert item_link(entry["link"], BASE) == "https://x.example/post?utm=Mobile%20Safari"


@pytest.mark.parametrize(
    ("entry", "external_id"),
    [
        ({"id": "https://me:pw@x.example/p/1"}, "https://x.example/p/1"),
        ({"id": "42"}, "https://news.example.org/feed.xml#42"),
        ({"link": "https://me:pw@x.example/p/2"}, "https://x.example/p/2"),
    ],
)
def test_ids_never_carry_credentials(entry: dict[str, str], external_id: str) -> None:
    assert entry_external_id(entry, "https://me:pw@news.example.org/feed.xml") == external_id


def test_pubmed_and_ctgov_links_quote_the_id_they_are_built_from() -> None:
    efetch = (
        b"<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1&#13;&#10;X: y</PMID>"
        b"<Article><ArticleTitle>T</ArticleTitle></Article></MedlineCitation>"
        b"</PubmedArticle></PubmedArticleSet>"
    )
    for item in parse_efetch(efetch):
        assert item.url.isprintable() and " " not in item.url
    study = {"protocolSection": {"identificationModule": {"nctId": "NCT1\r\nBcc: x"}}}
    trial = parse_study(study)
    assert trial is not None
    assert trial.url == "https://clinicaltrials.gov/study/NCT1%0D%0ABcc%3A%20x"


# --- credentials ---------------------------------------------------------------------


def test_credentials_are_split_from_the_url_and_scrubbed_from_text() -> None:
    assert split_credentials("https://us%40er:p%3Ass@h.example:8443/f?x=1") == (
        "https://h.example:8443/f?x=1", ("us@er", "p:ss"),
    )
    assert split_credentials(BASE) == (BASE, None)
    assert without_credentials("http://u@h.example/") == "http://h.example/"
    assert scrub_credentials("feed https://u:p@a.example/x failed; http://b.example/") == (
        "feed https://a.example/x failed; http://b.example/"
    )


SECRET_URL = "https://reader:s3cret@news.example.org/private/feed.xml"
PUBLIC_URL = "https://news.example.org/private/feed.xml"


def test_feed_credentials_are_sent_but_never_stored_in_ids_links_or_data() -> None:
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
        b"<item><title>HER2 exon 20</title><guid isPermaLink='false'>42</guid></item>"
        b"<item><title>no link, no guid</title><description>x</description></item>"
        b"<item><title>relative</title><link>/post/7</link></item>"
        b"</channel></rss>"
    )
    web = FakeWeb({PUBLIC_URL: ok(body)})

    result = poll(web, [FeedRef(1, SECRET_URL)])

    [request] = web.requests
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(
        b"reader:s3cret").decode()
    assert str(request.url) == PUBLIC_URL
    stored = repr([(i.external_id, i.url, dict(i.data)) for i in result.items])
    assert "s3cret" not in stored and "reader" not in stored
    assert [i.external_id for i in result.items][0] == f"{PUBLIC_URL}#42"
    assert result.items[2].url == "https://news.example.org/post/7"


def test_feed_credentials_stay_out_of_errors_and_go_to_their_origin_only() -> None:
    elsewhere = "https://cdn.example.net/feed.xml"
    web = FakeWeb({PUBLIC_URL: redirect(302, elsewhere), elsewhere: (404, {}, b"")})

    with pytest.raises(Exception, match="feeds failed") as raised:
        poll(web, [FeedRef(1, SECRET_URL)])

    assert "s3cret" not in str(raised.value)
    assert "Authorization" in web.requests[0].headers
    assert "Authorization" not in web.requests[1].headers


def test_a_permanent_redirect_on_the_same_origin_keeps_the_credentials_to_store() -> None:
    moved = "https://news.example.org/v2/feed.xml"
    web = FakeWeb({PUBLIC_URL: redirect(301, "/v2/feed.xml"), moved: ok(synthetic(
        "her2_news_atom.xml"))})

    outcome = only(poll(web, [FeedRef(1, SECRET_URL)]))

    assert outcome.new_url == "https://reader:s3cret@news.example.org/v2/feed.xml"
    assert all("s3cret" not in i.external_id for i in outcome.items)


# --- addresses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
        "100.64.0.1", "0.0.0.0", "224.0.0.251", "255.255.255.255", "240.0.0.1",
        "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1",
        "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "2002:a00:1::",
    ],
)
def test_internal_addresses(address: str) -> None:
    assert is_internal(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111",
                                     "::ffff:8.8.8.8"])
def test_public_addresses(address: str) -> None:
    assert not is_internal(ipaddress.ip_address(address))


def table(mapping: Mapping[str, Sequence[str]]) -> urls.Resolver:
    async def resolve(host: str, _port: int) -> Sequence[str]:
        return mapping.get(host, [])

    return resolve


DNS = table({
    "news.example.org": ["93.184.216.34"],
    "mirror.example.org": ["2606:4700::1111"],
    "metadata.internal": ["169.254.169.254"],
    "sneaky.example.org": ["93.184.216.35", "10.0.0.7"],  # one internal address is enough
    "mapped.example.org": ["::ffff:127.0.0.1"],
    "intranet.corp": ["10.1.2.3"],
})


@pytest.mark.parametrize(
    ("source", "target", "refused"),
    [
        ("https://news.example.org/", "https://mirror.example.org/", False),
        ("https://news.example.org/", "http://127.0.0.1:8080/", True),
        ("https://news.example.org/", "http://[::1]/", True),
        ("https://news.example.org/", "http://169.254.169.254/latest/meta-data/", True),
        ("https://news.example.org/", "http://metadata.internal/", True),
        ("https://news.example.org/", "http://sneaky.example.org/", True),
        ("https://news.example.org/", "http://mapped.example.org/", True),
        ("https://news.example.org/", "http://[::ffff:a00:1]/", True),
        ("https://news.example.org/", "http://0.0.0.0/", True),
        ("https://news.example.org/", "http://unresolvable.example/", False),
        ("https://unresolvable.example/", "http://10.0.0.1/", True),
        # Configured internal on purpose: hops inside stay allowed.
        ("http://127.0.0.1:8900/feed", "http://127.0.0.1:8901/feed", False),
        ("http://intranet.corp/feed", "http://10.9.9.9/feed", False),
        ("http://127.0.0.1/feed", "https://news.example.org/", False),
    ],
)
def test_redirect_rule(source: str, target: str, refused: bool) -> None:
    async def check() -> None:
        await check_redirect(source, target, DNS)

    if refused:
        with pytest.raises(RedirectRefused, match="internal address"):
            asyncio.run(check())
    else:
        asyncio.run(check())


INTERNAL = "http://169.254.169.254/latest/meta-data/"


@pytest.mark.parametrize(
    ("configured", "chain", "fetched"),
    [
        # public -> internal: refused, the internal URL never requested
        (ATOM_URL, [redirect(302, INTERNAL)], False),
        # public -> public -> internal: the last hop comes from a public host
        (ATOM_URL, [redirect(301, "https://mirror.example.org/a.xml"),
                    redirect(302, "http://127.0.0.1/feed")], False),
        # internal (configured so) -> internal: followed
        ("http://127.0.0.1:8900/feed", [redirect(302, "http://10.1.2.3/feed")], True),
    ],
)
def test_feed_redirects_into_the_internal_network_only_from_inside_it(
    configured: str, chain: list[Reply], fetched: bool
) -> None:
    hops = [configured]
    routes: dict[str, object] = {}
    for reply in chain:
        routes[hops[-1]] = reply
        hops.append(reply[1]["Location"])
    routes[hops[-1]] = ok(synthetic("her2_news_atom.xml"))
    web = FakeWeb(routes)  # type: ignore[arg-type]

    if fetched:
        outcome = only(poll(web, [FeedRef(1, configured)], resolve=DNS))
        assert outcome.status is FeedStatus.ok
    else:
        with pytest.raises(Exception, match="internal address .* refused"):
            poll(web, [FeedRef(1, configured)], resolve=DNS)
    assert bool(web.sent_to(hops[-1])) is fetched


def test_a_redirect_loop_ends_as_a_clear_failure() -> None:
    other = "https://mirror.example.org/atom.xml"
    web = FakeWeb({ATOM_URL: redirect(302, other), other: redirect(302, ATOM_URL)})

    with pytest.raises(Exception, match=rf"redirect loop \(back to {ATOM_URL}\)"):
        poll(web, [FeedRef(1, ATOM_URL)], resolve=DNS)
    assert len(web.requests) == 2


def test_a_long_redirect_chain_ends_at_the_limit() -> None:
    chain = [f"https://news.example.org/{n}" for n in range(10)]
    web = FakeWeb({a: redirect(302, b) for a, b in zip(chain, chain[1:], strict=False)})

    with pytest.raises(Exception, match="more than 5 redirects"):
        poll(web, [FeedRef(1, chain[0])], resolve=DNS)


# --- the deadline ----------------------------------------------------------------------


@pytest.fixture
def dripping() -> Iterator[FakeUpstream]:
    """A loopback server whose /feeds/slow.xml sends one byte every 50 ms (for at most
    20 s) and whose /feeds/fast.xml answers at once."""
    with FakeUpstream() as fake:
        body = synthetic("her2_news_atom.xml")
        fake.add_feed("slow", body)
        fake.add_feed("fast", body.replace(b"urn:", b"urn:fast-"))
        fake.misbehave("/feeds/slow.xml", drip(interval=0.05, for_seconds=20))
        yield fake


def test_a_feed_that_drips_bytes_fails_at_its_deadline_and_the_others_go_on(
    dripping: FakeUpstream,
) -> None:
    refs = [FeedRef(1, dripping.feed_url("slow")), FeedRef(2, dripping.feed_url("fast"))]

    result = poll_real(refs, deadline=0.5, timeout=5)

    slow, fast = result.feeds
    assert slow.status is FeedStatus.failed
    assert slow.error == f"feed {dripping.feed_url('slow')}: gave up after the 0.5 s deadline"
    assert fast.status is FeedStatus.ok and len(fast.items) == 4


def test_a_lone_dripping_feed_fails_the_poll_as_transient(dripping: FakeUpstream) -> None:
    with pytest.raises(RetryLater, match="gave up after the 0.5 s deadline"):
        poll_real([FeedRef(1, dripping.feed_url("slow"))], deadline=0.5, timeout=5)


def poll_real(refs: list[FeedRef], *, deadline: float, timeout: float) -> PollResult:
    """One poll over real sockets (each read well within `timeout`)."""

    async def run() -> PollResult:
        async with UpstreamClient(timeout=timeout, max_retries=0) as client:
            source = FeedSource(client, deadline=deadline, executor=None, inline_max_bytes=10**9)
            return await source.poll(TargetQuery("t", feeds=tuple(refs)), {}, now=NOW, since=NOW)

    return asyncio.run(run())
