"""Peer URLs: ``http://host:port`` (or ``https://`` once peer TLS is configured)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["PeerAddress", "format_peer_url", "parse_peer_url"]


@dataclass(frozen=True, slots=True)
class PeerAddress:
    host: str
    port: int
    tls: bool


def parse_peer_url(url: str) -> PeerAddress:
    """Split a peer URL; raise ``ValueError`` naming the URL when it is not usable."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid peer URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"peer URL {url!r} must start with http:// or https://")
    if not parts.hostname:
        raise ValueError(f"peer URL {url!r} has no host")
    if port is None:
        raise ValueError(f"peer URL {url!r} has no port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"peer URL {url!r} must not have a path, query or fragment")
    return PeerAddress(parts.hostname, port, parts.scheme == "https")


def format_peer_url(host: str, port: int, tls: bool = False) -> str:
    scheme = "https" if tls else "http"
    if ":" in host:  # an IPv6 literal needs brackets in a URL
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
