"""The raft log a member keeps: in memory for the core, on disk in the WAL and snapshot files.

The core reads a ``MemoryStorage``; this module keeps it and the disk in step:

- ``open_or_create`` builds the memory copy at start from the newest snapshot file that
  the WAL vouches for (its marker is committed) plus every WAL entry after it.
- ``persist`` carries out step 1 of a Ready durably: the snapshot file, its WAL marker,
  then entries and hard state in ONE ``save`` (one fdatasync), all off the event loop;
  the memory copy is updated only once the disk is.
- ``maybe_snapshot`` snapshots the application every ``snapshot_count`` applied entries,
  compacts the memory log behind it (keeping ``catch_up_entries`` for slow followers,
  as etcd keeps 5000) and releases WAL segments no restart needs any more.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from kvorum.datadir import DataDir
from kvorum.raft import ConfState, HardState, MemoryStorage, Ready, Snapshot
from kvorum.server import failpoints
from kvorum.snap import Snapshotter
from kvorum.wal import (
    MAX_WALS,
    SEGMENT_SIZE_BYTES,
    SLOW_FSYNC_S,
    WAL,
    AsyncWAL,
    FsyncObserver,
    WALMetadata,
    snapshot_markers,
)

__all__ = [
    "DEFAULT_CATCH_UP_ENTRIES",
    "DEFAULT_SNAPSHOT_COUNT",
    "RaftStorage",
    "StorageOptions",
]

logger = logging.getLogger("kvorum.server.storage")

DEFAULT_SNAPSHOT_COUNT = 100_000  # etcd's --snapshot-count default (3.4)
DEFAULT_CATCH_UP_ENTRIES = 5000  # entries kept behind a snapshot for slow followers


@dataclass(frozen=True, slots=True)
class StorageOptions:
    snapshot_count: int = DEFAULT_SNAPSHOT_COUNT
    catch_up_entries: int = DEFAULT_CATCH_UP_ENTRIES
    segment_size_bytes: int = SEGMENT_SIZE_BYTES
    max_wals: int = MAX_WALS
    slow_fsync_s: float = SLOW_FSYNC_S
    fsync_observer: FsyncObserver | None = None

    def __post_init__(self) -> None:
        if self.snapshot_count <= 0:
            raise ValueError("snapshot_count must be > 0")
        if self.catch_up_entries < 0:
            raise ValueError("catch_up_entries must be >= 0")


class RaftStorage:
    """One member's raft log: ``memory`` for the core, the WAL and snapshots on disk."""

    def __init__(
        self,
        memory: MemoryStorage,
        wal: AsyncWAL,
        snapshotter: Snapshotter,
        options: StorageOptions,
        *,
        created: bool,
    ) -> None:
        self.memory = memory
        self.wal = wal
        self.snapshotter = snapshotter
        self.options = options
        self.created = created  # True when this start made the data directory
        snap = memory.snapshot()
        # Index of the newest snapshot on disk (file and marker both durable).
        self._snapshot_index = snap.metadata.index

    # --- start --------------------------------------------------------------------------

    @classmethod
    def open_or_create(
        cls,
        data_dir: DataDir,
        member_id: int,
        cluster_id: int,
        initial_voters: Sequence[int],
        options: StorageOptions | None = None,
    ) -> RaftStorage:
        """Open the member's log in ``data_dir``, or start a new one there.

        Blocking (reads every WAL segment after the snapshot); call it before serving.
        A new log starts with ``initial_voters`` as its membership; a restart takes the
        membership from the snapshot, or from ``initial_voters`` when there is none yet
        (the conf changes committed since are replayed through the log).
        """
        opts = options if options is not None else StorageOptions()
        voters = ConfState(voters=tuple(sorted(set(initial_voters))))
        snapshotter = Snapshotter(data_dir.snap_dir)
        if not data_dir.exists():
            data_dir.create()
            wal = WAL.create(
                data_dir.wal_dir,
                WALMetadata(member_id, cluster_id),
                segment_size_bytes=opts.segment_size_bytes,
                max_wals=opts.max_wals,
                slow_fsync_s=opts.slow_fsync_s,
                fsync_observer=opts.fsync_observer,
            )
            logger.info("raft storage: new log for member %x in %s", member_id, data_dir.path)
            return cls(MemoryStorage(voters), AsyncWAL(wal), snapshotter, opts, created=True)

        data_dir.check_identity(member_id, cluster_id)
        markers = set(snapshot_markers(data_dir.wal_dir))
        snap = snapshotter.load(acceptable=markers)
        from_snapshot = (0, 0) if snap is None else (snap.metadata.term, snap.metadata.index)
        contents = WAL.open(
            data_dir.wal_dir,
            from_snapshot,
            segment_size_bytes=opts.segment_size_bytes,
            max_wals=opts.max_wals,
            slow_fsync_s=opts.slow_fsync_s,
            fsync_observer=opts.fsync_observer,
        )
        memory = MemoryStorage(voters)
        if snap is not None:
            memory.apply_snapshot(snap)
        memory.append(contents.entries)
        memory.set_hard_state(contents.hard_state)
        hs = contents.hard_state
        logger.info(
            "raft storage: member %x restarting from snapshot index %d with %d entries after it "
            "(term %d, commit %d)",
            member_id,
            from_snapshot[1],
            len(contents.entries),
            hs.term,
            hs.commit,
        )
        return cls(memory, AsyncWAL(contents.wal), snapshotter, opts, created=False)

    # --- queries ------------------------------------------------------------------------

    @property
    def snapshot_index(self) -> int:
        """Index of the newest durable snapshot (0 if none)."""
        return self._snapshot_index

    def snapshot(self) -> Snapshot:
        return self.memory.snapshot()

    def hard_state(self) -> HardState:
        return self.memory.hard_state()

    # --- Ready step 1 -------------------------------------------------------------------

    async def persist(self, rd: Ready) -> None:
        """Make ``rd``'s snapshot, entries and hard state durable, then visible to the core.

        Order: snapshot file, its WAL marker (a marker must never name a missing file, and
        entries after an installed snapshot continue the log at its index + 1), then
        entries and hard state in one synced save.
        """
        snap = rd.snapshot
        if not snap.is_empty():
            await asyncio.to_thread(self.snapshotter.save, snap)
            await self.wal.save_snapshot_marker(snap.metadata.term, snap.metadata.index)
        if rd.entries or rd.hard_state is not None:
            failpoints.hit("before-wal-write")
            await self.wal.save(rd.hard_state, rd.entries, must_sync=rd.must_sync)
        # Durable: now the core may read it from storage.
        if not snap.is_empty():
            self.memory.apply_snapshot(snap)
            self._snapshot_index = snap.metadata.index
        if rd.entries:
            self.memory.append(rd.entries)
        if rd.hard_state is not None:
            self.memory.set_hard_state(rd.hard_state)

    # --- snapshots and compaction ---------------------------------------------------------

    def snapshot_due(self, applied_index: int) -> bool:
        return applied_index - self._snapshot_index >= self.options.snapshot_count

    async def create_snapshot(
        self,
        applied_index: int,
        conf_state: ConfState,
        data: Callable[[], bytes | Awaitable[bytes]],
    ) -> Snapshot:
        """Snapshot the application at ``applied_index``, compact the log, release the WAL.

        ``data()`` must return the application's state as of exactly ``applied_index``, or
        an awaitable of it (a large state copied off the event loop).
        """
        produced = data()
        state = await produced if inspect.isawaitable(produced) else produced
        snap = self.memory.create_snapshot(applied_index, conf_state, state)
        await asyncio.to_thread(self.snapshotter.save, snap)
        await self.wal.save_snapshot_marker(snap.metadata.term, snap.metadata.index)
        self._snapshot_index = applied_index
        compact_to = applied_index - self.options.catch_up_entries
        if compact_to >= self.memory.first_index():
            self.memory.compact(compact_to)
        # Both the file and its marker are durable: older WAL segments may go.
        released = await self.wal.release_to(applied_index)
        logger.info(
            "raft storage: snapshot at index %d (term %d); log compacted to %d; %d WAL "
            "segment(s) released",
            applied_index,
            snap.metadata.term,
            self.memory.first_index() - 1,
            len(released),
        )
        return snap

    async def close(self) -> None:
        await self.wal.close()
