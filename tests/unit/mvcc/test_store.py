"""The mvcc store's rules, one behaviour per test, with etcd's numbers and texts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvorum.backend import Backend
from kvorum.mvcc import (
    ERRORS,
    CompactedError,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DuplicateKeyError,
    Event,
    EventType,
    FutureRevError,
    KeyNotFoundError,
    KeyValue,
    LeaseNotFoundError,
    MvccStore,
    PutRequest,
    RangeRequest,
    RangeResponse,
    SortOrder,
    SortTarget,
    TxnRequest,
    check_txn_request,
)

ALL = RangeRequest(b"\x00", b"\x00")


class Env:
    def __init__(self, tmp_path: Path) -> None:
        self.path = str(tmp_path / "db")
        self.backend = Backend(self.path, map_size_bytes=256 << 20)
        self.store = MvccStore(self.backend, lease_exists=lambda lease: lease in (7, 8))

    def reopen(self) -> MvccStore:
        self.backend.close()
        self.backend = Backend(self.path, map_size_bytes=256 << 20)
        self.store = MvccStore(self.backend, lease_exists=lambda lease: lease in (7, 8))
        return self.store


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.backend.close()


@pytest.fixture
def store(env: Env) -> MvccStore:
    return env.store


def put(store: MvccStore, key: bytes, value: bytes = b"v", lease: int = 0) -> int:
    return store.put(PutRequest(key, value, lease)).revision


def test_fresh_store_is_at_revision_one_and_each_write_adds_one(store: MvccStore) -> None:
    assert store.current_revision == 1
    assert store.range(RangeRequest(b"a")) == RangeResponse(1, (), 0)
    assert put(store, b"a", b"1") == 2
    assert put(store, b"b", b"1") == 3
    assert put(store, b"a", b"2") == 4
    assert store.get(b"a") == KeyValue(b"a", 2, 4, 2, b"2")
    assert store.get(b"a", revision=3) == KeyValue(b"a", 2, 2, 1, b"1")
    assert store.get(b"a", revision=1) is None


def test_delete_leaves_a_tombstone_and_recreation_starts_at_version_one(store: MvccStore) -> None:
    put(store, b"k", b"1")
    put(store, b"k", b"2")
    resp = store.delete_range(DeleteRangeRequest(b"k", prev_kv=True))
    assert (resp.revision, resp.deleted) == (4, 1)
    assert resp.prev_kvs == (KeyValue(b"k", 2, 3, 2, b"2"),)
    assert resp.events == (
        Event(EventType.DELETE, KeyValue(b"k", 0, 4, 0), KeyValue(b"k", 2, 3, 2, b"2")),
    )
    assert store.get(b"k") is None
    assert store.get(b"k", revision=3) == KeyValue(b"k", 2, 3, 2, b"2")
    # Deleting nothing is not a write: no new revision.
    nothing = store.delete_range(DeleteRangeRequest(b"k"))
    assert (nothing.revision, nothing.deleted, store.current_revision) == (4, 0, 4)
    put(store, b"k", b"3")
    assert store.get(b"k") == KeyValue(b"k", 5, 5, 1, b"3")


def test_range_end_forms_and_byte_order(store: MvccStore) -> None:
    for key in (b"a", b"a\x00", b"a\x00\x00", b"ab", b"b", b"\xff"):
        put(store, key)
    keys = [kv.key for kv in store.range(RangeRequest(b"a", b"\x00")).kvs]
    assert keys == [b"a", b"a\x00", b"a\x00\x00", b"ab", b"b", b"\xff"]
    keys = [kv.key for kv in store.range(RangeRequest(b"a", b"b")).kvs]
    assert keys == [b"a", b"a\x00", b"a\x00\x00", b"ab"]
    assert [kv.key for kv in store.range(RangeRequest(b"a\x00")).kvs] == [b"a\x00"]
    assert store.range(RangeRequest(b"b", b"a")).kvs == ()  # end before start: nothing


def test_limit_count_and_more(store: MvccStore) -> None:
    for i in range(5):
        put(store, b"k%d" % i, b"%d" % (4 - i))
    resp = store.range(RangeRequest(b"k", b"l", limit=2))
    assert [kv.key for kv in resp.kvs] == [b"k0", b"k1"]
    assert (resp.count, resp.more) == (5, True)  # count ignores the limit
    resp = store.range(RangeRequest(b"k", b"l", limit=5))
    assert (len(resp.kvs), resp.more) == (5, False)
    resp = store.range(RangeRequest(b"k", b"l", count_only=True))
    assert (resp.kvs, resp.count) == ((), 5)
    resp = store.range(
        RangeRequest(b"k", b"l", limit=2, sort_order=SortOrder.ASCEND, sort_target=SortTarget.VALUE)
    )
    # Sorting comes before the limit when an order is given.
    assert [kv.value for kv in resp.kvs] == [b"0", b"1"]
    resp = store.range(RangeRequest(b"k", b"l", keys_only=True, min_mod_revision=4))
    assert [(kv.key, kv.value) for kv in resp.kvs] == [(b"k2", b""), (b"k3", b""), (b"k4", b"")]
    assert resp.count == 5  # filters do not change the count either (etcd)


def test_future_and_compacted_revisions(store: MvccStore) -> None:
    for i in range(5):
        put(store, b"k", b"%d" % i)  # revisions 2..6
    with pytest.raises(FutureRevError) as future:
        store.range(RangeRequest(b"k", revision=7))
    assert str(future.value) == "mvcc: required revision is a future revision"
    assert store.compact(4) == 6
    with pytest.raises(CompactedError) as compacted:
        store.range(RangeRequest(b"k", revision=3))
    assert str(compacted.value) == "mvcc: required revision has been compacted"
    assert store.get(b"k", revision=4) == KeyValue(b"k", 2, 4, 3, b"2")  # the compact rev reads
    for bad in (4, 3):
        with pytest.raises(CompactedError):
            store.compact(bad)
    with pytest.raises(FutureRevError):
        store.compact(7)
    spec = ERRORS[CompactedError]
    assert (spec.grpc_code, spec.grpc_text) == (
        "OUT_OF_RANGE",
        "etcdserver: mvcc: required revision has been compacted",
    )


def test_compaction_removes_superseded_versions_and_tombstones(env: Env) -> None:
    store = env.store
    put(store, b"keep", b"1")  # 2
    put(store, b"keep", b"2")  # 3
    put(store, b"gone", b"1")  # 4
    store.delete_range(DeleteRangeRequest(b"gone"))  # 5
    put(store, b"keep", b"3")  # 6
    store.compact(5)
    while not store.compact_step(1):
        pass
    with env.backend.view() as txn:
        index = [k for k, _v in txn.cursor(db=env.backend.db(b"key_index"))]
        log = [k for k, _v in txn.cursor(db=env.backend.db(b"key"))]
    # Left: keep@3 (newest at or below 5) and keep@6 (above 5); "gone" entirely.
    assert len(index) == len(log) == 2
    assert store.get(b"keep", revision=5) == KeyValue(b"keep", 2, 3, 2, b"2")
    assert store.get(b"keep") == KeyValue(b"keep", 2, 6, 3, b"3")
    assert store.finished_compact_revision == 5
    # A later compaction drops the version the first one kept.
    store.compact(6)
    store.compact_run()
    with env.backend.view() as txn:
        assert len(list(txn.cursor(db=env.backend.db(b"key_index")))) == 1


def test_restart_keeps_revisions_index_and_resumes_compaction(env: Env) -> None:
    store = env.store
    for i in range(20):
        put(store, b"k%d" % (i % 3), b"%d" % i)
    env.backend.set_consistent_index(42, 5)
    store.compact(15)
    store.compact_step(4)  # partly done when the member stops
    assert store.compaction_pending
    before = store.hash_kv()
    env.backend.batch.commit()
    store = env.reopen()
    assert env.backend.consistent_index() == (42, 5)
    assert (store.current_revision, store.compact_revision) == (21, 15)
    assert store.compaction_pending
    assert store.hash_kv() == before
    store.compact_run()
    assert not store.compaction_pending
    assert store.hash_kv() == before
    assert [kv.value for kv in store.range(ALL).kvs] == [b"18", b"19", b"17"]
    assert put(store, b"new") == 22


def test_hash_kv_equal_for_equal_history(tmp_path: Path) -> None:
    a = Env(tmp_path / "a")
    b = Env(tmp_path / "b")
    c = Env(tmp_path / "c")
    for e in (a, b, c):
        for i in range(30):
            put(e.store, b"k%d" % (i % 4), b"%d" % i)
        e.store.delete_range(DeleteRangeRequest(b"k1"))
    put(c.store, b"extra")
    assert a.store.hash_kv() == b.store.hash_kv()
    assert a.store.hash_kv()[0] != c.store.hash_kv()[0]
    assert a.store.hash_kv(20) == c.store.hash_kv(20)  # same history up to 20
    a.store.compact(25)
    b.store.compact(25)
    a.store.compact_run()  # b's compaction has not run physically
    assert a.store.hash_kv() == b.store.hash_kv()
    assert a.store.hash_kv()[1] == 25
    with pytest.raises(CompactedError):
        a.store.hash_kv(25)
    with pytest.raises(FutureRevError):
        a.store.hash_kv(a.store.current_revision + 1)
    for e in (a, b, c):
        e.backend.close()


def test_txn_is_one_revision_and_reads_see_its_own_writes(store: MvccStore) -> None:
    put(store, b"x", b"old")  # 2
    resp = store.txn(
        TxnRequest(
            compare=(Compare(b"x", CompareTarget.VALUE, CompareResult.EQUAL, value=b"old"),),
            success=(
                PutRequest(b"a", b"1"),
                RangeRequest(b"a"),
                PutRequest(b"b", b"2", prev_kv=True),
                DeleteRangeRequest(b"x", prev_kv=True),
            ),
        )
    )
    assert resp.succeeded and resp.revision == 3
    assert store.current_revision == 3
    get_a = resp.responses[1]
    assert isinstance(get_a, RangeResponse)
    assert get_a.kvs == (KeyValue(b"a", 3, 3, 1, b"1"),)
    assert get_a.revision == 3
    assert [(e.type, e.kv.key, e.kv.mod_revision) for e in resp.events] == [
        (EventType.PUT, b"a", 3),
        (EventType.PUT, b"b", 3),
        (EventType.DELETE, b"x", 3),
    ]
    # Read-only txns do not add a revision.
    ro = store.txn(TxnRequest(success=(RangeRequest(b"a"),)))
    assert (ro.revision, store.current_revision) == (3, 3)


def test_nested_txn_compares_see_the_state_before_the_txn(store: MvccStore) -> None:
    inner = TxnRequest(
        compare=(Compare(b"flag", CompareTarget.VERSION, CompareResult.EQUAL, version=0),),
        success=(PutRequest(b"seen", b"absent"),),
        failure=(PutRequest(b"seen", b"present"),),
    )
    resp = store.txn(TxnRequest(success=(PutRequest(b"flag", b"1"), inner)))
    assert resp.succeeded
    assert store.get(b"seen") is not None
    assert store.get(b"seen").value == b"absent"  # type: ignore[union-attr]


def test_compare_rules(store: MvccStore) -> None:
    put(store, b"p/1", b"a", lease=7)
    put(store, b"p/2", b"b")

    def holds(c: Compare) -> bool:
        return store.txn(TxnRequest(compare=(c,))).succeeded

    value = CompareTarget.VALUE
    assert not holds(Compare(b"missing", value, CompareResult.NOT_EQUAL, value=b"x"))
    assert holds(Compare(b"missing", CompareTarget.CREATE, CompareResult.EQUAL))
    assert holds(Compare(b"p/1", CompareTarget.LEASE, CompareResult.EQUAL, lease=7))
    # A range compare holds only if every key in the range satisfies it.
    assert holds(Compare(b"p/", value, CompareResult.GREATER, range_end=b"p0", value=b"0"))
    assert not holds(Compare(b"p/", value, CompareResult.EQUAL, range_end=b"p0", value=b"a"))
    assert holds(
        Compare(b"p/", CompareTarget.MOD, CompareResult.LESS, range_end=b"\x00", mod_revision=4)
    )


def test_txn_checks_fail_the_whole_txn_before_any_write(store: MvccStore) -> None:
    put(store, b"k")
    failing = [
        (PutRequest(b"missing", ignore_value=True), KeyNotFoundError),
        (PutRequest(b"x", lease=9), LeaseNotFoundError),
        (RangeRequest(b"k", revision=99), FutureRevError),
    ]
    for op, error in failing:
        with pytest.raises(error):
            store.txn(TxnRequest(success=(PutRequest(b"first"), op)))
        assert store.get(b"first") is None
        assert store.current_revision == 2
    with pytest.raises(LeaseNotFoundError) as exc:
        store.put(PutRequest(b"x", lease=9))
    assert ERRORS[LeaseNotFoundError].grpc_text == "etcdserver: requested lease not found"
    assert str(exc.value) == "lease not found"
    with pytest.raises(KeyNotFoundError):
        store.put(PutRequest(b"nope", ignore_lease=True))
    assert store.current_revision == 2


def test_put_flags(store: MvccStore) -> None:
    put(store, b"k", b"v1", lease=7)
    resp = store.put(PutRequest(b"k", ignore_value=True, lease=8, prev_kv=True))
    assert resp.prev_kv == KeyValue(b"k", 2, 2, 1, b"v1", 7)
    assert store.get(b"k") == KeyValue(b"k", 2, 3, 2, b"v1", 8)
    store.put(PutRequest(b"k", b"v2", ignore_lease=True))
    assert store.get(b"k") == KeyValue(b"k", 2, 4, 3, b"v2", 8)


def test_events_since_with_prev_kv_and_revision_boundaries(store: MvccStore) -> None:
    put(store, b"a", b"1")  # 2
    store.txn(TxnRequest(success=(PutRequest(b"a", b"2"), PutRequest(b"b", b"1"))))  # 3
    store.delete_range(DeleteRangeRequest(b"a"))  # 4
    batch = store.events_since(2, limit=2, prev_kv=True)
    # The limit never splits a revision: both changes of revision 3 come together.
    assert [(e.kv.key, e.kv.mod_revision) for e in batch.events] == [
        (b"a", 2),
        (b"a", 3),
        (b"b", 3),
    ]
    assert batch.next_revision == 4
    assert batch.events[1].prev_kv == KeyValue(b"a", 2, 2, 1, b"1")
    rest = store.events_since(4, b"a", prev_kv=True)
    assert rest.events == (
        Event(EventType.DELETE, KeyValue(b"a", 0, 4, 0), KeyValue(b"a", 2, 3, 2, b"2")),
    )
    assert rest.next_revision == 5
    assert store.events_since(5).events == ()
    store.compact(3)
    with pytest.raises(CompactedError):
        store.events_since(2)


def _perf_key(i: int) -> bytes:
    """etcdctl check perf's key shape: prefix, a varint, then 247 zero bytes (too long to fit
    LMDB's 511-byte key limit once escaped)."""
    varint = bytearray()
    while True:
        low, i = i & 0x7F, i >> 7
        varint.append(low | (0x80 if i else 0))
        if not i:
            break
    return b"/etcdctl-check-perf/" + bytes(varint) + b"\x00" * 247


