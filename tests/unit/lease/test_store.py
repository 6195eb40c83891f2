"""Lease persistence through a real LMDB backend: round trip, shared transaction, recovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvorum.backend import Backend
from kvorum.lease import LeaseRecord, LeaseStore, Lessor, MemoryLeaseStore, recover_lessor
from kvorum.lease.store import decode_record, encode_record
from kvorum.mvcc import DeleteRangeRequest, MvccStore, PutRequest, RangeRequest, TxnRequest


class Member:
    """The wiring the server will do: backend, lease store, lessor, mvcc sharing one batch."""

    def __init__(self, path: Path, *, min_ttl_s: int = 2) -> None:
        self.backend = Backend(str(path), map_size_bytes=64 << 20)
        self.leases = LeaseStore(self.backend)
        self.lessor, self.orphans = recover_lessor(
            self.leases, MvccStore(self.backend).iter_live(), min_ttl_s=min_ttl_s
        )
        self.kv = MvccStore(self.backend, lease_exists=self.lessor.exists)

    def put(self, key: bytes, lease_id: int) -> None:
        resp = self.kv.put(PutRequest(key, b"v", lease=lease_id))
        self.lessor.apply_events(resp.events)

    def revoke(self, lease_id: int) -> int:
        """One applied LeaseRevoke: lease row and key deletions in one revision, one batch."""
        keys = self.lessor.revoke(lease_id)
        resp = self.kv.txn(TxnRequest(success=tuple(DeleteRangeRequest(k) for k in keys)))
        self.lessor.apply_events(resp.events)
        return resp.revision

    def live(self) -> dict[bytes, int]:
        return {kv.key: kv.lease for kv in self.kv.range(RangeRequest(b"\x00", b"\x00")).kvs}

    def close(self) -> None:
        self.backend.close()


def test_record_codec_round_trip_and_corruption() -> None:
    for record in (LeaseRecord(1, 2), LeaseRecord(-5, 9_000_000_000, 7), LeaseRecord(1 << 62, 3)):
        assert decode_record(*encode_record(record)) == record
    with pytest.raises(ValueError):
        decode_record(b"\x00" * 7, b"\x00" * 16)


def test_memory_store_is_a_sink() -> None:
    store = MemoryLeaseStore()
    lessor = Lessor(sink=store)
    lessor.grant(2, 5, 0.0)
    lessor.grant(1, 7, 0.0)
    assert list(store.load()) == [LeaseRecord(1, 7), LeaseRecord(2, 5)]
    lessor.revoke(2)
    assert list(store.load()) == [LeaseRecord(1, 7)]


def test_round_trip_through_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "member" / "snap" / "db"
    m = Member(db)
    assert len(m.lessor) == 0
    m.lessor.grant(10, 60, 0.0)
    m.lessor.grant(20, 5, 0.0)
    m.lessor.grant(30, 1, 0.0)  # stored as the minimum, 2
    for key, lease_id in ((b"a", 10), (b"b", 10), (b"c", 20), (b"d", 0), (b"e", 30)):
        m.put(key, lease_id)
    rev_before = m.kv.current_revision
    assert m.revoke(20) == rev_before + 1  # one revision for all of the lease's keys
    m.put(b"b", 30)  # moved to another lease
    m.close()

    again = Member(db)
    assert again.orphans == 0
    assert not again.lessor.is_primary
    assert again.lessor.records() == (LeaseRecord(10, 60), LeaseRecord(30, 2))
    assert again.lessor.keys(10) == (b"a",)
    assert again.lessor.keys(30) == (b"b", b"e")
    assert again.live() == {b"a": 10, b"b": 30, b"d": 0, b"e": 30}
    # Expiry starts only when this member is promoted.
    again.lessor.promote(0.0, 1.0)
    assert again.lessor.expired(2.75) == ()
    assert again.lessor.expired(3.0) == (30,)
    assert again.revoke(30) > 0
    assert again.live() == {b"a": 10, b"d": 0}
    again.close()

    third = Member(db, min_ttl_s=90)  # a slower cluster raises short TTLs at recovery
    assert third.lessor.records() == (LeaseRecord(10, 90),)
    third.close()


def test_lease_rows_share_the_apply_transaction(tmp_path: Path) -> None:
    db = tmp_path / "db"
    m = Member(db)
    m.lessor.grant(1, 60, 0.0)
    m.put(b"k", 1)
    m.backend.batch.commit()

    # An aborted batch drops the revocation and the key deletion together...
    m.revoke(1)
    m.lessor.grant(2, 60, 0.0)
    m.backend.batch.abort()
    m.close()
    again = Member(db)
    assert again.lessor.records() == (LeaseRecord(1, 60),)
    assert again.lessor.keys(1) == (b"k",)
    assert again.live() == {b"k": 1}

    # ...and a committed one keeps both.
    again.revoke(1)
    again.close()
    third = Member(db)
    assert len(third.lessor) == 0
    assert third.live() == {}
    third.close()


def test_keys_of_a_lost_lease_are_counted_not_attached(tmp_path: Path) -> None:
    db = tmp_path / "db"
    m = Member(db)
    m.lessor.grant(1, 60, 0.0)
    m.put(b"k", 1)
    # A lease row lost behind mvcc's back (etcd logs this case at recovery and goes on).
    LeaseStore(m.backend).remove(1)
    m.close()
    again = Member(db)
    assert again.orphans == 1
    assert len(again.lessor) == 0
    assert again.lessor.lease_of(b"k") == 0
    again.close()
