"""The applier against a real LMDB backend and mvcc store: committed entries -> state.

A `Node` here is one member's state (backend, mvcc, membership, alarms, applier) in a temp
dir; tests feed it raft entries built the way the proposer builds them (envelope + payload).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kvorum.apply import (
    AlarmRequest,
    AlarmResponse,
    Applier,
    ApplyResult,
    ClusterVersionSetRequest,
    CompactRequest,
    CompactResponse,
    CorruptError,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    MemberAttrSetRequest,
    MembersResponse,
    NoSpaceError,
    PayloadError,
    Request,
    encode_payload,
)
from kvorum.backend import Backend
from kvorum.lease import LeaseStore, Lessor
from kvorum.membership import (
    AlarmAction,
    AlarmMember,
    AlarmStore,
    AlarmType,
    ConfChangeContext,
    IDRemovedError,
    Member,
    MemberExistsError,
    MembershipStore,
    encode_conf_change_context,
)
from kvorum.mvcc import (
    CompactedError,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    FutureRevError,
    KeyNotFoundError,
    LeaseNotFoundError,
    MvccStore,
    PutRequest,
    PutResponse,
    RangeRequest,
    TxnRequest,
    TxnResponse,
)
from kvorum.raft.types import ConfChange, ConfChangeType, ConfState, Entry, EntryType
from kvorum.server.envelope import encode_conf_change, encode_envelope

TERM = 3


@dataclass
class Node:
    """One member's apply-side state, reopenable from its directory."""

    path: str
    quota_bytes: int = 0
    with_lessor: bool = True
    conf_changes: list[ConfChange] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.open()

    def open(self) -> None:
        self.backend = Backend(os.path.join(self.path, "db"))
        self.lessor: Lessor | None = None
        if self.with_lessor:
            self.lessor = Lessor(min_ttl_s=1, sink=LeaseStore(self.backend))
        self.kv = MvccStore(self.backend, lease_exists=self.lessor.exists if self.lessor else None)
        self.members = MembershipStore(self.backend)
        self.alarms = AlarmStore(self.backend)
        self.applier = Applier(
            self.backend,
            self.kv,
            self.members,
            self.alarms,
            lessor=self.lessor,
            apply_conf_change=self._on_conf_change,
            quota_bytes=self.quota_bytes,
            compact_step_revisions=4,
        )

    def _on_conf_change(self, cc: ConfChange) -> ConfState:
        self.conf_changes.append(cc)
        return ConfState(voters=(cc.node_id,))

    def reopen(self) -> None:
        self.backend.close()
        self.open()

    def close(self) -> None:
        self.backend.close()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(str(tmp_path / "a"))
    yield n
    n.close()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    a, b = Node(str(tmp_path / "a")), Node(str(tmp_path / "b"))
    yield a, b
    a.close()
    b.close()


class Log:
    """Builds committed entries with consecutive indexes, as the leader's log would hold."""

    def __init__(self) -> None:
        self.index = 0
        self.next_id = 0x100

    def _next(self) -> tuple[int, int]:
        self.index += 1
        self.next_id += 1
        return self.index, self.next_id

    def req(self, request: Request) -> tuple[int, Entry]:
        """(request id, entry) of a client write."""
        index, rid = self._next()
        data = encode_envelope(rid, encode_payload(request))
        return rid, Entry(TERM, index, EntryType.NORMAL, data)

    def raw(self, payload: bytes) -> tuple[int, Entry]:
        index, rid = self._next()
        return rid, Entry(TERM, index, EntryType.NORMAL, encode_envelope(rid, payload))

    def noop(self) -> Entry:
        index, _rid = self._next()
        return Entry(TERM, index)

    def conf(
        self,
        kind: ConfChangeType,
        node_id: int,
        member: Member | None = None,
        *,
        promote: bool = False,
    ) -> tuple[int, Entry]:
        index, rid = self._next()
        ctx = encode_conf_change_context(ConfChangeContext(member, promote))
        cc = encode_conf_change(rid, ConfChange(kind, node_id, ctx))
        return rid, Entry(TERM, index, EntryType.CONF_CHANGE, cc.encode())


def put(key: bytes, value: bytes = b"v", **kw: object) -> PutRequest:
    return PutRequest(key, value, **kw)  # type: ignore[arg-type]


# --- the basic contract ---------------------------------------------------------------------


