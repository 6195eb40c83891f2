"""RaftLog: the storage (persisted) plus the unstable tail, with commit and apply marks."""

from __future__ import annotations

from kvorum.raft.types import (
    CompactedError,
    Entry,
    EntryType,
    RaftError,
    Snapshot,
    Storage,
    StorageError,
    UnavailableError,
)
from kvorum.raft.unstable import Unstable
from kvorum.raft.util import limit_size


class RaftLog:
    """The log as the state machine sees it.

    Invariants: ``applied <= committed <= last_index()``;
    ``first_index() - 1 <= applied`` (never apply what a snapshot already holds).
    """

    __slots__ = ("applied", "committed", "max_apply_bytes", "storage", "unstable")

    def __init__(self, storage: Storage, max_apply_bytes: int) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        # Everything up to the snapshot is committed and applied by definition.
        self.committed = first - 1
        self.applied = first - 1
        self.max_apply_bytes = max_apply_bytes

    # --- indexes and terms ---------------------------------------------------------

    def first_index(self) -> int:
        snap = self.unstable.snapshot
        if snap is not None:
            return snap.metadata.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        u = self.unstable
        return u.offset + len(u.entries) - 1

    def stable_last_index(self) -> int:
        """Last index known persisted (storage holds everything before the unstable tail)."""
        return self.unstable.offset - 1

    def term(self, index: int) -> int:
        """Term at ``index``; raises CompactedError / UnavailableError outside the log."""
        u = self.unstable
        off = u.offset
        if index >= off:
            i = index - off
            if i < len(u.entries):
                return u.entries[i].term
            raise UnavailableError(f"index {index} beyond last index {off + len(u.entries) - 1}")
        snap = u.snapshot
        if snap is not None:
            if index == snap.metadata.index:
                return snap.metadata.term
            raise CompactedError(f"index {index} is before the snapshot at {snap.metadata.index}")
        return self.storage.term(index)

    def term_or_zero(self, index: int) -> int:
        try:
            return self.term(index)
        except StorageError:
            return 0

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, index: int, term: int) -> bool:
        try:
            return self.term(index) == term
        except StorageError:
            return False

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """Is a log ending at (``last_index``, ``term``) at least as up to date as ours (§5.4.1)."""
        our_term = self.last_term()
        return term > our_term or (term == our_term and last_index >= self.last_index())

    # --- appending -------------------------------------------------------------------

    def append(self, ents: list[Entry] | tuple[Entry, ...]) -> int:
        if ents:
            if ents[0].index - 1 < self.committed:
                raise RaftError(
                    f"appending at {ents[0].index} would overwrite committed {self.committed}"
                )
            self.unstable.truncate_and_append(ents)
        return self.last_index()

    def maybe_append(
        self, index: int, log_term: int, committed: int, ents: tuple[Entry, ...]
    ) -> int | None:
        """Consistency check and append for an APP (§5.3); the new last index, or None."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(ents)
        if ents:
            conflict = self._find_conflict(ents)
            if conflict:
                if conflict <= self.committed:
                    raise RaftError(
                        f"entry {conflict} conflicts with committed entry (commit {self.committed})"
                    )
                self.unstable.truncate_and_append(ents[conflict - index - 1 :])
        self.commit_to(min(committed, last_new))
        return last_new

    def _find_conflict(self, ents: tuple[Entry, ...]) -> int:
        """Index of the first entry that is new or differs from ours; 0 if all match."""
        last = self.last_index()
        for e in ents:
            if e.index > last or not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest index <= ``index`` whose term is <= ``term``, and that term.

        Used for the fast back-off on a rejected APP: entries above it cannot match
        a log whose entry at ``index`` has ``term``.
        """
        while index > 0:
            try:
                our = self.term(index)
            except StorageError:
                return index, 0
            if our <= term:
                return index, our
            index -= 1
        return 0, 0

    # --- commit and apply ----------------------------------------------------------------

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            if index > self.last_index():
                raise RaftError(f"commit {index} beyond last index {self.last_index()}")
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Commit ``index`` only if its entry is of ``term`` (the leader's; §5.4.2)."""
        if index > self.committed and self.term_or_zero(index) == term:
            self.commit_to(index)
            return True
        return False

    def applied_to(self, index: int) -> None:
        if index <= 0:
            return
        if index > self.committed or index < self.applied:
            raise RaftError(f"applied {index} outside [{self.applied}, {self.committed}]")
        self.applied = index

    def _apply_bound(self) -> int:
        """Highest index that may be applied: committed *and* persisted locally."""
        return min(self.committed, self.unstable.offset - 1)

    def has_next_committed_ents(self) -> bool:
        if self.unstable.snapshot is not None:
            return False
        return self.applied < self._apply_bound()

    def next_committed_ents(self) -> list[Entry]:
        if self.unstable.snapshot is not None:
            return []  # the snapshot must be applied first
        lo = self.applied + 1
        hi = self._apply_bound() + 1
        if lo >= hi:
            return []
        return self.slice(lo, hi, self.max_apply_bytes)

    def has_unapplied_conf_change(self) -> bool:
        if self.committed <= self.applied:
            return False
        ents = self.slice(self.applied + 1, self.committed + 1, None)
        return any(e.type == EntryType.CONF_CHANGE for e in ents)

    # --- reading entries ---------------------------------------------------------------

    def slice(self, lo: int, hi: int, max_size: int | None) -> list[Entry]:
        """Entries in [lo, hi), at least one, then up to ``max_size`` bytes."""
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise CompactedError(f"entry {lo} is compacted")
        u = self.unstable
        off = u.offset
        if hi > off + len(u.entries):
            raise UnavailableError(f"entries up to {hi - 1} requested beyond last index")
        if lo >= off:
            return limit_size(u.entries[lo - off : hi - off], max_size)
        if hi <= off:
            return self.storage.entries(lo, hi, max_size)
        stored = self.storage.entries(lo, off, max_size)
        if len(stored) < off - lo:
            return stored  # the size limit was reached inside storage
        return limit_size(stored + u.entries[: hi - off], max_size)

    def snapshot(self) -> Snapshot:
        snap = self.unstable.snapshot
        if snap is not None:
            return snap
        return self.storage.snapshot()

    def restore(self, snap: Snapshot) -> None:
        """Drop the log for ``snap`` (a follower that fell behind compaction)."""
        self.committed = snap.metadata.index
        self.unstable.restore(snap)

    def stable_to(self, index: int, term: int) -> bool:
        return self.unstable.stable_to(index, term)

    def stable_snap_to(self, index: int) -> None:
        self.unstable.stable_snap_to(index)
