"""Rebuilding the raft log from a WAL's records, in the order they were written.

Replay invariant (raft log matching, §5.3): an entry at index i replaces the stored
entry at i and every entry after it. Only uncommitted entries are ever replaced, and a
snapshot only covers committed ones, so entries at or below the snapshot index are never
replaced: reading may skip them.
"""

from __future__ import annotations

from pathlib import Path

from kvorum.raft.types import EMPTY_HARD_STATE, Entry
from kvorum.wal._errors import WALCorruptError, WALError
from kvorum.wal._record import (
    RecordType,
    decode_entry,
    decode_hard_state,
    decode_snapshot_marker,
)


class Replay:
    """Rebuilds the log after a snapshot from records in write order."""

    def __init__(self, snap_term: int, snap_index: int) -> None:
        self.snap_term = snap_term
        self.snap_index = snap_index
        self.entries: list[Entry] = []
        self.hard_state = EMPTY_HARD_STATE
        self.snapshot_found = snap_index == 0
        self.newest_marker = 0  # highest snapshot marker index seen beyond snap_index

    @property
    def last_index(self) -> int:
        return self.snap_index + len(self.entries)

    def apply(self, path: Path, offset: int, record_type: int, payload: memoryview) -> None:
        try:
            if record_type == RecordType.ENTRY:
                self._entry(path, offset, decode_entry(payload))
            elif record_type == RecordType.HARD_STATE:
                self.hard_state = decode_hard_state(payload)
            elif record_type == RecordType.SNAPSHOT:
                self._marker(path, offset, *decode_snapshot_marker(payload))
            else:
                kind = RecordType(record_type).name
                raise WALCorruptError(path, offset, f"a {kind} record inside a segment")
        except ValueError as exc:
            raise WALCorruptError(path, offset, str(exc)) from exc

    def _entry(self, path: Path, offset: int, entry: Entry) -> None:
        position = entry.index - self.snap_index - 1
        if position < 0:
            return  # covered by the snapshot
        stored = len(self.entries)
        if position < stored:
            del self.entries[position:]  # raft truncation: this write replaced the suffix
        elif position > stored:
            if self.newest_marker > self.last_index:
                raise WALError(
                    f"{path} at byte offset {offset}: entry {entry.index} follows a snapshot "
                    f"marker at index {self.newest_marker}, beyond the log read from snapshot "
                    f"index {self.snap_index}; open the WAL from that newer snapshot"
                )
            raise WALCorruptError(
                path, offset, f"entry {entry.index} leaves a gap after index {self.last_index}"
            )
        self.entries.append(entry)

    def _marker(self, path: Path, offset: int, term: int, index: int) -> None:
        if index == self.snap_index and self.snap_index > 0:
            if term != self.snap_term:
                raise WALError(
                    f"{path} at byte offset {offset}: the snapshot marker at index {index} has "
                    f"term {term}, not {self.snap_term}: the snapshot file does not belong to "
                    "this WAL"
                )
            self.snapshot_found = True
        elif index > self.snap_index:
            self.newest_marker = max(self.newest_marker, index)

    def finish(self, wal_dir: Path) -> None:
        if not self.snapshot_found:
            raise WALError(
                f"the WAL in {wal_dir} has no marker for the snapshot at term {self.snap_term}, "
                f"index {self.snap_index}: that snapshot was never recorded in this log"
            )
        if self.newest_marker > self.last_index:
            raise WALError(
                f"the WAL in {wal_dir} records a snapshot at index {self.newest_marker}, beyond "
                f"the log read from snapshot index {self.snap_index}; open it from that snapshot"
            )
