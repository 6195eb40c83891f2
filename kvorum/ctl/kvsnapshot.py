"""kvorum's snapshot files: what ``snapshot status`` reports of them and how ``snapshot restore``
turns one into a data directory.

A kvorum snapshot is what ``Maintenance.Snapshot`` streams: a compacted copy of the member's
LMDB backend, followed -- as etcd does it -- by the SHA-256 of that copy (32 bytes). An LMDB
file is a whole number of pages (4 KiB), so ``size % 512 == 32`` tells a file with its hash
from a bare copy of ``member/snap/db`` (etcd's rule, kept so ``--skip-hash-check`` means the
same).

Status, computed as etcdctl computes it on a bbolt file, over LMDB's named databases instead of
bbolt's buckets: the hash is a CRC-32 over each database's name (in name order) followed by
every key and value in it, in key order; total keys counts the entries of every database; the
revision is the store's current revision (``meta/current_revision``); the size is the pages in
use (LMDB's last page number + 1, times the page size) -- bbolt's ``Tx.Size`` is the same
high-water mark. The CRC is zlib's (IEEE, as ``Backend.hash``), not etcd's CRC-32C: the two
formats never hash alike anyway, and zlib's runs in C where the pure-Python CRC-32C manages a
few MB/s.

Restore, as etcd's ``snapshot restore`` does it, into an empty data directory:

1. the backend file is checked against its hash and copied to ``member/snap/db``;
2. the old cluster's membership is dropped (``members``, ``members_removed``, the records of
   rejected conf changes) and the new one written: every member of ``--initial-cluster`` with
   the id etcd derives from its peer URLs and ``--initial-cluster-token``, and the cluster id
   derived from those; the consistent index is reset to 0;
3. a WAL is created holding only the member's identity.

The data is kept whole: keys with their revisions and history, leases (the lessor recovers them
at start with fresh TTLs, as etcd's does), auth, alarms. The member then starts as a restart of
a cluster whose log is empty: its raft configuration comes from the restored member list, and
its first entry is index 1, so a consistent index of 0 lets every entry apply. Every member
restored from the same file with the same flags starts from the same state, so no member needs a
raft snapshot to catch up. (etcd writes the membership as conf-change entries 1..N into the WAL
and sets the consistent index to N; kvorum's start already builds raft's configuration from the
member list, which makes those entries unnecessary.)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import lmdb

from kvorum.backend import Backend, schema
from kvorum.ctl.bbolt import DBStatus
from kvorum.datadir import DataDir
from kvorum.ids import cluster_id as derive_cluster_id
from kvorum.ids import member_id as derive_member_id
from kvorum.membership import MembershipStore
from kvorum.membership.store import META_REJECTED_CONF_CHANGE
from kvorum.membership.types import Member
from kvorum.wal import WAL, WALMetadata

__all__ = [
    "HASH_BYTES",
    "LMDB_MAGIC",
    "RestoreError",
    "RestorePlan",
    "has_hash",
    "is_lmdb",
    "plan",
    "restore",
    "status",
]

LMDB_MAGIC = 0xBEEFC0DE
#: The SHA-256 a snapshot stream ends with.
HASH_BYTES = hashlib.sha256().digest_size
# etcd's test for "the file ends with a hash": database files are multiples of 512 bytes.
_HASH_ALIGNMENT = 512
# LMDB's meta page: page number (u64), pad (u16), flags (u16), then the meta's magic.
_MAGIC_OFFSET = 16
_MAX_DBS = len(schema.ALL_BUCKETS) + 2
_COPY_CHUNK_BYTES = 1 << 20
_I64 = struct.Struct(">q")


class RestoreError(Exception):
    """Restore cannot go on; the text is etcdctl's where etcdctl has one."""


def is_lmdb(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) starts with an LMDB meta page."""
    if len(head) < _MAGIC_OFFSET + 4:
        return False
    (magic,) = struct.unpack_from("<I", head, _MAGIC_OFFSET)
    return bool(magic == LMDB_MAGIC)


def has_hash(size_bytes: int) -> bool:
    return size_bytes % _HASH_ALIGNMENT == HASH_BYTES


def _open_readonly(path: str) -> lmdb.Environment:
    size = os.stat(path).st_size
    return lmdb.open(
        path,
        subdir=False,
        readonly=True,
        lock=False,
        max_dbs=_MAX_DBS,
        # A read-only map must cover the file; the default (10 MiB) may not.
        map_size=max(size, 1 << 20),
    )


def status(path: str) -> DBStatus:
    """``snapshot status`` of a kvorum (LMDB) snapshot file; see the module docstring."""
    env = _open_readonly(path)
    try:
        crc = 0
        total = 0
        revision = 0
        with env.begin() as txn:
            names = [bytes(k) for k, _ in txn.cursor()]
            for name in names:
                db = env.open_db(name, txn=txn, create=False)
                crc = zlib.crc32(name, crc)
                for key, value in txn.cursor(db=db):
                    crc = zlib.crc32(value, zlib.crc32(key, crc))
                    total += 1
                if name == schema.META:
                    raw = txn.get(schema.META_CURRENT_REVISION, db=db)
                    if raw is not None:
                        revision = _I64.unpack(bytes(raw))[0]
            page_size = int(env.stat()["psize"])
        used_bytes = (int(env.info()["last_pgno"]) + 1) * page_size
        return DBStatus(crc, revision, total, used_bytes)
    finally:
        env.close()


@dataclass(frozen=True, slots=True)
class RestorePlan:
    """Who the restored member is: ``members`` of the new cluster (``name`` among them)."""

    name: str
    members: tuple[Member, ...]
    cluster_id: int
    data_dir: str
    wal_dir: str | None
    skip_hash_check: bool

    @property
    def member_id(self) -> int:
        for m in self.members:
            if m.name == self.name:
                return m.id
        raise RestoreError(
            f"couldn't find local name {self.name!r} in the initial cluster configuration"
        )


def plan(
    name: str,
    initial_cluster: Sequence[tuple[str, Sequence[str]]],
    token: str,
    data_dir: str,
    wal_dir: str | None,
    skip_hash_check: bool,
) -> RestorePlan:
    """The new cluster's members and ids, derived as etcd derives them for a bootstrap."""
    members = tuple(
        sorted(
            (
                Member(derive_member_id(urls, token), member_name, tuple(sorted(urls)))
                for member_name, urls in initial_cluster
            ),
            key=lambda m: m.id,
        )
    )
    return RestorePlan(
        name,
        members,
        derive_cluster_id(m.id for m in members),
        data_dir,
        wal_dir,
        skip_hash_check,
    )