def test_long_keys_work_like_short_ones(env: Env) -> None:
    store = env.store
    perf = [_perf_key(i) for i in (0, 1, 127, 128, 300, 70000)]
    # Keys sharing a long prefix: one spill zone, ordered by hash in the index.
    shared = [b"s" * 600 + bytes([c]) * n for c in (0, 1, 0x7F, 0xFF) for n in (1, 5)]
    short = [b"/etcdctl-check-perf/", b"s" * 10, b"s" * 600, b"t"]
    for i, key in enumerate([*perf, *shared, *short]):
        put(store, key, b"v%d" % i)
    everything = sorted([*perf, *shared, *short])
    assert [kv.key for kv in store.range(ALL).kvs] == everything
    assert store.get(perf[3]) == KeyValue(perf[3], 5, 5, 1, b"v3")
    resp = store.range(RangeRequest(b"/etcdctl-check-perf/", b"/etcdctl-check-perf0", limit=3))
    assert [kv.key for kv in resp.kvs] == sorted([*perf, b"/etcdctl-check-perf/"])[:3]
    assert (resp.count, resp.more) == (7, True)
    inner = store.range(RangeRequest(shared[2], b"s" * 600 + b"\xff", count_only=True))
    assert inner.count == len([k for k in shared if shared[2] <= k < b"s" * 600 + b"\xff"])
    desc = store.range(RangeRequest(b"s", b"t", sort_order=SortOrder.DESCEND))
    assert [kv.key for kv in desc.kvs] == sorted([*shared, b"s" * 10, b"s" * 600], reverse=True)
    rev = store.current_revision
    deleted = store.delete_range(
        DeleteRangeRequest(b"/etcdctl-check-perf/", b"/etcdctl-check-perf0")
    )
    assert deleted.deleted == 7
    assert [e.kv.key for e in deleted.events] == sorted([*perf, b"/etcdctl-check-perf/"])
    put(store, perf[0], b"again")
    assert store.get(perf[0]) == KeyValue(perf[0], rev + 2, rev + 2, 1, b"again")
    assert store.get(perf[1], revision=rev) == KeyValue(perf[1], 3, 3, 1, b"v1")
    history = store.events_since(rev + 1, perf[0], b"", prev_kv=True).events
    assert [(e.type, e.kv.value, e.prev_kv) for e in history] == [
        (EventType.DELETE, b"", KeyValue(perf[0], 2, 2, 1, b"v0")),
        (EventType.PUT, b"again", None),
    ]
    store.compact(rev)
    before = store.hash_kv()
    store.compact_run(max_revisions_per_txn=3)
    assert store.hash_kv() == before
    assert store.get(perf[1], revision=rev) == KeyValue(perf[1], 3, 3, 1, b"v1")
    store = env.reopen()
    assert [kv.key for kv in store.range(ALL).kvs] == sorted([perf[0], *shared, *short[1:]])


