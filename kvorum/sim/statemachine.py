"""The replicated state machine of a simulated member: a hash chain plus the writes applied.

The chain hash after index i folds in every applied entry (index, term, type, data) up to i, so
two members with the same chain at i applied exactly the same history; comparing one 16-byte
value checks a whole prefix. The list of client write ids serves the durability check. Snapshots
are this state serialized, which is what the raft core ships in SNAP messages.
"""

from __future__ import annotations

import struct
from hashlib import blake2b

from kvorum.raft.types import Entry, EntryType

CHAIN_SIZE_BYTES = 16
WRITE_PREFIX = b"w"
"""Client writes carry data ``w<number>``; everything else (no-ops, conf changes) is not one."""

_HEADER = struct.Struct(">QQ")  # applied index, write count


class StateMachine:
    """Applied history of one member; volatile, rebuilt from its last snapshot on restart."""

    __slots__ = ("applied_index", "chain", "writes")

    def __init__(self) -> None:
        self.applied_index = 0
        self.chain = bytes(CHAIN_SIZE_BYTES)
        self.writes: list[bytes] = []

    def apply(self, entry: Entry) -> None:
        """Fold ``entry`` into the state; entries must arrive in index order without gaps."""
        if entry.index != self.applied_index + 1:
            raise ValueError(f"applied {entry.index} after {self.applied_index}: out of order")
        h = blake2b(self.chain, digest_size=CHAIN_SIZE_BYTES)
        h.update(b"%d:%d:%d:" % (entry.index, entry.term, int(entry.type)))
        h.update(entry.data)
        self.chain = h.digest()
        self.applied_index = entry.index
        if entry.type == EntryType.NORMAL and entry.data.startswith(WRITE_PREFIX):
            self.writes.append(entry.data)

    def encode(self) -> bytes:
        """Serialize: header, chain, then the write ids separated by newlines."""
        return (
            _HEADER.pack(self.applied_index, len(self.writes))
            + self.chain
            + b"\n".join(self.writes)
        )

    @classmethod
    def decode(cls, data: bytes) -> StateMachine:
        applied_index, count = _HEADER.unpack_from(data)
        sm = cls()
        sm.applied_index = applied_index
        start = _HEADER.size
        sm.chain = bytes(data[start : start + CHAIN_SIZE_BYTES])
        body = data[start + CHAIN_SIZE_BYTES :]
        sm.writes = body.split(b"\n") if count else []
        if len(sm.writes) != count:
            raise ValueError(f"snapshot holds {len(sm.writes)} writes, header says {count}")
        return sm
