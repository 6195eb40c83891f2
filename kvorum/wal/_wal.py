"""The write-ahead log: raft entries, hard state and snapshot markers, durably.

Layout: a directory of segment files ``<seq>-<first_index>.wal`` (see ``_files``), each
starting with a METADATA and a SEGMENT record, then the current hard state, then
whatever was appended. ``save`` appends one whole raft Ready and ends with a single
``fdatasync`` (group commit); nothing it wrote may be acknowledged before it returns.

``open`` starts reading at the last segment whose first index is <= the snapshot index S
and skips the segments before it. That is safe by the replay invariant (``_replay``):
the log as of a segment's start is entries 1..first_index-1, all covered by the
snapshot. And the marker for S is in a segment read: it was written once the log
reached S, and any segment started after that has a first index > S.

Not thread-safe: one thread at a time (``AsyncWAL`` keeps all calls on one worker).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from kvorum.raft.types import EMPTY_HARD_STATE, Entry, HardState
from kvorum.wal._errors import WALCorruptError, WALError
from kvorum.wal._files import (
    SegmentName,
    fsync_dir,
    list_segments,
    make_dir,
)
from kvorum.wal._record import (
    RecordType,
    WALMetadata,
    append_entry_frame,
    encode_hard_state,
    encode_snapshot_marker,
    frame,
)
from kvorum.wal._replay import Replay
from kvorum.wal._scan import SegmentScan, scan_segment
from kvorum.wal._segments import (
    check_head,
    checked_segments,
    create_segment,
    head_end,
    lock_dir,
    read_file,
    remove_temp_files,
    repair_torn_tail,
    segment_head,
)

logger = logging.getLogger("kvorum.wal")

SEGMENT_SIZE_BYTES = 64 * 1024 * 1024
MAX_WALS = 5  # segments kept once a snapshot covers them; 0 keeps all (as etcd)
SLOW_FSYNC_S = 1.0  # an fdatasync slower than this is logged as a warning

FsyncObserver = Callable[[float], None]
"""Called with each fdatasync's duration in seconds (for a metrics histogram)."""


class WALContents(NamedTuple):
    """What ``WAL.open`` found: unpack as ``wal, metadata, hard_state, entries``."""

    wal: WAL
    metadata: WALMetadata
    hard_state: HardState
    entries: list[Entry]  # every entry after the snapshot index, in index order


