"""RaftStorage: what persist writes is what a restart reads back, snapshots bound the WAL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kvorum.datadir import DataDir, DataDirError
from kvorum.raft import (
    ConfState,
    Entry,
    HardState,
    Ready,
    Snapshot,
    SnapshotMetadata,
)
from kvorum.server import RaftStorage, StorageOptions
from kvorum.snap import Snapshotter

MEMBER = 0xA1
CLUSTER = 0xC1
VOTERS = (0xA1, 0xA2, 0xA3)


def entries(lo: int, hi: int, term: int = 1) -> tuple[Entry, ...]:
    return tuple(Entry(term, i, data=b"e%d" % i) for i in range(lo, hi + 1))


def open_storage(path: Path, options: StorageOptions | None = None) -> RaftStorage:
    return RaftStorage.open_or_create(DataDir(path), MEMBER, CLUSTER, VOTERS, options)


def test_new_storage_starts_empty_with_the_initial_voters(tmp_path: Path) -> None:
    storage = open_storage(tmp_path / "d")
    try:
        assert storage.created
        hs, conf = storage.memory.initial_state()
        assert hs.is_empty()
        assert conf == ConfState(voters=VOTERS)
        assert storage.memory.last_index() == 0
    finally:
        storage.wal.wal.close()


def test_persisted_entries_and_hard_state_survive_a_restart(tmp_path: Path) -> None:
    async def main() -> None:
        storage = open_storage(tmp_path / "d")
        await storage.persist(Ready(entries=entries(1, 5), hard_state=HardState(1, MEMBER, 3)))
        # Raft truncation: a new term's entries replace the suffix from index 4.
        await storage.persist(Ready(entries=entries(4, 6, term=2), hard_state=HardState(2, 0, 5)))
        assert storage.memory.last_index() == 6
        await storage.close()

        again = open_storage(tmp_path / "d")
        assert not again.created
        assert again.hard_state() == HardState(2, 0, 5)
        got = again.memory.entries(1, 7)
        assert [(e.index, e.term) for e in got] == [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 2)]
        await again.close()

    asyncio.run(main())


def test_installed_snapshot_is_saved_before_its_marker_and_restart_uses_it(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        storage = open_storage(tmp_path / "d")
        await storage.persist(Ready(entries=entries(1, 3), hard_state=HardState(1, 0, 3)))
        # A follower far behind gets the leader's snapshot at 100, then entries after it.
        conf = ConfState(voters=VOTERS)
        snap = Snapshot(b"state@100", SnapshotMetadata(conf, index=100, term=3))
        await storage.persist(
            Ready(snapshot=snap, entries=entries(101, 102, 3), hard_state=HardState(3, 0, 101))
        )
        assert storage.snapshot_index == 100
        assert storage.memory.first_index() == 101
        await storage.close()

        again = open_storage(tmp_path / "d")
        assert again.snapshot() == snap
        assert again.memory.first_index() == 101 and again.memory.last_index() == 102
        assert again.hard_state() == HardState(3, 0, 101)
        await again.close()

    asyncio.run(main())


def test_snapshot_compacts_memory_keeps_a_tail_and_releases_wal_segments(tmp_path: Path) -> None:
    opts = StorageOptions(
        snapshot_count=100, catch_up_entries=20, segment_size_bytes=4096, max_wals=1
    )

    async def main() -> None:
        storage = open_storage(tmp_path / "d", opts)
        for lo in range(1, 301, 50):
            batch = entries(lo, lo + 49)
            await storage.persist(Ready(entries=batch, hard_state=HardState(1, 0, lo + 49)))
        segments_before = len(storage.wal.wal.segment_paths)
        assert segments_before > 2
        assert not storage.snapshot_due(99) and storage.snapshot_due(100)
        snap = await storage.create_snapshot(250, ConfState(voters=VOTERS), lambda: b"at 250")
        assert snap.metadata.index == 250 and snap.metadata.term == 1
        # Entries before 250 - 20 are gone from memory; the tail serves slow followers.
        assert storage.memory.first_index() == 231
        assert len(storage.wal.wal.segment_paths) < segments_before
        await storage.close()

        again = open_storage(tmp_path / "d", opts)
        assert again.snapshot().data == b"at 250"
        assert again.memory.first_index() == 251 and again.memory.last_index() == 300
        await again.close()

    asyncio.run(main())


def test_snapshot_file_without_a_wal_marker_is_not_trusted(tmp_path: Path) -> None:
    async def main() -> None:
        storage = open_storage(tmp_path / "d")
        await storage.persist(Ready(entries=entries(1, 10), hard_state=HardState(1, 0, 10)))
        await storage.create_snapshot(5, ConfState(voters=VOTERS), lambda: b"at 5")
        await storage.close()
        # A crash between writing a snapshot file and its marker leaves this behind.
        orphan = Snapshot(b"at 8", SnapshotMetadata(ConfState(voters=VOTERS), index=8, term=1))
        Snapshotter(DataDir(tmp_path / "d").snap_dir).save(orphan)

        again = open_storage(tmp_path / "d")
        assert again.snapshot().data == b"at 5"
        assert again.memory.last_index() == 10
        await again.close()

    asyncio.run(main())


def test_another_members_data_dir_is_refused(tmp_path: Path) -> None:
    storage = open_storage(tmp_path / "d")
    storage.wal.wal.close()
    with pytest.raises(DataDirError, match="belongs to member a1"):
        RaftStorage.open_or_create(DataDir(tmp_path / "d"), 0xB2, CLUSTER, VOTERS)
