"""The LMDB environment under mvcc, lease, auth and membership: one file, named buckets.

Durability model: the raft WAL is the source of truth, so LMDB runs with `sync=False` and
`metasync=False` (a crash may lose the last committed batches, never tear them: LMDB's
copy-on-write meta flip keeps the file consistent). The server calls `sync()` before it
releases WAL segments that the backend's applied index no longer needs.

The map is reserved sparse (`map_size_bytes`, default 8 GiB): the file only grows as pages are
written, and LMDB needs the reservation to avoid remapping.

Restore (a follower catching up through a leader's snapshot): the received database is written
to a file next to ours with `write_file_durably` (fsync'd), then `restore_from_file` closes the
environment, renames that file over ours (atomic), fsyncs the directory and reopens. A crash at
any point leaves either the whole old file or the whole new one at `path`, never a mix. Bucket
handles are re-opened, so holders must fetch them through `db()` rather than keep them.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING

import lmdb

from kvorum.backend import schema
from kvorum.backend._batch import (
    DEFAULT_MAX_BATCH_COUNT,
    DEFAULT_MAX_BATCH_INTERVAL_S,
    BatchTx,
)

if TYPE_CHECKING:
    from lmdb import _Database

DEFAULT_MAP_SIZE_BYTES = 8 << 30
#: LMDB reader slots: one per concurrent read transaction (snapshot senders, readers).
DEFAULT_MAX_READERS = 126
SNAPSHOT_CHUNK_BYTES = 1 << 20

_U64X2 = struct.Struct(">QQ")


class Backend:
    """One LMDB environment file holding every bucket in `schema.ALL_BUCKETS`.

    Threads: the batch belongs to the thread that writes first (the apply thread); `commit`,
    `sync`, `defragment` and `close` must run there. Any thread may `view()` or `snapshot()`.
    """

    def __init__(
        self,
        path: str,
        *,
        map_size_bytes: int = DEFAULT_MAP_SIZE_BYTES,
        max_batch_count: int = DEFAULT_MAX_BATCH_COUNT,
        max_batch_interval_s: float = DEFAULT_MAX_BATCH_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.map_size_bytes = map_size_bytes
        # Held while a copy reads the environment, and while the environment is closed and
        # reopened: a copy running in another thread must never see it closed under it.
        self._swap_lock = threading.Lock()
        self._env = self._open_env()
        self._dbs = self._open_dbs(self._env)
        self.batch = BatchTx(
            lambda: self._env,
            max_batch_count=max_batch_count,
            max_batch_interval_s=max_batch_interval_s,
            clock=clock,
        )

    # --- environment ----------------------------------------------------------------------

    def _open_env(self) -> lmdb.Environment:
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        return lmdb.open(
            self.path,
            subdir=False,
            map_size=self.map_size_bytes,
            max_dbs=len(schema.ALL_BUCKETS) + 2,
            max_readers=DEFAULT_MAX_READERS,
            sync=False,
            metasync=False,
            # readahead hurts random reads once the file is larger than RAM.
            readahead=False,
        )

    @staticmethod
    def _open_dbs(env: lmdb.Environment) -> dict[bytes, _Database]:
        with env.begin(write=True) as txn:
            return {name: env.open_db(name, txn=txn) for name in schema.ALL_BUCKETS}

    def db(self, name: bytes) -> _Database:
        """Handle of the bucket `name` (one of `schema.ALL_BUCKETS`)."""
        return self._dbs[name]

    @property
    def max_key_size(self) -> int:
        """Longest key LMDB accepts in any bucket (511 bytes for the bundled library)."""
        return self._env.max_key_size()

    @contextlib.contextmanager
    def view(self) -> Iterator[lmdb.Transaction[bytes]]:
        """A transaction to read from: the open batch on its own thread, else a read txn."""
        txn = self.batch.open_for_this_thread()
        if txn is not None:
            yield txn
            return
        with self._env.begin(write=False) as ro:
            yield ro

    def close(self) -> None:
        """Commit any pending batch and close the environment."""
        self.batch.commit()
        self._env.close()

    def sync(self) -> None:
        """Commit the pending batch and force everything committed to disk."""
        self.batch.commit()
        self._env.sync(True)

    # --- meta helpers ---------------------------------------------------------------------

    def consistent_index(self) -> tuple[int, int]:
        """(index, term) of the last raft entry whose effects are in the store; (0, 0) if none."""
        with self.view() as txn:
            raw = txn.get(schema.META_CONSISTENT_INDEX, db=self._dbs[schema.META])
        if raw is None:
            return (0, 0)
        index, term = _U64X2.unpack(raw)
        return (index, term)

    def set_consistent_index(self, index: int, term: int) -> None:
        """Record the applied entry in the open batch, next to the data it produced."""
        txn = self.batch.write()
        txn.put(schema.META_CONSISTENT_INDEX, _U64X2.pack(index, term), db=self._dbs[schema.META])

    # --- sizes ----------------------------------------------------------------------------

    def size_bytes(self) -> int:
        """Size of the database file on disk (etcd's `dbSize`)."""
        return os.stat(self.path).st_size

    def size_in_use_bytes(self) -> int:
        """Bytes of pages holding data (etcd's `dbSizeInUse`): excludes free pages."""
        with self.view() as txn:
            main = txn.stat()
            pages = 2 + main["branch_pages"] + main["leaf_pages"] + main["overflow_pages"]
            for db in self._dbs.values():
                st = txn.stat(db)
                pages += st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
        return pages * main["psize"]

    # --- maintenance ----------------------------------------------------------------------

    def defragment(self) -> None:
        """Rewrite the file compactly (free pages dropped) and swap it in.

        The caller must hold no transactions or cursors across this call: the environment is
        closed and reopened.
        """
        self.batch.commit()
        tmp_path = self.path + ".defrag"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        with self._swap_lock:
            self._env.copy(tmp_path, compact=True)
            self._env.close()
            os.replace(tmp_path, self.path)
            self._env = self._open_env()
            self._dbs = self._open_dbs(self._env)

    def restore_from_file(self, source_path: str) -> None:
        """Replace the whole database with the LMDB file at `source_path` and reopen it.

        `source_path` must be on the same file system as `path` (the rename is what makes the
        swap atomic) and is consumed. Uncommitted writes in the batch are dropped: the new
        file supersedes them. As for `defragment`, no transaction or cursor may be open across
        this call, and every cached state above the backend must be reloaded afterwards.
        """
        # Validate before touching our own file: a torn or foreign file must not replace it.
        _check_lmdb_file(source_path)
        _fsync_path(source_path)
        self.batch.abort()
        with self._swap_lock:
            self._env.close()
            os.replace(source_path, self.path)
            _fsync_path(os.path.dirname(os.path.abspath(self.path)))
            self._env = self._open_env()
            self._dbs = self._open_dbs(self._env)

    def snapshot(self, chunk_bytes: int = SNAPSHOT_CHUNK_BYTES) -> Snapshot:
        """A consistent copy of the last committed state, readable as chunks.

        The copy is taken by LMDB under one read transaction, so writers keep going while it
        runs; callers who want the latest applied writes included commit the batch first.
        """
        if chunk_bytes < 1:
            raise ValueError("chunk_bytes must be >= 1")
        directory = os.path.dirname(os.path.abspath(self.path))
        # Ownership passes to the returned Snapshot, which closes it.
        fh = tempfile.TemporaryFile(dir=directory, prefix=".snapshot-")  # noqa: SIM115
        try:
            # compact=True copies under a plain read transaction; the plain copy takes LMDB's
            # writer lock, which deadlocks when this thread holds the open batch.
            with self._swap_lock:
                self._env.copyfd(fh.fileno(), compact=True)
            size = os.fstat(fh.fileno()).st_size
        except BaseException:
            fh.close()
            raise
        return Snapshot(fh, size, chunk_bytes)

    def hash(self) -> int:
        """crc32 over every bucket's keys and values (meta's applied index left out)."""
        crc = 0
        with self.view() as txn:
            for name in schema.ALL_BUCKETS:
                crc = zlib.crc32(name, crc)
                cursor = txn.cursor(db=self._dbs[name])
                for key, value in cursor.iternext():
                    if name == schema.META and key in schema.HASH_IGNORED_META:
                        continue
                    crc = zlib.crc32(key, crc)
                    crc = zlib.crc32(value, crc)
        return crc


def write_file_durably(path: str, chunks: Iterable[bytes | memoryview]) -> int:
    """Write `chunks` to a new file at `path` and fsync it; returns the bytes written.

    Blocking: call it off the event loop. A file left by an earlier, interrupted attempt is
    replaced.
    """
    written = 0
    with open(path, "wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
            written += len(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    return written


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_lmdb_file(path: str) -> None:
    """Open `path` read-only as an LMDB file (raises `lmdb.Error` if it is not one)."""
    env = lmdb.open(
        path, subdir=False, readonly=True, lock=False, max_dbs=len(schema.ALL_BUCKETS) + 2
    )
    env.close()


class Snapshot:
    """A point-in-time copy of the database held in an unlinked temp file."""

    def __init__(self, fh: IO[bytes], size_bytes: int, chunk_bytes: int) -> None:
        self._fh = fh
        self.size_bytes = size_bytes
        self._chunk_bytes = chunk_bytes

    def __iter__(self) -> Iterator[bytes]:
        self._fh.seek(0)
        while True:
            chunk = self._fh.read(self._chunk_bytes)
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