def test_mixed_batch_takes_one_revision_per_write_and_answers_by_request_id(node: Node) -> None:
    log = Log()
    r1, e1 = log.req(put(b"a", b"1"))
    r2, e2 = log.req(put(b"b", b"2"))
    noop = log.noop()
    r3, e3 = log.req(DeleteRangeRequest(b"a"))
    r4, e4 = log.req(DeleteRangeRequest(b"nothing"))  # deletes nothing: no revision
    r5, e5 = log.req(
        TxnRequest(
            compare=(Compare(b"b", CompareTarget.VALUE, CompareResult.EQUAL, value=b"2"),),
            success=(put(b"c"), put(b"d"), RangeRequest(b"b")),
        )
    )
    batch = node.applier.apply([e1, e2, noop, e3, e4, e5])

    assert batch.applied == 6 and batch.skipped == 0
    assert batch.applied_index == e5.index == node.applier.applied_index
    assert node.backend.consistent_index() == (e5.index, TERM)
    assert node.kv.current_revision == 5  # 1 (empty) + put + put + delete + txn
    assert set(batch.results) == {r1, r2, r3, r4, r5}
    p1, p2 = batch.results[r1], batch.results[r2]
    assert isinstance(p1, PutResponse) and p1.revision == 2
    assert isinstance(p2, PutResponse) and p2.revision == 3
    d = batch.results[r3]
    assert isinstance(d, DeleteRangeResponse) and d.deleted == 1 and d.revision == 4
    nothing = batch.results[r4]
    assert isinstance(nothing, DeleteRangeResponse) and nothing.deleted == 0
    t = batch.results[r5]
    assert isinstance(t, TxnResponse) and t.succeeded and t.revision == 5
    assert [kv.key for kv in node.kv.range(RangeRequest(b"a", b"z")).kvs] == [b"b", b"c", b"d"]
    # The events of the batch, in revision order, for the watch hub.
    assert [(e.kv.key, e.kv.mod_revision) for e in batch.events] == [
        (b"a", 2),
        (b"b", 3),
        (b"a", 4),
        (b"c", 5),
        (b"d", 5),
    ]


def test_replayed_entries_are_skipped_so_each_applies_once(node: Node) -> None:
    log = Log()
    entries = [log.req(put(b"k", str(i).encode()))[1] for i in range(5)]
    node.applier.apply(entries)
    rev, crc = node.kv.current_revision, node.kv.hash_kv()

    again = node.applier.apply(entries)
    assert (again.applied, again.skipped, again.results) == (0, 5, {})
    assert node.kv.current_revision == rev and node.kv.hash_kv() == crc

    # After a restart the WAL replays from before the applied index: still applied once.
    node.reopen()
    assert node.applier.applied_index == entries[-1].index
    more = [log.req(put(b"k", b"new"))[1]]
    replay = node.applier.apply(entries + more)
    assert (replay.applied, replay.skipped) == (1, 5)
    assert node.kv.current_revision == rev + 1
    kv = node.kv.get(b"k")
    assert kv is not None and kv.version == 6 and kv.value == b"new"


def test_uncommitted_batch_lost_in_a_crash_is_applied_again(tmp_path: Path) -> None:
    n = Node(str(tmp_path / "n"))
    log = Log()
    first = [log.req(put(b"x"))[1]]
    n.applier.apply(first)
    n.backend.batch.commit()
    second = [log.req(put(b"y"))[1]]
    n.applier.apply(second)
    n.backend.batch.abort()  # the crash: the open batch never reached LMDB
    n.reopen()
    assert n.applier.applied_index == first[-1].index
    n.applier.apply(first + second)
    assert n.kv.get(b"y") is not None and n.kv.current_revision == 3
    n.close()