def test_short_keys_keep_the_plain_index_encoding(env: Env) -> None:
    """Stores written before spill keys existed read unchanged: a key that fits is stored as
    escape(key) + SEP + revision; the first key that does not is spilled to 511 bytes."""
    longest_plain = b"\x00" * 3 + b"k" * (511 - 16 - 2 - 6)
    spilled = longest_plain + b"k"
    put(env.store, longest_plain)
    put(env.store, spilled)
    env.backend.batch.commit()
    with env.backend.view() as txn:
        index_keys = [k for k, _v in txn.cursor(db=env.backend.db(b"key_index"))]
    plain = b"\x00\xff" * 3 + b"k" * 487 + b"\x00\x00" + (2).to_bytes(8, "big") + bytes(8)
    assert len(plain) == 511 and plain in index_keys and len(index_keys) == 2
    (spill,) = [k for k in index_keys if k != plain]
    assert len(spill) == 511 and spill.startswith(plain[:476])
    assert env.store.get(spilled) == KeyValue(spilled, 3, 3, 1, b"v")


def test_a_zone_with_many_long_keys_reads_in_key_order_with_a_limit(store: MvccStore) -> None:
    keys = [b"z" * 500 + i.to_bytes(2, "big") for i in range(300)]
    for key in reversed(keys):
        put(store, key)
    resp = store.range(RangeRequest(b"z", b"\x00", limit=5))
    assert [kv.key for kv in resp.kvs] == keys[:5]
    assert (resp.count, resp.more) == (300, True)
    start = keys[100]
    resp = store.range(RangeRequest(start, keys[110] + b"\x00"))
    assert [kv.key for kv in resp.kvs] == keys[100:111]
    assert [kv.key for kv in store.iter_live(batch_keys=7)] == keys