class WAL:
    """An open, locked WAL positioned for appending. Build with ``create`` or ``open``."""

    def __init__(
        self,
        *,
        wal_dir: Path,
        dir_fd: int,
        metadata: WALMetadata,
        segments: list[SegmentName],
        fd: int,
        offset: int,
        head_end: int,
        last_index: int,
        hard_state: HardState,
        segment_size_bytes: int,
        max_wals: int,
        slow_fsync_s: float,
        fsync_observer: FsyncObserver | None,
    ) -> None:
        self._dir = wal_dir
        self._dir_fd = dir_fd  # holds the flock that keeps a second process out
        self._metadata = metadata
        self._segments = segments
        self._fd = fd  # the last segment, open for writing
        self._offset = offset  # where the next record goes; always 8-byte aligned
        self._head_end = head_end  # end of the last segment's head records
        self._last_index = last_index
        self._hard_state = hard_state
        self._segment_size_bytes = segment_size_bytes
        self._max_wals = max_wals
        self._slow_fsync_s = slow_fsync_s
        self._fsync_observer = fsync_observer
        self._failed: str | None = None  # set after an I/O error: the WAL refuses work
        self._closed = False

    # --- construction --------------------------------------------------------------

    @classmethod
    def create(
        cls,
        wal_dir: str | os.PathLike[str],
        metadata: WALMetadata,
        *,
        segment_size_bytes: int = SEGMENT_SIZE_BYTES,
        max_wals: int = MAX_WALS,
        slow_fsync_s: float = SLOW_FSYNC_S,
        fsync_observer: FsyncObserver | None = None,
    ) -> WAL:
        """Start a new log in ``wal_dir`` (created 0700 if missing; must hold no WAL)."""
        path = Path(wal_dir)
        try:
            make_dir(path)
        except OSError as exc:
            raise WALError(f"cannot create WAL directory {path}: {exc.strerror}") from exc
        dir_fd = lock_dir(path)
        try:
            if list_segments(path):
                raise WALError(f"a WAL already exists in {path}; open it instead")
            name = SegmentName(0, 0)
            head = segment_head(metadata, name, EMPTY_HARD_STATE)
            fd = create_segment(path, name, head, segment_size_bytes)
        except BaseException:
            os.close(dir_fd)
            raise
        logger.info("WAL: created %s", path / name.filename)
        return cls(
            wal_dir=path,
            dir_fd=dir_fd,
            metadata=metadata,
            segments=[name],
            fd=fd,
            offset=len(head),
            head_end=len(head),
            last_index=0,
            hard_state=EMPTY_HARD_STATE,
            segment_size_bytes=segment_size_bytes,
            max_wals=max_wals,
            slow_fsync_s=slow_fsync_s,
            fsync_observer=fsync_observer,
        )

    @classmethod
    def open(
        cls,
        wal_dir: str | os.PathLike[str],
        from_snapshot: tuple[int, int] = (0, 0),
        *,
        segment_size_bytes: int = SEGMENT_SIZE_BYTES,
        max_wals: int = MAX_WALS,
        slow_fsync_s: float = SLOW_FSYNC_S,
        fsync_observer: FsyncObserver | None = None,
    ) -> WALContents:
        """Verify and replay the log after snapshot ``(term, index)``; open it for appending.

        Every record of every segment read is verified. A torn tail of the last segment
        is zeroed out (logged); any other bad record raises WALCorruptError. For a
        snapshot index > 0 the WAL must hold the matching snapshot marker.
        """
        path = Path(wal_dir)
        if not path.is_dir():
            raise WALError(f"WAL directory {path} does not exist")
        dir_fd = lock_dir(path)
        try:
            return cls._open_locked(
                path,
                dir_fd,
                from_snapshot,
                segment_size_bytes=segment_size_bytes,
                max_wals=max_wals,
                slow_fsync_s=slow_fsync_s,
                fsync_observer=fsync_observer,
            )
        except BaseException:
            os.close(dir_fd)
            raise

    @classmethod
    def _open_locked(
        cls,
        path: Path,
        dir_fd: int,
        from_snapshot: tuple[int, int],
        *,
        segment_size_bytes: int,
        max_wals: int,
        slow_fsync_s: float,
        fsync_observer: FsyncObserver | None,
    ) -> WALContents:
        remove_temp_files(path)
        names = checked_segments(path)
        snap_term, snap_index = from_snapshot
        start = None
        for i, name in enumerate(names):
            if name.first_index <= snap_index:
                start = i
        if start is None:
            raise WALError(
                f"the WAL in {path} begins at index {names[0].first_index} (older segments "
                f"were purged); it cannot restart from snapshot index {snap_index}"
            )
        replay = Replay(snap_term, snap_index)
        metadata: WALMetadata | None = None
        scan: SegmentScan | None = None
        for i in range(start, len(names)):
            name = names[i]
            seg_path = path / name.filename
            scan = scan_segment(seg_path, read_file(seg_path), is_last=i == len(names) - 1)
            seg_metadata = check_head(seg_path, name, scan)
            if metadata is None:
                metadata = seg_metadata
            elif seg_metadata != metadata:
                raise WALCorruptError(
                    seg_path, 0, f"metadata {seg_metadata} differs from {metadata} before"
                )
            for offset, record_type, payload in scan.records[2:]:
                replay.apply(seg_path, offset, record_type, payload)
            if scan.torn is not None:
                repair_torn_tail(seg_path, scan)
        assert metadata is not None and scan is not None  # names is non-empty
        replay.finish(path)
        last_path = path / names[-1].filename
        try:
            fd = os.open(last_path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise WALError(f"cannot open {last_path} for writing: {exc.strerror}") from exc
        wal = cls(
            wal_dir=path,
            dir_fd=dir_fd,
            metadata=metadata,
            segments=names,
            fd=fd,
            offset=scan.end,
            head_end=head_end(scan),
            last_index=replay.last_index,
            hard_state=replay.hard_state,
            segment_size_bytes=segment_size_bytes,
            max_wals=max_wals,
            slow_fsync_s=slow_fsync_s,
            fsync_observer=fsync_observer,
        )
        return WALContents(wal, metadata, replay.hard_state, replay.entries)

    # --- properties ----------------------------------------------------------------

    @property
    def wal_dir(self) -> Path:
        return self._dir

    @property
    def metadata(self) -> WALMetadata:
        return self._metadata

    @property
    def last_index(self) -> int:
        """Index of the last entry appended (or of the newest snapshot marker if later)."""
        return self._last_index

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    @property
    def segment_paths(self) -> list[Path]:
        return [self._dir / name.filename for name in self._segments]

    # --- writing -------------------------------------------------------------------

    def save(
        self, hard_state: HardState | None, entries: Sequence[Entry], *, must_sync: bool = True
    ) -> None:
        """Append a Ready's entries, then its hard state, with one fdatasync at the end.

        ``entries`` must be consecutive and start at most one past ``last_index``; an
        earlier start replaces the stored suffix (raft truncation). ``must_sync=False``
        (a commit-only hard state change, as raft's Ready.must_sync says) skips the
        fdatasync; the next synced save makes it durable.
        """
        self._check_usable()
        write_hard_state = hard_state is not None and hard_state != self._hard_state
        if not entries and not write_hard_state:
            return
        parts: list[bytes] = []
        if entries:
            first = entries[0].index
            if first > self._last_index + 1 or first < 1:
                raise WALError(
                    f"entry {first} would leave a gap after index {self._last_index} in {self._dir}"
                )
            if entries[-1].index - first != len(entries) - 1:
                raise WALError(f"entries {first}..{entries[-1].index} are not consecutive")
            for entry in entries:
                append_entry_frame(parts, entry)
        if write_hard_state:
            assert hard_state is not None
            parts.append(frame(RecordType.HARD_STATE, encode_hard_state(hard_state)))
        self._append(b"".join(parts), sync=must_sync)
        if entries:
            self._last_index = entries[-1].index
        if write_hard_state:
            assert hard_state is not None
            self._hard_state = hard_state

    def save_snapshot_marker(self, term: int, index: int) -> None:
        """Record (durably) that a snapshot at ``(term, index)`` exists.

        Write the snapshot file first: a marker must never point at a missing file.
        After an installed snapshot beyond the log, the log continues at index + 1.
        """
        self._check_usable()
        self._append(frame(RecordType.SNAPSHOT, encode_snapshot_marker(term, index)), sync=True)
        self._last_index = max(self._last_index, index)

    def release_to(self, index: int) -> list[Path]:
        """Delete segments a restart from a snapshot at ``index`` does not need, keeping
        at least ``max_wals`` segments in all. Returns the files removed.

        Call only once the snapshot at ``index`` is durable (file and marker).
        """
        self._check_usable()
        if self._max_wals <= 0:
            return []
        needed_from = 0
        for i, name in enumerate(self._segments):
            if name.first_index <= index:
                needed_from = i
        count = min(needed_from, len(self._segments) - self._max_wals)
        if count <= 0:
            return []
        removed = []
        try:
            # Oldest first: a crash part-way leaves a contiguous run of segments.
            for name in self._segments[:count]:
                seg_path = self._dir / name.filename
                os.remove(seg_path)
                removed.append(seg_path)
            fsync_dir(self._dir)
        except OSError as exc:
            raise WALError(f"cannot purge WAL segment in {self._dir}: {exc.strerror}") from exc
        finally:
            self._segments = self._segments[len(removed) :]
        logger.info("WAL: purged %d segment(s) up to %s", len(removed), removed[-1].name)
        return removed

    def close(self) -> None:
        """Close the files and release the directory lock. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        os.close(self._fd)
        os.close(self._dir_fd)

    def __enter__(self) -> WAL:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise WALError(f"the WAL in {self._dir} is closed")
        if self._failed is not None:
            raise WALError(
                f"the WAL in {self._dir} is unusable after an earlier error: {self._failed}"
            )

    @property
    def _path(self) -> Path:
        return self._dir / self._segments[-1].filename

    def _append(self, data: bytes, *, sync: bool) -> None:
        # Roll over before the batch so a batch never spans two segments; a segment
        # that holds only its head takes any batch, however large.
        if self._offset + len(data) > self._segment_size_bytes and self._offset > self._head_end:
            self._cut()
        self._write(data)
        if sync:
            self._sync()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        written = 0
        try:
            while written < len(view):
                written += os.pwrite(self._fd, view[written:], self._offset + written)
        except OSError as exc:
            # Take back what did land, so the log ends where the last good save left it
            # (overwriting allocated blocks needs no new space). Should that fail too,
            # the bytes form an unfinished tail that the next open discards.
            with contextlib.suppress(OSError):
                os.pwrite(self._fd, bytes(written), self._offset)
            raise self._fail(exc, self._path) from exc
        self._offset += len(data)

    def _sync(self) -> None:
        started = time.monotonic()
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            # After a failed fsync the page cache may have dropped our pages (Linux):
            # retrying could report success for data that is gone. Stop instead.
            raise self._fail(exc, self._path) from exc
        took_s = time.monotonic() - started
        if took_s > self._slow_fsync_s:
            logger.warning(
                "WAL: slow fdatasync of %s took %.3f s (warning threshold %.1f s); a disk "
                "this slow delays every write and can cost the cluster its leader",
                self._path,
                took_s,
                self._slow_fsync_s,
            )
        if self._fsync_observer is not None:
            self._fsync_observer(took_s)

    def _cut(self) -> None:
        """Seal the current segment and continue in a new one."""
        name = SegmentName(self._segments[-1].seq + 1, self._last_index + 1)
        head = segment_head(self._metadata, name, self._hard_state)
        try:
            # Drop the sealed segment's unused preallocation so it ends at its last record.
            os.ftruncate(self._fd, self._offset)
            os.fdatasync(self._fd)
        except OSError as exc:
            raise self._fail(exc, self._path) from exc
        try:
            fd = create_segment(self._dir, name, head, self._segment_size_bytes)
        except OSError as exc:
            raise self._fail(exc, self._dir / name.filename) from exc
        os.close(self._fd)
        self._fd = fd
        self._segments.append(name)
        self._offset = len(head)
        self._head_end = len(head)
        logger.info("WAL: started segment %s", self._dir / name.filename)

    def _fail(self, exc: OSError, path: Path) -> WALError:
        if exc.errno == errno.ENOSPC:
            text = f"no space left on device writing {path}"
        else:
            text = f"{exc.strerror or exc} (errno {exc.errno}) writing {path}"
        self._failed = text
        logger.error("WAL: %s; refusing further writes", text)
        return WALError(text)
