"""Lease persistence: the backend's `lease` bucket, an in-memory twin, and restart recovery.

Only (id, TTL, remaining TTL) is stored per lease, as in etcd. Which keys a lease holds is not
stored twice: every key's mvcc record carries its lease id, so recovery rebuilds the key sets
from the live keys. Expiry is not stored at all: it is local to the primary, and a restarted
member starts as a follower where nothing expires until it is promoted.

Bucket layout: key = lease id as 8 bytes big-endian signed; value = TTL and remaining TTL as
two 8-byte big-endian signed integers.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from kvorum.backend import Backend, schema
from kvorum.lease.lessor import Lessor
from kvorum.lease.types import LeaseBucket, LeaseRecord
from kvorum.mvcc.types import KeyValue

if TYPE_CHECKING:
    from lmdb import _Database

_ID = struct.Struct(">q")
_VALUE = struct.Struct(">qq")


def encode_record(record: LeaseRecord) -> tuple[bytes, bytes]:
    """The bucket key and value of a record."""
    return _ID.pack(record.lease_id), _VALUE.pack(record.ttl_s, record.remaining_ttl_s)


def decode_record(key: bytes, value: bytes) -> LeaseRecord:
    """Inverse of `encode_record`; a malformed row is corruption and raises ValueError."""
    if len(key) != _ID.size or len(value) != _VALUE.size:
        raise ValueError(f"malformed lease row: key {key.hex()} value {value.hex()}")
    (lease_id,) = _ID.unpack(key)
    ttl_s, remaining_ttl_s = _VALUE.unpack(value)
    return LeaseRecord(lease_id, ttl_s, remaining_ttl_s)


class LeaseStore:
    """`LeaseSink` over the backend's `lease` bucket, writing through the apply's batch.

    Writes go into `backend.batch` — the same open LMDB transaction mvcc writes into — so a
    revoke's row removal and its key deletions commit together, as do a grant and the applied
    index of its entry.
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    @property
    def _db(self) -> _Database:
        # Fetched per use: a backend restore or defragment reopens the bucket handles.
        return self._backend.db(schema.LEASE)

    def save(self, record: LeaseRecord) -> None:
        key, value = encode_record(record)
        self._backend.batch.write().put(key, value, db=self._db)

    def remove(self, lease_id: int) -> None:
        self._backend.batch.write().delete(_ID.pack(lease_id), db=self._db)

    def load(self) -> Iterator[LeaseRecord]:
        """Every stored lease, in bucket order (the applied-but-uncommitted ones included
        when called on the apply thread)."""
        with self._backend.view() as txn:
            rows = list(txn.cursor(db=self._db).iternext())
        for key, value in rows:
            yield decode_record(bytes(key), bytes(value))


class MemoryLeaseStore:
    """`LeaseSink` kept in a dict, for tests and simulation."""

    def __init__(self) -> None:
        self.rows: dict[int, LeaseRecord] = {}

    def save(self, record: LeaseRecord) -> None:
        self.rows[record.lease_id] = record

    def remove(self, lease_id: int) -> None:
        self.rows.pop(lease_id, None)

    def load(self) -> Iterator[LeaseRecord]:
        return iter([self.rows[lid] for lid in sorted(self.rows)])


def recover_lessor(
    store: LeaseBucket,
    live_kvs: Iterable[KeyValue],
    *,
    min_ttl_s: int | None = None,
    now_s: float = 0.0,
) -> tuple[Lessor, int]:
    """A follower lessor rebuilt from the stored leases and the live keys' lease fields.

    `live_kvs` is `MvccStore.iter_live()`. Returns the lessor (writing back to `store`) and
    the number of keys that named a lease no longer stored (left unattached, as etcd does).
    """
    lessor = Lessor(min_ttl_s=min_ttl_s, sink=store)
    orphans = lessor.restore(store.load(), live_kvs, now_s)
    return lessor, orphans
