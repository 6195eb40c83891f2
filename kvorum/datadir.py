"""The data directory: where a member keeps its log, snapshots and backend database.

Layout, as etcd's::

    <data-dir>/member/wal/         WAL segments (or --wal-dir, if given)
    <data-dir>/member/snap/        raft snapshot files <term>-<index>.snap
    <data-dir>/member/snap/db      the backend database (owned by kvorum.backend)

The identity of a data directory is the metadata record that opens its WAL (member id,
cluster id, kvorum's magic and format version). A member refuses to start on a
directory whose identity is not its own, or that is not a kvorum directory at all:
starting on the wrong data is how acknowledged writes get lost.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from kvorum.wal import NotAKvorumWALError, WALError, WALMetadata, read_metadata
from kvorum.wal._files import DIR_MODE, list_segments, make_dir

logger = logging.getLogger("kvorum.datadir")

MEMBER_DIR = "member"
WAL_DIR = "wal"
SNAP_DIR = "snap"
BACKEND_FILE = "db"
# A freshly made file system's root holds lost+found; it still counts as empty.
# "fixtures": --auto-tls/--peer-auto-tls certificates, made before the member decides
# whether it is new (they live in the data dir, as etcd's do, and are not member state).
_IGNORED_ENTRIES = frozenset({"lost+found", "fixtures"})


class DataDirError(Exception):
    """The data directory cannot be used; the text names it and says why."""


class DataDir:
    """Paths of one member's data directory, and the checks made before using it."""

    def __init__(
        self, path: str | os.PathLike[str], wal_dir: str | os.PathLike[str] | None = None
    ) -> None:
        self.path = Path(path)
        self.member_dir = self.path / MEMBER_DIR
        self.snap_dir = self.member_dir / SNAP_DIR
        self.backend_path = self.snap_dir / BACKEND_FILE
        self.wal_dir = Path(wal_dir) if wal_dir is not None else self.member_dir / WAL_DIR
        self.wal_dir_is_separate = wal_dir is not None

    def __repr__(self) -> str:
        return f"DataDir({str(self.path)!r}, wal_dir={str(self.wal_dir)!r})"

    def exists(self) -> bool:
        """True if anything is already there (the data dir is not empty, or the WAL dir
        holds segments); False for a missing or empty directory."""
        if self.path.exists() and not (self.path.is_dir() and _is_empty(self.path)):
            return True
        return self._has_wal()

    def is_kvorum(self) -> bool:
        """True if the WAL's first record is kvorum's metadata."""
        try:
            self.identity()
        except DataDirError:
            return False
        return True

    def create(self) -> None:
        """Make the directories (mode 0700) for a new member; refuse if anything is there."""
        if self.exists():
            if self.is_kvorum():
                raise DataDirError(f"data directory {self.path} already holds a kvorum member")
            raise DataDirError(
                f"data directory {self.path} is not empty and is not a kvorum data directory; "
                "refusing to initialise a new member over its files"
            )
        try:
            for directory in (self.path, self.member_dir, self.snap_dir, self.wal_dir):
                make_dir(directory)
                os.chmod(directory, DIR_MODE)  # in case it existed, empty, with a wider mode
        except OSError as exc:
            raise DataDirError(f"cannot create data directory {self.path}: {exc}") from exc

    def identity(self) -> WALMetadata:
        """Who this data directory belongs to; DataDirError if it is not kvorum's."""
        if not self.path.exists():
            raise DataDirError(f"data directory {self.path} does not exist")
        if not self.path.is_dir():
            raise DataDirError(f"data directory {self.path} is not a directory")
        if not self._has_wal():
            if self.backend_path.exists():
                why = f"it has a database at {self.backend_path} but no WAL in {self.wal_dir}"
            else:
                why = f"it has no WAL segments in {self.wal_dir}"
            raise DataDirError(f"{self.path} is not a kvorum data directory: {why}")
        try:
            metadata = read_metadata(self.wal_dir)
        except NotAKvorumWALError as exc:
            hint = ""
            if _looks_like_etcd_wal(exc.path):
                hint = (
                    "; it looks like an etcd data directory, and kvorum cannot use etcd's "
                    "on-disk files (move them away, or migrate through an etcd snapshot)"
                )
            raise DataDirError(f"{self.path} is not a kvorum data directory: {exc}{hint}") from exc
        except WALError as exc:
            text = f"cannot read the identity of data directory {self.path}: {exc}"
            raise DataDirError(text) from exc
        self._warn_on_wide_permissions()
        return metadata

    def check_identity(self, member_id: int | None, cluster_id: int | None) -> WALMetadata:
        """The directory's identity, if it matches; None skips checking that id."""
        metadata = self.identity()
        if (member_id is not None and member_id != metadata.member_id) or (
            cluster_id is not None and cluster_id != metadata.cluster_id
        ):
            expected_member = f"{member_id:x}" if member_id is not None else "any"
            expected_cluster = f"{cluster_id:x}" if cluster_id is not None else "any"
            raise DataDirError(
                f"data directory {self.path} belongs to member {metadata.member_id:x} of "
                f"cluster {metadata.cluster_id:x}, not to member {expected_member} of cluster "
                f"{expected_cluster}; refusing to start on another member's data (point "
                "--data-dir elsewhere, or remove it to join as a new member)"
            )
        return metadata

    def _has_wal(self) -> bool:
        try:
            return bool(list_segments(self.wal_dir))
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise DataDirError(f"cannot read WAL directory {self.wal_dir}: {exc}") from exc

    def _warn_on_wide_permissions(self) -> None:
        for directory in (self.path, self.wal_dir):
            mode = stat.S_IMODE(directory.stat().st_mode)
            if mode & 0o077:
                logger.warning(
                    "data directory %s has mode %o; 700 keeps other users from reading it",
                    directory,
                    mode,
                )


def _is_empty(path: Path) -> bool:
    return all(entry in _IGNORED_ENTRIES for entry in os.listdir(path))


def _looks_like_etcd_wal(path: Path) -> bool:
    """etcd frames a record with a u64 length, then a protobuf Record whose first field
    (type, a varint) has tag byte 0x08."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8] == 0x08
