"""Small helpers shared by the log and the storage."""

from __future__ import annotations

from kvorum.raft.types import Entry

ENTRY_OVERHEAD_BYTES = 16
"""Fixed per-entry weight used by flow control (matches ``Entry.size``)."""

NO_LIMIT = 1 << 62


def limit_size(ents: list[Entry], max_size_bytes: int | None) -> list[Entry]:
    """The longest prefix of ``ents`` within ``max_size_bytes``, but at least one entry."""
    n = len(ents)
    if max_size_bytes is None or max_size_bytes >= NO_LIMIT or n <= 1:
        return ents
    # Common case first: everything fits (one C-level pass, no per-entry branching).
    if sum([len(e.data) for e in ents]) + ENTRY_OVERHEAD_BYTES * n <= max_size_bytes:
        return ents
    size = 0
    for i, e in enumerate(ents):
        size += len(e.data) + ENTRY_OVERHEAD_BYTES
        if size > max_size_bytes and i > 0:
            return ents[:i]
    return ents


def size_of(ents: list[Entry] | tuple[Entry, ...]) -> int:
    """Flow-control weight of ``ents`` in bytes."""
    return sum([len(e.data) for e in ents]) + ENTRY_OVERHEAD_BYTES * len(ents)


def payload_size(ents: list[Entry] | tuple[Entry, ...]) -> int:
    """Bytes of payload in ``ents`` (what the uncommitted-size bound counts)."""
    return sum([len(e.data) for e in ents])