def test_long_history_of_one_key_reads_at_every_revision(store: MvccStore) -> None:
    for i in range(50):
        put(store, b"hot", b"%d" % i)
        put(store, b"cold%d" % (i % 2), b"%d" % i)
    for rev in range(1, store.current_revision + 1):
        got = store.range(RangeRequest(b"", b"\x00", revision=rev)).kvs
        hot = [kv for kv in got if kv.key == b"hot"]
        expected_version = rev // 2  # hot is written at revisions 2, 4, 6, ...
        assert [kv.version for kv in hot] == ([expected_version] if expected_version else [])


def test_duplicate_key_rule() -> None:
    put_a = PutRequest(b"a")
    ok = [
        TxnRequest(success=(put_a,), failure=(put_a,)),
        TxnRequest(success=(TxnRequest(success=(put_a,), failure=(put_a,)),)),
        TxnRequest(success=(DeleteRangeRequest(b"a"), DeleteRangeRequest(b"a", b"b"))),
        # etcd's interval for a from-key delete is empty, so this passes there too.
        TxnRequest(success=(DeleteRangeRequest(b"a", b"\x00"), PutRequest(b"b"))),
    ]
    for req in ok:
        check_txn_request(req)
    bad = [
        TxnRequest(success=(put_a, put_a)),
        TxnRequest(success=(put_a, DeleteRangeRequest(b"a"))),
        TxnRequest(success=(DeleteRangeRequest(b"0", b"b"), put_a)),
        TxnRequest(success=(put_a, TxnRequest(success=(put_a,)))),
        TxnRequest(failure=(TxnRequest(failure=(put_a,)), DeleteRangeRequest(b"a"))),
    ]
    for req in bad:
        with pytest.raises(DuplicateKeyError) as exc:
            check_txn_request(req)
        assert str(exc.value) == "etcdserver: duplicate key given in txn request"