def test_two_members_fed_the_same_entries_agree_on_state_and_results(
    pair: tuple[Node, Node],
) -> None:
    a, b = pair
    log = Log()
    entries = [
        log.req(put(b"k1", b"v1"))[1],
        log.req(put(b"k2", b"v2", prev_kv=True))[1],
        log.req(put(b"missing", ignore_value=True))[1],  # KeyNotFoundError
        log.req(CompactRequest(2))[1],
        log.req(TxnRequest(success=(RangeRequest(b"k1", revision=1),)))[1],  # CompactedError
        log.req(CompactRequest(99))[1],  # FutureRevError
        log.raw(b"\x63garbage")[1],  # PayloadError
        log.req(DeleteRangeRequest(b"k", b"l", prev_kv=True))[1],
        log.req(LeaseGrantRequest(7, 30))[1],
        log.req(put(b"leased", lease=7))[1],
        log.req(put(b"bad-lease", lease=8))[1],  # LeaseNotFoundError
        log.req(LeaseRevokeRequest(7))[1],
    ]
    # Fed in different batch splits: the split must not matter.
    ra = a.applier.apply(entries)
    rb1 = b.applier.apply(entries[:5])
    rb2 = b.applier.apply(entries[5:])
    results_b = {**rb1.results, **rb2.results}

    assert a.kv.hash_kv() == b.kv.hash_kv()
    assert a.backend.hash() == b.backend.hash()
    assert ra.results.keys() == results_b.keys()
    for rid, res in ra.results.items():
        other = results_b[rid]
        if isinstance(res, Exception):
            assert type(res) is type(other) and str(res) == str(other)
        else:
            assert res == other
    kinds = [type(ra.results[rid]) for rid in sorted(ra.results)]
    assert KeyNotFoundError in kinds and FutureRevError in kinds and CompactedError in kinds
    assert PayloadError in kinds and LeaseNotFoundError in kinds


def test_errors_are_results_and_still_advance_the_index(node: Node) -> None:
    log = Log()
    r1, e1 = log.req(put(b"k", ignore_lease=True))
    r2, e2 = log.req(CompactRequest(5))
    r3, e3 = log.raw(b"")  # an envelope with an empty payload
    batch = node.applier.apply([e1, e2, e3])
    assert isinstance(batch.results[r1], KeyNotFoundError)
    assert isinstance(batch.results[r2], FutureRevError)
    assert isinstance(batch.results[r3], PayloadError)
    assert str(batch.results[r1]) == "etcdserver: key not found"
    assert node.backend.consistent_index() == (e3.index, TERM)
    assert node.kv.current_revision == 1


# --- compaction -----------------------------------------------------------------------------


def test_physical_compaction_runs_in_steps_and_answers_when_done(node: Node) -> None:
    log = Log()
    node.applier.apply([log.req(put(b"k%d" % (i % 3), b"%d" % i))[1] for i in range(30)])
    assert node.kv.current_revision == 31
    rid, entry = log.req(CompactRequest(25, physical=True))
    batch = node.applier.apply([entry])
    assert rid not in batch.results  # answered only once compaction is done
    # Reads below the compaction fail at once, before any physical work.
    with pytest.raises(CompactedError):
        node.kv.range(RangeRequest(b"k0", revision=20))
    assert node.applier.has_background_work()

    steps = 0
    done: dict[int, ApplyResult] = {}
    while not done:
        done = node.applier.do_background_work(max_steps=1)
        steps += 1
        assert steps < 50
    assert steps > 1  # bounded steps of 4 revision-log entries each, not one sweep
    resp = done[rid]
    assert isinstance(resp, CompactResponse) and resp.revision == 31
    assert not node.applier.has_background_work()
    assert node.kv.finished_compact_revision == 25
    # The live data is untouched.
    assert {kv.key for kv in node.kv.range(RangeRequest(b"k", b"l")).kvs} == {b"k0", b"k1", b"k2"}


def test_logical_compaction_answers_at_once(node: Node) -> None:
    log = Log()
    node.applier.apply([log.req(put(b"k"))[1] for _ in range(5)])
    rid, entry = log.req(CompactRequest(3))
    batch = node.applier.apply([entry])
    assert batch.results[rid] == CompactResponse(6)
    assert node.applier.has_background_work()
    assert node.applier.do_background_work(max_steps=100) == {}
    assert not node.applier.has_background_work()


# --- space quota and alarms -----------------------------------------------------------------


