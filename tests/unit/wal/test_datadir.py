"""The data directory: layout, creation, and refusing data that is not this member's."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from kvorum.datadir import DataDir, DataDirError
from kvorum.wal import WAL, SegmentName, WALMetadata


def _init(data_dir: DataDir, member_id: int = 0xAB, cluster_id: int = 0xCD) -> None:
    data_dir.create()
    WAL.create(data_dir.wal_dir, WALMetadata(member_id, cluster_id)).close()


def test_layout_is_etcds(tmp_path: Path) -> None:
    data_dir = DataDir(tmp_path / "default.etcd")
    assert data_dir.member_dir == tmp_path / "default.etcd" / "member"
    assert data_dir.wal_dir == tmp_path / "default.etcd" / "member" / "wal"
    assert data_dir.snap_dir == tmp_path / "default.etcd" / "member" / "snap"
    assert data_dir.backend_path == tmp_path / "default.etcd" / "member" / "snap" / "db"
    separate = DataDir(tmp_path / "d", wal_dir=tmp_path / "fast-disk" / "wal")
    assert separate.wal_dir == tmp_path / "fast-disk" / "wal"
    assert separate.wal_dir_is_separate and not data_dir.wal_dir_is_separate


def test_create_makes_private_directories(tmp_path: Path) -> None:
    data_dir = DataDir(tmp_path / "a" / "b", wal_dir=tmp_path / "w")
    assert not data_dir.exists()
    data_dir.create()
    for directory in (data_dir.path, data_dir.member_dir, data_dir.snap_dir, data_dir.wal_dir):
        assert directory.stat().st_mode & 0o777 == 0o700, directory
    assert data_dir.exists() and not data_dir.is_kvorum()  # no WAL yet
    WAL.create(data_dir.wal_dir, WALMetadata(1, 2)).close()
    assert data_dir.is_kvorum()
    with pytest.raises(DataDirError, match="already holds a kvorum member"):
        data_dir.create()


def test_empty_directory_and_lost_found_count_as_new(tmp_path: Path) -> None:
    (tmp_path / "mnt" / "lost+found").mkdir(parents=True)
    data_dir = DataDir(tmp_path / "mnt")
    assert not data_dir.exists()
    _init(data_dir)
    assert data_dir.check_identity(0xAB, 0xCD) == WALMetadata(0xAB, 0xCD)


def test_identity_mismatch_is_refused_naming_path_and_ids(tmp_path: Path) -> None:
    data_dir = DataDir(tmp_path / "node1")
    _init(data_dir, member_id=0x8E9E05C52164694D, cluster_id=0xCDF818194E3A8C32)
    assert data_dir.check_identity(None, None).member_id == 0x8E9E05C52164694D
    message = (
        f"data directory {data_dir.path} belongs to member 8e9e05c52164694d of cluster "
        "cdf818194e3a8c32, not to member 1 of cluster cdf818194e3a8c32"
    )
    with pytest.raises(DataDirError, match=re.escape(message)):
        data_dir.check_identity(0x1, 0xCDF818194E3A8C32)
    with pytest.raises(DataDirError, match="of cluster 99; refusing to start"):
        data_dir.check_identity(0x8E9E05C52164694D, 0x99)


def test_random_files_are_not_a_kvorum_data_dir(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    data_dir = DataDir(tmp_path / "photos")
    assert data_dir.exists() and not data_dir.is_kvorum()
    with pytest.raises(DataDirError, match=f"{data_dir.path} is not a kvorum data directory"):
        data_dir.check_identity(1, 2)
    with pytest.raises(DataDirError, match="is not empty and is not a kvorum data directory"):
        data_dir.create()
    assert sorted(os.listdir(data_dir.path)) == ["cat.jpg"]  # untouched


def test_etcd_data_dir_is_refused_with_a_hint(tmp_path: Path) -> None:
    data_dir = DataDir(tmp_path / "etcd-data")
    data_dir.wal_dir.mkdir(parents=True)
    data_dir.snap_dir.mkdir(parents=True)
    data_dir.backend_path.write_bytes(b"bolt db")
    # etcd frames a protobuf Record (type=crc) behind a u64 length: this is its first record.
    segment = data_dir.wal_dir / SegmentName(0, 0).filename
    segment.write_bytes(bytes.fromhex("040000000000008408041000") + bytes(64))
    with pytest.raises(DataDirError) as caught:
        data_dir.check_identity(1, 2)
    text = str(caught.value)
    assert text.startswith(f"{data_dir.path} is not a kvorum data directory: {segment}")
    assert "looks like an etcd data directory" in text
    with pytest.raises(DataDirError, match=f"has a database at {data_dir.backend_path}"):
        segment.unlink()
        data_dir.identity()


def test_missing_directory_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DataDirError, match=f"data directory {tmp_path / 'x'} does not exist"):
        DataDir(tmp_path / "x").identity()
    (tmp_path / "file").write_text("hi")
    with pytest.raises(DataDirError, match="is not a directory"):
        DataDir(tmp_path / "file").identity()


def test_wide_permissions_are_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = DataDir(tmp_path / "d")
    _init(data_dir)
    os.chmod(data_dir.path, 0o755)
    data_dir.identity()
    assert "has mode 755; 700 keeps other users from reading it" in caplog.text
