"""The simulated stable storage of one member: what survives a crash.

It holds exactly what a member made durable by carrying out Readys (snapshot, then entries, then
hard state — the order written on ``types.Ready``) plus the snapshots its state machine took. A
crash discards everything else; a restart rebuilds the raft storage from this. It is kept apart
from the core's ``MemoryStorage`` on purpose: the checks run against the simulator's own copy.

Persisting also checks the parts of the Ready contract a disk can see: entries extend or
overwrite a suffix without gaps, a committed entry is never replaced, the term never goes back,
a member never changes its vote within a term, and commit never exceeds the durable log.
"""

from __future__ import annotations

from kvorum.raft.types import (
    EMPTY_HARD_STATE,
    EMPTY_SNAPSHOT,
    NONE,
    Entry,
    HardState,
    Snapshot,
)
from kvorum.sim.checker import READY_CONTRACT, InvariantViolation


class DiskContractError(InvariantViolation):
    """What the core asked to persist breaks the Ready contract or a durable-state rule."""

    def __init__(self, node_id: int, detail: str) -> None:
        super().__init__(READY_CONTRACT, -1, (node_id,), detail)


class SimDisk:
    """Durable snapshot, log suffix after ``offset`` and hard state of one member."""

    __slots__ = ("entries", "hard_state", "node_id", "offset", "offset_term", "snapshot")

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        self.hard_state: HardState = EMPTY_HARD_STATE
        self.snapshot: Snapshot = EMPTY_SNAPSHOT
        self.offset = 0
        """Index just before ``entries[0]``; its term is ``offset_term``."""
        self.offset_term = 0
        self.entries: list[Entry] = []

    def last_index(self) -> int:
        return self.offset + len(self.entries)

    def term_at(self, index: int) -> int | None:
        """Term of the durable entry at ``index``; None if compacted away or past the end."""
        if index == self.offset:
            return self.offset_term
        pos = index - self.offset - 1
        if 0 <= pos < len(self.entries):
            return self.entries[pos].term
        return None

    # --- carrying out a Ready ---------------------------------------------------------------

    def save_snapshot(self, snap: Snapshot) -> None:
        """A snapshot received from the leader replaces the whole log (step 1 of a Ready)."""
        meta = snap.metadata
        if meta.index <= self.snapshot.metadata.index:
            raise DiskContractError(
                self.node_id,
                f"snapshot at {meta.index} is not newer than the held one at"
                f" {self.snapshot.metadata.index}",
            )
        if meta.index < self.hard_state.commit:
            raise DiskContractError(
                self.node_id,
                f"snapshot at {meta.index} is behind the durable commit {self.hard_state.commit}",
            )
        self.snapshot = snap
        self.offset = meta.index
        self.offset_term = meta.term
        self.entries = []

    def append(self, entries: tuple[Entry, ...]) -> int:
        """Write ``entries``, dropping any durable suffix they overwrite (step 1 of a Ready).

        Returns the index before the first entry, so the caller can check log matching.
        """
        first = entries[0].index
        if first <= self.offset or first > self.last_index() + 1:
            raise DiskContractError(
                self.node_id,
                f"entries from {first} do not fit the durable log ({self.offset},"
                f" {self.last_index()}]",
            )
        keep = first - self.offset - 1
        commit = self.hard_state.commit
        # A committed entry is never replaced by a different one (§5.4: committed is final).
        for old in self.entries[keep : commit - self.offset]:
            new_pos = old.index - first
            if new_pos >= len(entries):
                break
            new = entries[new_pos]
            if (new.term, new.type, new.data) != (old.term, old.type, old.data):
                raise DiskContractError(
                    self.node_id,
                    f"committed entry {old.index} (term {old.term}) overwritten by term"
                    f" {new.term} (commit {commit})",
                )
        del self.entries[keep:]
        self.entries.extend(entries)
        return first - 1

    def set_hard_state(self, hs: HardState) -> None:
        """Write the hard state last (step 1 of a Ready); checks the rules it must obey."""
        old = self.hard_state
        if hs.term < old.term:
            raise DiskContractError(self.node_id, f"term went back from {old.term} to {hs.term}")
        if hs.term == old.term and old.vote != NONE and hs.vote != old.vote:
            raise DiskContractError(
                self.node_id, f"vote in term {hs.term} changed from {old.vote} to {hs.vote}"
            )
        if hs.commit < old.commit:
            raise DiskContractError(
                self.node_id, f"commit went back from {old.commit} to {hs.commit}"
            )
        if hs.commit > self.last_index():
            raise DiskContractError(
                self.node_id,
                f"commit {hs.commit} is beyond the durable log (last {self.last_index()})",
            )
        self.hard_state = hs

    # --- the state machine's own snapshots --------------------------------------------------

    def take_snapshot(self, snap: Snapshot, compact_index: int) -> None:
        """Keep a snapshot the state machine took and drop entries up to ``compact_index``."""
        if compact_index > snap.metadata.index:
            raise ValueError(f"compacting to {compact_index} past snapshot {snap.metadata.index}")
        self.snapshot = snap
        if compact_index <= self.offset:
            return
        term = self.term_at(compact_index)
        if term is None:
            raise ValueError(f"compact index {compact_index} is not in the durable log")
        del self.entries[: compact_index - self.offset]
        self.offset = compact_index
        self.offset_term = term

    def entries_after(self, index: int) -> list[Entry]:
        """Durable entries with index > ``index`` (what a restart replays after a snapshot)."""
        start = max(0, index - self.offset)
        return self.entries[start:]
