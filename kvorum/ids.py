"""Stable member and cluster ids, derived exactly as etcd 3.4 derives them.

etcd never stores a random id for a member that bootstraps a cluster: every member computes the
ids of all initial members on its own from the same flags, so they agree without talking. A
member id is the first 8 bytes (big-endian) of SHA-1 over the member's sorted peer URLs
concatenated, then the cluster token, then — only for a member added later at runtime — the
decimal Unix time of the addition. The cluster id is the first 8 bytes of SHA-1 over the sorted
member ids, each as 8 big-endian bytes. A kvorum cluster started with the same
``--initial-cluster`` and ``--initial-cluster-token`` as an etcd cluster therefore gets the same
ids, which the test suite checks against a real etcd.

Ids print as etcd prints them: lowercase hexadecimal without leading zeros.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = [
    "ID_BITS",
    "cluster_id",
    "format_id",
    "initial_member_ids",
    "member_id",
    "parse_id",
]

ID_BITS = 64
_ID_MAX = (1 << ID_BITS) - 1


def _first_8_bytes_big_endian(data: bytes) -> int:
    return int.from_bytes(hashlib.sha1(data).digest()[:8], "big")


def member_id(peer_urls: Iterable[str], cluster_token: str, now_unix_s: int | None = None) -> int:
    """The id of a member with these peer URLs in the cluster named by ``cluster_token``.

    ``now_unix_s`` is given only for a member added to a running cluster (``member add``): etcd
    mixes in the time then so that re-adding the same URLs yields a fresh id. Members listed in
    ``--initial-cluster`` get ``None``, so every member computes the same ids independently.
    The URLs must be in the canonical form etcd prints (as :mod:`kvorum.config` produces them).
    """
    parts = sorted(peer_urls)
    material = "".join(parts) + cluster_token
    if now_unix_s is not None:
        material += str(now_unix_s)
    return _first_8_bytes_big_endian(material.encode("utf-8"))


def cluster_id(member_ids: Iterable[int]) -> int:
    """The cluster id etcd derives from the set of initial member ids (order does not matter)."""
    material = b"".join(mid.to_bytes(8, "big") for mid in sorted(member_ids))
    return _first_8_bytes_big_endian(material)


def initial_member_ids(
    members: Iterable[tuple[str, Iterable[str]]], cluster_token: str
) -> dict[str, int]:
    """Map each ``(name, peer_urls)`` of ``--initial-cluster`` to its member id."""
    return {name: member_id(urls, cluster_token) for name, urls in members}


def format_id(value: int) -> str:
    """Render an id the way etcd and etcdctl do: lowercase hex, no leading zeros, no prefix."""
    if not 0 <= value <= _ID_MAX:
        raise ValueError(f"id {value} does not fit in {ID_BITS} bits")
    return format(value, "x")


def parse_id(text: str) -> int:
    """Parse an id as printed by :func:`format_id` (the form etcdctl accepts)."""
    if not text or len(text) > ID_BITS // 4 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise ValueError(f"invalid member id {text!r}: expected up to 16 hex digits")
    return int(text, 16)
