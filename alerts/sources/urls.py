"""URLs as the adapters hand them on, and where a redirect may take a fetch.

Three rules, each written once here:

- **Links.** A link read from upstream data is stored and printed in the digest's
  text part, where a CR/LF would start a line of its own. `item_link` keeps only an
  absolute http(s) URL with a host and without whitespace or control characters (a
  space is encoded as %20, as browsers do); any other link is no link, and the caller
  falls back to one it built (the item is kept).
- **Credentials.** A feed may be configured as `https://user:password@host/feed`. The
  password is used to fetch (`split_credentials`) and stripped from everything derived
  for storage or display: item ids and links, errors, logs (`without_credentials`,
  `scrub_credentials`).
- **Redirects.** A public server must not be able to point the poller at the inside
  of its network (cloud metadata at 169.254.169.254, an admin page on localhost).
  `check_redirect` refuses a hop from a public host to an internal address (loopback,
  private, link-local, unspecified, multicast, reserved; IPv4-mapped and 6to4 IPv6
  read as the IPv4 address they carry). A hop between internal hosts is allowed:
  the operator configured an internal URL on purpose (local setups, tests), and
  trust never flows back in once a chain has left for a public host. Addresses are
  checked as resolved before the request; a host that does not resolve is public
  as a source (strict) and not internal as a target (the connection will fail).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import quote, unquote, urljoin, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: (host, port) -> the addresses it resolves to, as text; [] when it does not resolve.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

HTTP_SCHEMES = frozenset({"http", "https"})
#: "scheme://userinfo@" anywhere in a text (an error message, a log line).
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@?#]*@")


class RedirectRefused(Exception):
    """A redirect leads from a public host to an internal address."""


# --- links ---------------------------------------------------------------------------


def item_link(link: object, base: str) -> str | None:
    """`link` made absolute against `base`, without credentials; None unless it is an
    http(s) URL with a host and no whitespace or control character inside."""
    if not isinstance(link, str):
        return None
    # A space inside is common in real feeds (PubMed's "utm_source=Mobile Safari UI")
    # and encoded as a browser would; any other whitespace or control character is
    # refused, checked before joining: urljoin silently drops CR, LF and TAB, which
    # would turn "…/a\r\nBcc: x" into a different, valid-looking link.
    link = link.strip().replace(" ", "%20")
    if not link or not link.isprintable():
        return None
    try:
        url = urljoin(base, link)
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # "http://[::1" and other unparsable netlocs
        return None
    if parts.scheme.lower() not in HTTP_SCHEMES or not host:
        return None
    return without_credentials(url)


# --- credentials ---------------------------------------------------------------------


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """(the URL without `user:password@`, (user, password) or None)."""
    parts = urlsplit(url)
    userinfo, at, _host = parts.netloc.rpartition("@")
    if not at:
        return url, None
    user, _colon, password = userinfo.partition(":")
    return without_credentials(url), (unquote(user), unquote(password))


def without_credentials(url: str) -> str:
    """`url` with any `user:password@` removed, the rest untouched."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def with_credentials(url: str, credentials: tuple[str, str] | None) -> str:
    """`url` carrying `credentials` again (for a feed URL to store after a redirect)."""
    if credentials is None:
        return url
    user, password = (quote(part, safe="") for part in credentials)
    parts = urlsplit(without_credentials(url))
    return parts._replace(netloc=f"{user}:{password}@{parts.netloc}").geturl()


def scrub_credentials(text: str) -> str:
    """`text` with the userinfo of every URL in it removed."""
    return _USERINFO.sub(r"\1", text)


def same_origin(a: str, b: str) -> bool:
    """Same scheme, host and port: where configured credentials may be sent."""
    first, second = urlsplit(a), urlsplit(b)
    return (first.scheme.lower(), first.hostname, _port(first.scheme, first.port)) == (
        second.scheme.lower(), second.hostname, _port(second.scheme, second.port)
    )


def _port(scheme: str, port: int | None) -> int:
    return port if port is not None else (443 if scheme.lower() == "https" else 80)


# --- addresses -----------------------------------------------------------------------


def is_internal(address: IPAddress) -> bool:
    """True for an address no public server may send us to."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return is_internal(embedded)
    return (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
    )


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """The system resolver (getaddrinfo, off the event loop)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


async def addresses_of(url: str, resolve: Resolver) -> list[IPAddress]:
    """The addresses a URL's host is (a literal) or resolves to; [] when unknown."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return []
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    found: list[IPAddress] = []
    for text in await resolve(host, _port(parts.scheme, parts.port)):
        try:
            found.append(ipaddress.ip_address(text.split("%", 1)[0]))  # drop an IPv6 zone
        except ValueError:
            continue
    return found


async def check_redirect(source_url: str, target_url: str, resolve: Resolver) -> None:
    """Raise RedirectRefused when a redirect from `source_url` to `target_url` leads from
    a public host to an internal address (the module docstring has the rule)."""
    target = [a for a in await addresses_of(target_url, resolve) if is_internal(a)]
    if not target:
        return
    source = await addresses_of(source_url, resolve)
    if source and all(is_internal(a) for a in source):
        return
    host = urlsplit(target_url).hostname
    shown = host if host == str(target[0]) else f"{host} ({target[0]})"
    raise RedirectRefused(f"redirect from a public host to the internal address {shown} refused")
