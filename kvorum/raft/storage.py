"""MemoryStorage: the in-memory ``Storage`` used by tests, the simulator and benchmarks.

The application writes to it while carrying out a ``Ready`` (``append``,
``set_hard_state``, ``apply_snapshot``) and compacts it after taking a snapshot of
its own state (``create_snapshot`` + ``compact``); the core only reads.
"""

from __future__ import annotations

from kvorum.raft.types import (
    EMPTY_HARD_STATE,
    CompactedError,
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
    SnapshotOutOfDateError,
    StorageError,
    UnavailableError,
)
from kvorum.raft.util import limit_size


class MemoryStorage:
    """A raft log, hard state and latest snapshot held in memory."""

    __slots__ = ("_ents", "_hard_state", "_snapshot")

    def __init__(self, conf_state: ConfState = ConfState()) -> None:  # noqa: B008 (frozen)
        self._hard_state = EMPTY_HARD_STATE
        # The snapshot's metadata carries the membership a restart begins from; a new
        # cluster starts with an "empty" snapshot (index 0) that lists the initial voters.
        self._snapshot = Snapshot(metadata=SnapshotMetadata(conf_state=conf_state))
        # Invariant: _ents[0] is a dummy entry standing for the snapshot (its index and
        # term); real entries follow contiguously, so _ents[i].index == _ents[0].index + i.
        self._ents: list[Entry] = [Entry(term=0, index=0)]

    # --- Storage protocol (what the core reads) ----------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._snapshot.metadata.conf_state

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        ents = self._ents
        offset = ents[0].index
        if lo <= offset:
            raise CompactedError(f"entry {lo} is compacted (first index {offset + 1})")
        last = offset + len(ents) - 1
        if hi > last + 1:
            raise UnavailableError(f"entries up to {hi - 1} requested, last index is {last}")
        return limit_size(ents[lo - offset : hi - offset], max_size)

    def term(self, index: int) -> int:
        ents = self._ents
        offset = ents[0].index
        if index < offset:
            raise CompactedError(f"term of {index} is compacted (snapshot at {offset})")
        i = index - offset
        if i >= len(ents):
            raise UnavailableError(f"term of {index} requested, last index is {offset + i - 1}")
        return ents[i].term

    def first_index(self) -> int:
        return self._ents[0].index + 1

    def last_index(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # --- writer side (what the application does with a Ready) -------------------

    def hard_state(self) -> HardState:
        return self._hard_state

    def set_hard_state(self, hs: HardState) -> None:
        self._hard_state = hs

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        """Store ``entries``, dropping any stored suffix from ``entries[0].index`` on."""
        if not entries:
            return
        ents = self._ents
        offset = ents[0].index
        first_new = entries[0].index
        if entries[-1].index <= offset:
            return  # all of it is already covered by the snapshot
        if first_new <= offset:
            entries = entries[offset + 1 - first_new :]
            first_new = offset + 1
        pos = first_new - offset
        if pos > len(ents):
            raise StorageError(
                f"missing log entries: last index {offset + len(ents) - 1}, appending {first_new}"
            )
        if pos < len(ents):
            del ents[pos:]
        ents.extend(entries)

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log with ``snap`` (a follower restoring from the leader)."""
        md = snap.metadata
        if md.index <= self._snapshot.metadata.index:
            raise SnapshotOutOfDateError(
                f"snapshot at {md.index} is not newer than {self._snapshot.metadata.index}"
            )
        self._snapshot = snap
        self._ents = [Entry(term=md.term, index=md.index)]

    def create_snapshot(self, index: int, conf_state: ConfState | None, data: bytes) -> Snapshot:
        """Record the application's state as of ``index``; ``compact`` may follow."""
        if index <= self._snapshot.metadata.index:
            raise SnapshotOutOfDateError(
                f"snapshot at {index} is not newer than {self._snapshot.metadata.index}"
            )
        if index > self.last_index():
            raise UnavailableError(f"snapshot at {index} beyond last index {self.last_index()}")
        cs = conf_state if conf_state is not None else self._snapshot.metadata.conf_state
        self._snapshot = Snapshot(
            data=data, metadata=SnapshotMetadata(conf_state=cs, index=index, term=self.term(index))
        )
        return self._snapshot

    def compact(self, index: int) -> None:
        """Discard entries before ``index``; ``index`` becomes the dummy entry."""
        ents = self._ents
        offset = ents[0].index
        if index <= offset:
            raise CompactedError(f"already compacted up to {offset}")
        if index > self.last_index():
            raise UnavailableError(f"compact {index} beyond last index {self.last_index()}")
        i = index - offset
        ents[0] = Entry(term=ents[i].term, index=index)
        del ents[1 : i + 1]
