"""Raft snapshot files: durable save, newest-valid load, keep and broken rules."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kvorum.raft.types import ConfState, Snapshot, SnapshotMetadata
from kvorum.snap import Snapshotter, decode, encode, snap_filename


def _snapshot(term: int, index: int, data: bytes = b"state") -> Snapshot:
    conf = ConfState(voters=(1, 2, 3), learners=(9,))
    return Snapshot(data=data + b"@%d" % index, metadata=SnapshotMetadata(conf, index, term))


def test_round_trip_and_file_name(tmp_path: Path) -> None:
    snapshotter = Snapshotter(tmp_path / "snap")
    snapshot = _snapshot(term=0x1F, index=0x2A0)
    path = snapshotter.save(snapshot)
    assert path == tmp_path / "snap" / "000000000000001f-00000000000002a0.snap"
    assert path.name == snap_filename(0x1F, 0x2A0)
    assert path.stat().st_mode & 0o777 == 0o600
    assert snapshotter.load() == snapshot
    assert decode(encode(snapshot)) == snapshot
    empty_conf = Snapshot(b"", SnapshotMetadata(ConfState(), 5, 1))
    assert decode(encode(empty_conf)) == empty_conf


def test_empty_snapshot_is_not_saved_and_empty_dir_loads_none(tmp_path: Path) -> None:
    snapshotter = Snapshotter(tmp_path / "snap")
    assert snapshotter.load() is None
    assert snapshotter.save(Snapshot()) is None
    assert snapshotter.load() is None


def test_load_returns_the_newest(tmp_path: Path) -> None:
    snapshotter = Snapshotter(tmp_path)
    for term, index in [(1, 10), (2, 300), (2, 40)]:
        snapshotter.save(_snapshot(term, index))
    loaded = snapshotter.load()
    assert loaded is not None and loaded.metadata.index == 300


def test_corrupt_newest_is_set_aside_and_the_next_older_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snapshotter = Snapshotter(tmp_path)
    snapshotter.save(_snapshot(1, 10))
    snapshotter.save(_snapshot(1, 20))
    newest = snapshotter.save(_snapshot(1, 30))
    assert newest is not None
    raw = bytearray(newest.read_bytes())
    raw[-1] ^= 0x01
    newest.write_bytes(bytes(raw))
    (tmp_path / snap_filename(1, 25)).write_bytes(b"")  # an empty file is broken too
    with caplog.at_level(logging.WARNING, logger="kvorum.snap"):
        loaded = snapshotter.load()
    assert loaded == _snapshot(1, 20)
    assert not newest.exists()
    assert (tmp_path / (newest.name + ".broken")).read_bytes() == bytes(raw)
    assert (tmp_path / (snap_filename(1, 25) + ".broken")).exists()
    assert f"{newest} is unusable (CRC mismatch)" in caplog.text


def test_all_broken_loads_none(tmp_path: Path) -> None:
    (tmp_path / snap_filename(1, 5)).write_bytes(b"not a snapshot at all, not at all")
    assert Snapshotter(tmp_path).load() is None
    assert [p.name for p in tmp_path.iterdir()] == [snap_filename(1, 5) + ".broken"]


def test_file_whose_content_disagrees_with_its_name_is_broken(tmp_path: Path) -> None:
    snapshotter = Snapshotter(tmp_path)
    good = snapshotter.save(_snapshot(1, 7))
    assert good is not None
    (tmp_path / snap_filename(1, 8)).write_bytes(good.read_bytes())
    assert snapshotter.load() == _snapshot(1, 7)
    assert (tmp_path / (snap_filename(1, 8) + ".broken")).exists()


def test_load_only_among_acceptable(tmp_path: Path) -> None:
    """The member passes the WAL's markers: a file saved just before a crash, whose
    marker never reached the WAL, is skipped (not broken)."""
    snapshotter = Snapshotter(tmp_path)
    snapshotter.save(_snapshot(1, 10))
    snapshotter.save(_snapshot(1, 20))
    assert snapshotter.load(acceptable={(1, 10)}) == _snapshot(1, 10)
    assert snapshotter.load(acceptable=set()) is None
    assert len(snapshotter.snapshot_paths()) == 2


def test_keeps_max_snapshots_newest_and_leaves_other_files(tmp_path: Path) -> None:
    snapshotter = Snapshotter(tmp_path, max_snapshots=3)
    (tmp_path / "db").write_bytes(b"backend")  # member/snap/db lives here too
    (tmp_path / (snap_filename(1, 1) + ".tmp")).write_bytes(b"left by a crash")
    for index in range(1, 8):
        snapshotter.save(_snapshot(1, index * 10))
    assert [p.name for p in snapshotter.snapshot_paths()] == [
        snap_filename(1, 70),
        snap_filename(1, 60),
        snap_filename(1, 50),
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["db", snap_filename(1, 50), snap_filename(1, 60), snap_filename(1, 70)]
    )


def test_max_snapshots_zero_keeps_all(tmp_path: Path) -> None:
    snapshotter = Snapshotter(tmp_path, max_snapshots=0)
    for index in range(1, 9):
        snapshotter.save(_snapshot(1, index))
    assert len(snapshotter.snapshot_paths()) == 8
