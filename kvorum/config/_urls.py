"""URLs as etcd validates them (``types.NewURLs``, ``types.URLsMap``) and the host checks.

Canonical forms matter beyond validation: member ids hash these strings (see
:mod:`kvorum.ids`), so a URL must come out exactly as etcd would print it. Pure.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from kvorum.config._errors import ConfigError
from kvorum.config._goflag import GoValueError


def split_host_port(hostport: str) -> tuple[str, str]:
    """``net.SplitHostPort``: ``host:port`` or ``[v6]:port``; the port may be empty."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise GoValueError("missing ']' in address")
        host, after = hostport[1:end], hostport[end + 1 :]
        if not after.startswith(":"):
            raise GoValueError("missing port in address")
        port = after[1:]
    else:
        colons = hostport.count(":")
        if colons == 0:
            raise GoValueError("missing port in address")
        if colons > 1:
            raise GoValueError("too many colons in address")
        host, port = hostport.split(":")
    if "[" in host or "]" in host or "[" in port or "]" in port:
        raise GoValueError("unexpected bracket in address")
    return host, port


_URL_SCHEMES = ("http", "https", "unix", "unixs")


def parse_url(raw: str) -> str:
    """One URL as etcd's ``types.NewURLs`` validates it; returns the canonical string.

    Rules: a scheme of http, https, unix or unixs; an address of the form ``host:port``; no
    path. The canonical form lowercases the scheme (as Go's ``url.URL.String`` does), which
    matters because member ids hash these strings.
    """
    text = raw.strip()
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in text):
        raise GoValueError(f"invalid character in URL: {text}")
    try:
        parts = urlsplit(text)
    except ValueError as err:  # e.g. an unclosed "[" — Go's url.Parse refuses it too
        raise GoValueError(f'parse "{text}": {err}') from None
    scheme = parts.scheme.lower()
    if scheme not in _URL_SCHEMES:
        raise GoValueError(f"URL scheme must be http, https, unix, or unixs: {text}")
    if not text[len(scheme) + 1 :].startswith("//"):
        raise GoValueError(f'URL address does not have the form "host:port": {text}')
    hostport = parts.netloc.rpartition("@")[2]
    try:
        _, port = split_host_port(hostport)
    except GoValueError:
        raise GoValueError(f'URL address does not have the form "host:port": {text}') from None
    if not port.isdigit() and port != "":
        raise GoValueError(f"invalid port {port!r} in URL: {text}")
    if parts.path:
        raise GoValueError(f"URL must not contain a path: {text}")
    canonical = f"{scheme}://{parts.netloc}"
    if parts.query:
        canonical += "?" + parts.query
    if parts.fragment:
        canonical += "#" + parts.fragment
    return canonical


def parse_url_list(text: str) -> tuple[str, ...]:
    """A comma-separated URL list, validated, de-duplicated and sorted (etcd sorts them too)."""
    return tuple(sorted({parse_url(piece) for piece in text.split(",")}))


def _url_hostport(url: str) -> tuple[str, str]:
    return split_host_port(urlsplit(url).netloc.rpartition("@")[2])


def check_bind_url(url: str) -> None:
    """etcd binds only to literal IPs or ``localhost``, never to other host names."""
    if url.startswith(("unix://", "unixs://")):
        return
    host, _ = _url_hostport(url)
    if host == "localhost":
        return
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise GoValueError(f"expected IP in URL for binding ({url})") from None


def check_host_url(url: str) -> None:
    """An advertised URL must name a host, since peers and clients will dial it."""
    host, _ = _url_hostport(url)
    if host == "":
        raise GoValueError(f"unexpected empty host ({url})")


def parse_initial_cluster(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``name=url,name=url,...`` → ``((name, sorted urls), ...)`` (etcd's URLsMap rules).

    Empty items are skipped; an item without ``=`` is a name with an empty URL (and fails URL
    validation, as in etcd); a name given several times collects several URLs.
    """
    grouped: dict[str, list[str]] = {}
    for item in text.split(","):
        if not item:
            continue
        name, _, url = item.partition("=")
        grouped.setdefault(name, []).append(url)
    members = []
    for name, urls in grouped.items():
        try:
            canonical = tuple(sorted(parse_url(url) for url in urls))
        except GoValueError as err:
            raise ConfigError(f"error setting up initial cluster: {err}") from None
        members.append((name, canonical))
    return tuple(members)
