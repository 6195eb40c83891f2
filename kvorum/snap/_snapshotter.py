"""Raft snapshot files: ``<term:016x>-<index:016x>.snap`` in ``member/snap``.

Each file holds a raft ``Snapshot``: its metadata (index, term, membership) and its
``data``, behind a magic, a format version and a CRC. The data is small: the member's
application state lives in the backend database (``member/snap/db``), which the server
streams to a lagging follower separately; it is never copied into these files.

File layout::

    8s  magic b"KVORUMSN"
    u32 format version
    u32 CRC-32 of everything after this header
    u64 index, u64 term, u32 voter count, u32 learner count
    u64 for each voter, then u64 for each learner
    data (the rest of the file)
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import struct
import zlib
from collections.abc import Collection
from pathlib import Path

from kvorum.raft.types import ConfState, Snapshot, SnapshotMetadata

logger = logging.getLogger("kvorum.snap")

MAX_SNAPSHOTS = 5  # newest files kept; 0 keeps all (as etcd's --max-snapshots)
SNAP_SUFFIX = ".snap"
BROKEN_SUFFIX = ".broken"
TEMP_SUFFIX = ".tmp"
FILE_MODE = 0o600
DIR_MODE = 0o700
MAGIC = b"KVORUMSN"
FORMAT_VERSION = 1

_HEADER = struct.Struct("<8sII")
_META = struct.Struct("<QQII")
_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.snap$")


class SnapshotError(Exception):
    """A snapshot file could not be written or read; the text names the file."""


def snap_filename(term: int, index: int) -> str:
    return f"{term:016x}-{index:016x}{SNAP_SUFFIX}"


def encode(snapshot: Snapshot) -> bytes:
    meta = snapshot.metadata
    voters, learners = meta.conf_state.voters, meta.conf_state.learners
    body = b"".join(
        (
            _META.pack(meta.index, meta.term, len(voters), len(learners)),
            struct.pack(f"<{len(voters)}Q", *voters),
            struct.pack(f"<{len(learners)}Q", *learners),
            snapshot.data,
        )
    )
    return _HEADER.pack(MAGIC, FORMAT_VERSION, zlib.crc32(body)) + body


def decode(raw: bytes) -> Snapshot:
    """Parse and verify one file's bytes; ValueError says what is wrong."""
    if len(raw) < _HEADER.size + _META.size:
        raise ValueError(f"{len(raw)} bytes is too short for a snapshot")
    magic, version, crc = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise ValueError(f"magic is {magic!r}, expected {MAGIC!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"format version {version} is newer than this build's {FORMAT_VERSION}")
    body = memoryview(raw)[_HEADER.size :]
    if zlib.crc32(body) != crc:
        raise ValueError("CRC mismatch")
    index, term, n_voters, n_learners = _META.unpack_from(body)
    ids_end = _META.size + 8 * (n_voters + n_learners)
    if ids_end > len(body):
        raise ValueError("membership lists run past the end of the file")
    ids = struct.unpack_from(f"<{n_voters + n_learners}Q", body, _META.size)
    conf_state = ConfState(voters=tuple(ids[:n_voters]), learners=tuple(ids[n_voters:]))
    metadata = SnapshotMetadata(conf_state=conf_state, index=index, term=term)
    return Snapshot(data=bytes(body[ids_end:]), metadata=metadata)


class Snapshotter:
    """Saves and loads raft snapshot files in one directory."""

    def __init__(self, snap_dir: str | os.PathLike[str], *, max_snapshots: int = MAX_SNAPSHOTS):
        self._dir = Path(snap_dir)
        self._max_snapshots = max_snapshots

    @property
    def snap_dir(self) -> Path:
        return self._dir

    def save(self, snapshot: Snapshot) -> Path | None:
        """Write ``snapshot`` durably (temp file, fsync, rename, directory fsync), then
        delete the oldest files beyond ``max_snapshots``. An empty snapshot is not saved.
        """
        if snapshot.is_empty():
            return None
        meta = snapshot.metadata
        final = self._dir / snap_filename(meta.term, meta.index)
        temp = final.with_name(final.name + TEMP_SUFFIX)
        raw = encode(snapshot)
        try:
            self._dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
            try:
                view = memoryview(raw)
                written = 0
                while written < len(view):
                    written += os.write(fd, view[written:])
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temp, final)
            _fsync_dir(self._dir)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise SnapshotError(f"cannot write snapshot {final}: {exc.strerror}") from exc
        self._purge()
        return final

    def load(self, acceptable: Collection[tuple[int, int]] | None = None) -> Snapshot | None:
        """The newest snapshot that verifies, or None if there is none.

        ``acceptable`` limits the choice to these ``(term, index)`` pairs (the WAL's
        snapshot markers). A file that fails to verify is renamed ``*.broken`` and
        logged, and the next older one is tried.
        """
        for term, index, path in self._list():
            if acceptable is not None and (term, index) not in acceptable:
                continue
            try:
                snapshot = decode(path.read_bytes())
                meta = snapshot.metadata
                if (meta.term, meta.index) != (term, index):
                    raise ValueError(f"it holds term {meta.term}, index {meta.index}")
            except (OSError, ValueError) as exc:
                self._set_aside(path, str(exc))
                continue
            return snapshot
        return None

    def snapshot_paths(self) -> list[Path]:
        """Snapshot files, newest first."""
        return [path for _, _, path in self._list()]

    def _list(self) -> list[tuple[int, int, Path]]:
        try:
            filenames = os.listdir(self._dir)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SnapshotError(f"cannot list snapshot directory {self._dir}: {exc}") from exc
        found = []
        for filename in filenames:
            match = _NAME.match(filename)
            if match is not None:
                term, index = int(match.group(1), 16), int(match.group(2), 16)
                found.append((term, index, self._dir / filename))
        # Newest first: the highest index holds the most state; the term breaks ties.
        found.sort(key=lambda t: (t[1], t[0]), reverse=True)
        return found

    def _set_aside(self, path: Path, reason: str) -> None:
        broken = path.with_name(path.name + BROKEN_SUFFIX)
        logger.warning("snap: %s is unusable (%s); renamed to %s", path, reason, broken.name)
        try:
            os.rename(path, broken)
            _fsync_dir(self._dir)
        except OSError as exc:
            # Still skip it: an older valid snapshot is better than no start at all.
            logger.error("snap: cannot rename %s to %s: %s", path, broken.name, exc.strerror)

    def _purge(self) -> None:
        if self._max_snapshots <= 0:
            return
        stale = self._list()[self._max_snapshots :]
        try:
            for _, _, path in stale:
                os.unlink(path)
            for filename in os.listdir(self._dir):
                if filename.endswith(SNAP_SUFFIX + TEMP_SUFFIX):
                    os.unlink(self._dir / filename)  # left by a crash during save
            if stale:
                _fsync_dir(self._dir)
        except OSError as exc:
            raise SnapshotError(f"cannot purge old snapshots in {self._dir}: {exc}") from exc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
