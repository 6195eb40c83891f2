"""Random committed logs: every member ends in the same state with the same answers, whatever
the batch splits, and replaying any prefix again (a restart) changes nothing.

`KVORUM_LONG=1` runs many more and longer examples.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from kvorum.apply import (
    Applier,
    ApplyResult,
    CompactRequest,
    LeaseGrantRequest,
    LeaseRevokeRequest,
    Request,
    encode_payload,
)
from kvorum.backend import Backend
from kvorum.lease import LeaseStore, Lessor
from kvorum.membership import AlarmStore, MembershipStore
from kvorum.mvcc import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    MvccStore,
    PutRequest,
    RangeRequest,
    TxnRequest,
)
from kvorum.raft.types import Entry
from kvorum.server.envelope import encode_envelope

LONG = os.environ.get("KVORUM_LONG") == "1"

keys = st.sampled_from([b"a", b"b", b"c", b"d"])
leases = st.sampled_from([0, 0, 1, 2])
puts = st.builds(PutRequest, keys, st.binary(max_size=4), leases, st.booleans())
deletes = st.builds(DeleteRangeRequest, keys, st.sampled_from([b"", b"c", b"\x00"]), st.booleans())
compares = st.builds(
    Compare,
    keys,
    st.sampled_from(list(CompareTarget)),
    st.sampled_from(list(CompareResult)),
    version=st.integers(0, 3),
    mod_revision=st.integers(0, 8),
    value=st.binary(max_size=2),
)
ops = st.one_of(puts, deletes, st.builds(RangeRequest, keys, revision=st.integers(0, 6)))
txns = st.builds(
    TxnRequest,
    st.lists(compares, max_size=2).map(tuple),
    st.lists(ops, max_size=3).map(tuple),
    st.lists(ops, max_size=3).map(tuple),
)
requests: st.SearchStrategy[Request] = st.one_of(
    puts,
    puts,
    deletes,
    txns,
    st.builds(CompactRequest, st.integers(0, 10), st.booleans()),
    st.builds(LeaseGrantRequest, st.sampled_from([1, 2]), st.integers(1, 100)),
    st.builds(LeaseRevokeRequest, st.sampled_from([1, 2])),
)


class _Member:
    def __init__(self, path: str) -> None:
        self.backend = Backend(os.path.join(path, "db"))
        lessor = Lessor(min_ttl_s=1, sink=LeaseStore(self.backend))
        self.kv = MvccStore(self.backend, lease_exists=lessor.exists)
        self.applier = Applier(
            self.backend,
            self.kv,
            MembershipStore(self.backend),
            AlarmStore(self.backend),
            lessor=lessor,
            compact_step_revisions=2,
        )
        self.results: dict[int, ApplyResult] = {}

    def feed(self, entries: list[Entry], cuts: list[int]) -> None:
        bounds = [0, *sorted(c % (len(entries) + 1) for c in cuts), len(entries)]
        for lo, hi in itertools.pairwise(bounds):
            self.results.update(self.applier.apply(entries[lo:hi]).results)
            # Compaction runs between batches at each member's own pace.
            if self.applier.has_background_work():
                self.results.update(self.applier.do_background_work(max_steps=1))
        while self.applier.has_background_work():
            self.results.update(self.applier.do_background_work(max_steps=3))


def _same(x: ApplyResult, y: ApplyResult) -> bool:
    if isinstance(x, Exception) or isinstance(y, Exception):
        return type(x) is type(y) and str(x) == str(y)
    return x == y


@settings(
    max_examples=300 if LONG else 25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    st.lists(requests, min_size=1, max_size=60 if LONG else 25),
    st.lists(st.integers(0, 100), max_size=5),
    st.lists(st.integers(0, 100), max_size=5),
    st.integers(0, 100),
)
def test_members_agree_and_replay_changes_nothing(
    reqs: list[Request], cuts_a: list[int], cuts_b: list[int], replay_from: int
) -> None:
    entries = [
        Entry(2, i + 1, data=encode_envelope(0x1000 + i, encode_payload(r)))
        for i, r in enumerate(reqs)
    ]
    tmp = tempfile.mkdtemp(prefix="kvorum-apply-")
    try:
        a, b = _Member(os.path.join(tmp, "a")), _Member(os.path.join(tmp, "b"))
        a.feed(entries, cuts_a)
        b.feed(entries, cuts_b)
        assert a.kv.hash_kv() == b.kv.hash_kv()
        assert a.backend.hash() == b.backend.hash()
        assert a.results.keys() == b.results.keys() == {0x1000 + i for i in range(len(reqs))}
        for rid, res in a.results.items():
            assert _same(res, b.results[rid]), (rid, res, b.results[rid])
        before = (a.kv.current_revision, a.backend.hash())
        replay = a.applier.apply(entries[replay_from % len(entries) :])
        assert replay.applied == 0 and replay.results == {}
        assert (a.kv.current_revision, a.backend.hash()) == before
        a.backend.close()
        b.backend.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
