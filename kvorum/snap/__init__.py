"""Raft snapshot files on disk (metadata and small data; the backend db travels apart)."""

from kvorum.snap._snapshotter import (
    MAX_SNAPSHOTS,
    SnapshotError,
    Snapshotter,
    decode,
    encode,
    snap_filename,
)

__all__ = ["MAX_SNAPSHOTS", "SnapshotError", "Snapshotter", "decode", "encode", "snap_filename"]
