"""The part of the log not yet persisted: entries (and perhaps a snapshot) in memory."""

from __future__ import annotations

from kvorum.raft.types import Entry, Snapshot


class Unstable:
    """Entries from ``offset`` on, and a snapshot to persist before them.

    Invariant: ``entries[i].index == offset + i``; when a snapshot is held,
    ``offset == snapshot.metadata.index + 1`` at the time it was restored.
    Invariant (with the storage): everything before ``offset`` is in storage, so
    ``offset + len(entries) - 1`` is always the last index of the whole log.
    """

    __slots__ = ("entries", "offset", "snapshot")

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset

    def maybe_term(self, index: int) -> int | None:
        off = self.offset
        if index >= off:
            i = index - off
            if i < len(self.entries):
                return self.entries[i].term
            return None
        snap = self.snapshot
        if snap is not None and snap.metadata.index == index:
            return snap.metadata.term
        return None

    def stable_to(self, index: int, term: int) -> bool:
        """Entries up to ``index`` (of ``term``) are persisted; False if they changed meanwhile."""
        i = index - self.offset
        if i < 0 or i >= len(self.entries) or self.entries[i].term != term:
            # Truncated or replaced after the Ready was handed out: the newer entries
            # will come out in the next Ready.
            return False
        del self.entries[: i + 1]
        self.offset = index + 1
        return True

    def stable_snap_to(self, index: int) -> None:
        if self.snapshot is not None and self.snapshot.metadata.index == index:
            self.snapshot = None

    def restore(self, snap: Snapshot) -> None:
        self.offset = snap.metadata.index + 1
        self.entries = []
        self.snapshot = snap

    def truncate_and_append(self, ents: list[Entry] | tuple[Entry, ...]) -> None:
        """Append ``ents``, dropping whatever they conflict with (their index on)."""
        after = ents[0].index
        off = self.offset
        if after == off + len(self.entries):
            self.entries.extend(ents)
        elif after <= off:
            # Replaces everything unstable (and shadows storage from ``after`` on).
            self.offset = after
            self.entries = list(ents)
        else:
            del self.entries[after - off :]
            self.entries.extend(ents)