def test_iter_live_walks_in_bounded_chunks(store: MvccStore) -> None:
    for i in range(25):
        put(store, b"k%02d" % i, lease=7 if i % 2 else 0)
    store.delete_range(DeleteRangeRequest(b"k10"))
    keys = [kv.key for kv in store.iter_live(batch_keys=4)]
    assert keys == [b"k%02d" % i for i in range(25) if i != 10]


def test_defragment_after_compaction_shrinks_the_file(env: Env) -> None:
    store = env.store
    value = os.urandom(300)
    for _round in range(6):
        for i in range(500):
            put(store, b"key-%04d" % i, value)
    store.compact(store.current_revision)
    store.compact_run(max_revisions_per_txn=500)
    env.backend.sync()
    before = env.backend.size_bytes()
    digest = store.hash_kv()
    env.backend.defragment()
    assert env.backend.size_bytes() < before // 2
    assert store.hash_kv() == digest
    assert store.range(RangeRequest(b"key-", b"key.", count_only=True)).count == 500
    assert put(store, b"after") == store.current_revision


def test_reopen_costs_nothing_proportional_to_the_keyspace(env: Env) -> None:
    import tracemalloc

    for i in range(5000):
        put(env.store, b"key-%05d" % i, b"x" * 50)
    env.backend.close()
    tracemalloc.start()
    backend = Backend(env.path, map_size_bytes=256 << 20)
    store = MvccStore(backend)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    env.backend = backend
    assert store.current_revision == 5001
    assert peak < 64 * 1024  # no per-key index is rebuilt in memory (5000 keys)
    assert store.range(RangeRequest(b"key-", b"key.", count_only=True)).count == 5000
