"""Segment names and the few file-system operations the WAL needs done carefully."""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

SEGMENT_SUFFIX = ".wal"
TEMP_SUFFIX = ".tmp"
FILE_MODE = 0o600  # like etcd: only the member's user may read the log
DIR_MODE = 0o700

_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.wal$")

# posix_fallocate reports these when the file system cannot preallocate; we then
# write without preallocation (slower fsyncs, same correctness).
_NO_FALLOCATE = frozenset({errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS})


@dataclass(frozen=True, slots=True)
class SegmentName:
    """``<seq:016x>-<first_index:016x>.wal``: seq counts segments from 0; first_index is
    the log's last index + 1 when the segment was started (0 for the first segment)."""

    seq: int
    first_index: int

    @property
    def filename(self) -> str:
        return f"{self.seq:016x}-{self.first_index:016x}{SEGMENT_SUFFIX}"

    @classmethod
    def parse(cls, filename: str) -> SegmentName | None:
        match = _NAME.match(filename)
        if match is None:
            return None
        return cls(int(match.group(1), 16), int(match.group(2), 16))


def list_segments(wal_dir: Path) -> list[SegmentName]:
    """Segment files in ``wal_dir`` ordered by sequence number (other files ignored)."""
    names = []
    for filename in os.listdir(wal_dir):
        name = SegmentName.parse(filename)
        if name is not None:
            names.append(name)
    names.sort(key=lambda n: n.seq)
    return names


def fsync_dir(path: Path) -> None:
    """Make a create, rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def preallocate(fd: int, size_bytes: int) -> bool:
    """Reserve ``size_bytes`` for the file; False if the file system cannot.

    Preallocation keeps later fdatasyncs from having to allocate blocks, and makes a
    full disk show up when a segment is created rather than in the middle of a batch.
    ENOSPC is raised to the caller.
    """
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is None:
        return False
    try:
        fallocate(fd, 0, size_bytes)
    except OSError as exc:
        if exc.errno in _NO_FALLOCATE:
            return False
        raise
    return True


def make_dir(path: Path) -> None:
    """Create ``path`` (and parents) with mode 0700, then make the creation durable."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        os.mkdir(directory, DIR_MODE)
        fsync_dir(directory.parent)