def test_nospace_alarm_caps_writes_until_disarmed(node: Node) -> None:
    log = Log()
    node.applier.apply([log.req(put(b"seed"))[1]])
    node.backend.batch.commit()
    node.applier.quota_bytes = node.backend.size_bytes() + 1000

    # Over the quota: etcd applies the write on every member, tells the proposer "no space",
    # and asks the server to raise the alarm through raft.
    rid, big = log.req(put(b"big", b"x" * 2000))
    batch = node.applier.apply([big])
    err = batch.results[rid]
    assert isinstance(err, NoSpaceError)
    assert str(err) == "etcdserver: mvcc: database space exceeded"
    assert batch.nospace_alarm_wanted
    assert node.kv.get(b"big") is not None
    assert not node.applier.nospace

    node.applier.quota_bytes = -1  # from here on only the alarm decides
    r_alarm, arm = log.req(AlarmRequest(AlarmAction.ACTIVATE, 0xA1, AlarmType.NOSPACE))
    r_put, p = log.req(put(b"refused"))
    r_txn, t = log.req(TxnRequest(success=(put(b"refused-too"),)))
    r_txn_del, td = log.req(TxnRequest(success=(DeleteRangeRequest(b"seed"),)))
    r_del, d = log.req(DeleteRangeRequest(b"big"))
    r_cmp, c = log.req(CompactRequest(2))
    r_grant, g = log.req(LeaseGrantRequest(5, 10))
    r_get, get = log.req(AlarmRequest(AlarmAction.GET, 0, AlarmType.NONE))
    batch = node.applier.apply([arm, p, t, td, d, c, g, get])
    assert batch.results[r_alarm] == AlarmResponse(3, (AlarmMember(0xA1, AlarmType.NOSPACE),))
    assert node.applier.nospace
    assert not batch.nospace_alarm_wanted  # already raised
    for rid in (r_put, r_txn, r_grant):
        assert isinstance(batch.results[rid], NoSpaceError)
    assert node.kv.get(b"refused") is None and node.kv.get(b"refused-too") is None
    assert isinstance(batch.results[r_txn_del], TxnResponse)
    assert isinstance(batch.results[r_del], DeleteRangeResponse)
    assert isinstance(batch.results[r_cmp], CompactResponse)
    got = batch.results[r_get]
    assert isinstance(got, AlarmResponse)
    assert got.alarms == (AlarmMember(0xA1, AlarmType.NOSPACE),)

    # The alarm survives a restart (it is in the backend, like everything applied).
    node.reopen()
    assert node.applier.nospace
    r_off, off = log.req(AlarmRequest(AlarmAction.DEACTIVATE, 0xA1, AlarmType.NOSPACE))
    r_ok, ok = log.req(put(b"after"))
    batch = node.applier.apply([off, ok])
    assert batch.results[r_off] == AlarmResponse(5, (AlarmMember(0xA1, AlarmType.NOSPACE),))
    assert not node.applier.nospace
    assert isinstance(batch.results[r_ok], PutResponse)


def test_corrupt_alarm_refuses_kv_requests(node: Node) -> None:
    log = Log()
    _r, arm = log.req(AlarmRequest(AlarmAction.ACTIVATE, 1, AlarmType.CORRUPT))
    r_put, p = log.req(put(b"k"))
    r_del, d = log.req(DeleteRangeRequest(b"k"))
    r_cmp, c = log.req(CompactRequest(1))
    batch = node.applier.apply([arm, p, d, c])
    for rid in (r_put, r_del, r_cmp):
        err = batch.results[rid]
        assert isinstance(err, CorruptError) and str(err) == "etcdserver: corrupt cluster"
    assert node.kv.current_revision == 1


# --- leases ---------------------------------------------------------------------------------


def test_lease_grant_attach_and_revoke_deletes_keys_in_one_revision(node: Node) -> None:
    log = Log()
    r_grant, g = log.req(LeaseGrantRequest(42, 60))
    entries = [g, log.req(put(b"a", lease=42))[1], log.req(put(b"b", lease=42))[1]]
    entries.append(log.req(put(b"c"))[1])
    r_rev, rev = log.req(LeaseRevokeRequest(42))
    r_again, again = log.req(LeaseRevokeRequest(42))
    batch = node.applier.apply([*entries, rev, again])
    assert batch.results[r_grant] == LeaseGrantResponse(1, 42, 60)
    revoked = batch.results[r_rev]
    assert isinstance(revoked, LeaseRevokeResponse) and revoked.revision == 5
    assert sorted(e.kv.key for e in revoked.events) == [b"a", b"b"]
    assert {e.kv.mod_revision for e in revoked.events} == {5}
    assert isinstance(batch.results[r_again], LeaseNotFoundError)
    assert node.kv.get(b"a") is None and node.kv.get(b"c") is not None
    assert node.lessor is not None and not node.lessor.exists(42)