def _copy_checked(
    source: str, target: str, skip_hash_check: bool, progress: Callable[[int], None]
) -> None:
    """Copy the backend part of ``source`` to ``target`` (fsync'd), checking the hash."""
    size = os.stat(source).st_size
    with_hash = has_hash(size)
    if not with_hash and not skip_hash_check:
        raise RestoreError("snapshot missing hash but --skip-hash-check=false")
    body = size - HASH_BYTES if with_hash else size
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(target, "wb") as dst:
        left = body
        while left > 0:
            chunk = src.read(min(_COPY_CHUNK_BYTES, left))
            if not chunk:
                raise RestoreError(f"{source}: file shrank while it was read")
            digest.update(chunk)
            dst.write(chunk)
            left -= len(chunk)
            progress(len(chunk))
        expected = src.read(HASH_BYTES) if with_hash else b""
        dst.flush()
        os.fsync(dst.fileno())
    if with_hash and not skip_hash_check and expected != digest.digest():
        raise RestoreError(
            f"expected sha256 {_go_bytes(expected)}, got {_go_bytes(digest.digest())}"
        )


def _go_bytes(data: bytes) -> str:
    """A byte slice as Go's ``%v`` prints it: ``[1 2 3]``."""
    return "[" + " ".join(str(b) for b in data) + "]"


def _rewrite_membership(db_path: str, p: RestorePlan) -> None:
    """Replace the old cluster's identity in the db at ``db_path`` by the new one."""
    try:
        backend = Backend(db_path)
    except lmdb.Error as exc:
        raise RestoreError(f"{db_path}: not a kvorum backend database ({exc})") from None
    try:
        txn = backend.batch.write()
        for bucket in (schema.MEMBERS, schema.MEMBERS_REMOVED):
            txn.drop(backend.db(bucket), delete=False)
        meta = backend.db(schema.META)
        cursor = txn.cursor(db=meta)
        # The records of rejected conf changes name raft indexes of the old log.
        if cursor.set_range(META_REJECTED_CONF_CHANGE):
            while cursor.key().startswith(META_REJECTED_CONF_CHANGE):
                if not cursor.delete():
                    break
        membership = MembershipStore(backend)
        membership.set_cluster_id(p.cluster_id)
        for m in p.members:
            membership.add(m)
        # The new log starts at index 1: every entry of it must apply.
        backend.set_consistent_index(0, 0)
        backend.sync()
    finally:
        backend.close()


def restore(snapshot_path: str, p: RestorePlan, progress: Callable[[int], None]) -> None:
    """Write a data directory for member ``p.name`` from the kvorum snapshot at
    ``snapshot_path``; ``progress(n)`` is told of every ``n`` bytes copied.

    Nothing is left behind on failure: the directories this call made are removed.
    """
    member_id = p.member_id
    data_dir = DataDir(p.data_dir, p.wal_dir)
    made: list[str] = []
    try:
        for path in (p.data_dir, p.wal_dir):
            if path is not None and not os.path.exists(path):
                made.append(path)
        data_dir.create()
        received = str(data_dir.backend_path) + ".restoring"
        # The hash first, as etcd checks it: a file that fails it is damaged, whatever it is.
        _copy_checked(snapshot_path, received, p.skip_hash_check, progress)
        with open(received, "rb") as probe:
            if not is_lmdb(probe.read(_MAGIC_OFFSET + 4)):
                raise RestoreError(f"{snapshot_path} is not a kvorum snapshot (no LMDB header)")
        _rewrite_membership(received, p)
        # LMDB's lock file belongs to the name the db was opened under; the member makes its own.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(received + "-lock")
        os.replace(received, data_dir.backend_path)
        _fsync_dir(str(data_dir.snap_dir))
        wal = WAL.create(data_dir.wal_dir, WALMetadata(member_id, p.cluster_id))
        wal.close()
    except BaseException:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
        raise


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