def test_without_a_lessor_lease_requests_are_refused_as_lease_not_found(tmp_path: Path) -> None:
    n = Node(str(tmp_path / "n"), with_lessor=False)
    log = Log()
    r1, e1 = log.req(LeaseGrantRequest(1, 10))
    r2, e2 = log.req(LeaseRevokeRequest(1))
    r3, e3 = log.req(put(b"k", lease=1))
    r4, e4 = log.req(TxnRequest(failure=(TxnRequest(success=(put(b"k", lease=1),)),)))
    batch = n.applier.apply([e1, e2, e3, e4])
    for rid in (r1, r2, r3, r4):
        err = batch.results[rid]
        assert isinstance(err, LeaseNotFoundError)
        assert err.spec.grpc_text == "etcdserver: requested lease not found"
    assert n.kv.current_revision == 1
    n.close()


# --- membership -----------------------------------------------------------------------------

M2 = Member(2, peer_urls=("http://10.0.0.2:2380",))
M3 = Member(3, peer_urls=("http://10.0.0.3:2380",))


def test_conf_changes_update_membership_and_call_raft(node: Node) -> None:
    log = Log()
    r_add, add = log.conf(ConfChangeType.ADD_NODE, 2, M2)
    r_learner, learner = log.conf(ConfChangeType.ADD_LEARNER_NODE, 3, M3)
    r_dup, dup = log.conf(ConfChangeType.ADD_NODE, 2, M2)
    r_promote, promote = log.conf(ConfChangeType.ADD_NODE, 3, promote=True)
    r_attr, attr = log.req(MemberAttrSetRequest(2, "infra2", ("http://10.0.0.2:2379",)))
    r_rm, rm = log.conf(ConfChangeType.REMOVE_NODE, 2)
    r_back, back = log.conf(ConfChangeType.ADD_NODE, 2, M2)
    _r, version = log.req(ClusterVersionSetRequest("3.4.0"))
    batch = node.applier.apply([add, learner, dup, promote, attr, rm, back, version])

    added = batch.results[r_add]
    assert isinstance(added, MembersResponse)
    assert added.members == (M2,) and added.conf_state == ConfState(voters=(2,))
    as_learner = batch.results[r_learner]
    assert isinstance(as_learner, MembersResponse)
    assert as_learner.members[1] == Member(3, peer_urls=M3.peer_urls, is_learner=True)
    dup_err = batch.results[r_dup]
    assert isinstance(dup_err, MemberExistsError)
    assert dup_err.spec.grpc_text == "etcdserver: member ID already exist"
    promoted = batch.results[r_promote]
    assert isinstance(promoted, MembersResponse) and not promoted.members[1].is_learner
    attrs = batch.results[r_attr]
    assert isinstance(attrs, MembersResponse)
    assert attrs.members[0].name == "infra2" and attrs.members[0].is_started
    removed = batch.results[r_rm]
    assert isinstance(removed, MembersResponse) and [m.id for m in removed.members] == [3]
    assert isinstance(batch.results[r_back], IDRemovedError)
    assert node.members.cluster_version() == "3.4.0"
    # raft saw exactly the accepted changes, in order.
    assert [(c.type, c.node_id) for c in node.conf_changes] == [
        (ConfChangeType.ADD_NODE, 2),
        (ConfChangeType.ADD_LEARNER_NODE, 3),
        (ConfChangeType.ADD_NODE, 3),
        (ConfChangeType.REMOVE_NODE, 2),
    ]

    # A restart replays the log: membership is not applied twice, but the raft core (rebuilt
    # from its snapshot) is handed the accepted changes again, and only those.
    node.conf_changes.clear()
    entries = [add, learner, dup, promote, attr, rm, back, version]
    node.reopen()
    node.conf_changes.clear()
    replay = node.applier.apply(entries)
    assert replay.skipped == len(entries) and replay.results == {}
    assert [(c.type, c.node_id) for c in node.conf_changes] == [
        (ConfChangeType.ADD_NODE, 2),
        (ConfChangeType.ADD_LEARNER_NODE, 3),
        (ConfChangeType.ADD_NODE, 3),
        (ConfChangeType.REMOVE_NODE, 2),
    ]
    assert [m.id for m in node.members.members()] == [3]


def test_conf_change_with_an_unreadable_context_is_rejected_alike(
    pair: tuple[Node, Node],
) -> None:
    log = Log()
    index, rid = log._next()
    cc = encode_conf_change(rid, ConfChange(ConfChangeType.ADD_NODE, 9, b"\x80junk"))
    entry = Entry(TERM, index, EntryType.CONF_CHANGE, cc.encode())
    for n in pair:
        batch = n.applier.apply([entry])
        assert isinstance(batch.results[rid], PayloadError)
        assert n.conf_changes == [] and n.members.members() == ()
    assert pair[0].backend.hash() == pair[1].backend.hash()
