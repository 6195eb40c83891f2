"""Snapshots and log compaction (Raft paper §7, thesis §5)."""

from __future__ import annotations

import pytest

from kvorum.raft import (
    CompactedError,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    MemoryStorage,
    Message,
    MessageType,
    ProgressState,
    Snapshot,
    SnapshotMetadata,
    SnapshotOutOfDateError,
    UnavailableError,
)
from tests.unit.raft.helpers import Network


def _compact_leader(net: Network, nid: int) -> int:
    node = net.node(nid)
    applied = node.raw.status().applied
    node.storage.create_snapshot(applied, node.raw.status().conf_state, b"state@%d" % applied)
    node.storage.compact(applied)
    return applied


def test_lagging_follower_receives_snapshot_7() -> None:
    net = Network()
    net.elect(1)
    net.isolate(3)
    for i in range(10):
        net.propose(1, b"v%d" % i)
    snap_index = _compact_leader(net, 1)
    net.recover()
    net.sent.clear()
    net.tick_all(3)
    snaps = [m for m in net.sent if m.type == MessageType.SNAP]
    assert [m.to for m in snaps] == [3]
    assert snaps[0].snapshot is not None and snaps[0].snapshot.data == b"state@%d" % snap_index
    st3 = net.node(3).storage
    assert st3.snapshot().metadata.index == snap_index
    assert st3.first_index() == snap_index + 1
    assert net.node(3).raw.status().commit == snap_index
    # Replication resumes after the snapshot.
    net.propose(1, b"after")
    assert net.node(3).applied_data() == [b"after"]
    assert net.node(1).raw.status().progress[3].state == ProgressState.REPLICATE


def test_ready_carries_snapshot_to_persist_before_entries_7() -> None:
    net = Network()
    net.elect(1)
    net.isolate(3)
    for i in range(5):
        net.propose(1, b"v%d" % i)
    snap_index = _compact_leader(net, 1)
    snap = net.node(1).storage.snapshot()
    f = net.node(3).raw
    term = net.node(1).term
    f.step(Message(MessageType.SNAP, to=3, frm=1, term=term, snapshot=snap))
    rd = f.ready()
    assert rd.snapshot == snap and rd.must_sync
    assert rd.committed_entries == ()
    [resp] = rd.messages
    assert resp.type == MessageType.APP_RESP and resp.index == snap_index


def test_report_snapshot_failure_returns_to_probe_7() -> None:
    net = Network()
    net.elect(1)
    net.isolate(3)
    for i in range(5):
        net.propose(1, b"v%d" % i)
    _compact_leader(net, 1)
    net.report_snapshots = False  # reported by hand below
    net.drop(1, 3, MessageType.SNAP)  # the snapshot is lost on the way
    net.cut_links.clear()
    net.tick_all(3)
    leader = net.node(1).raw
    assert leader.status().progress[3].state == ProgressState.SNAPSHOT
    leader.report_snapshot(3, ok=False)
    pr = leader.status().progress[3]
    assert pr.state == ProgressState.PROBE
    net.recover()
    net.tick_all(3)
    assert leader.status().progress[3].state == ProgressState.REPLICATE


def test_report_snapshot_success_moves_to_probe_after_snapshot_7() -> None:
    net = Network()
    net.elect(1)
    net.isolate(3)
    for i in range(5):
        net.propose(1, b"v%d" % i)
    snap_index = _compact_leader(net, 1)
    net.report_snapshots = False  # reported by hand below
    # Node 3 installs the snapshot but its acknowledgement is lost.
    net.filters.append(
        lambda m: None if m.type == MessageType.APP_RESP and m.frm == 3 and not m.reject else m
    )
    net.cut_links.clear()
    net.tick_all(2)
    leader = net.node(1).raw
    assert leader.status().progress[3].state == ProgressState.SNAPSHOT
    leader.report_snapshot(3, ok=True)
    pr = leader.status().progress[3]
    assert pr.state == ProgressState.PROBE and pr.next == snap_index + 1


def test_follower_ignores_snapshot_older_than_commit_7() -> None:
    net = Network()
    net.elect(1)
    for i in range(5):
        net.propose(1, b"v%d" % i)
    old = Snapshot(metadata=SnapshotMetadata(ConfState((1, 2, 3)), index=2, term=1))
    f = net.node(2).raw
    commit = f.status().commit
    f.step(Message(MessageType.SNAP, to=2, frm=1, term=net.node(1).term, snapshot=old))
    rd = f.ready()
    assert rd.snapshot.is_empty()
    assert rd.messages[0].index == commit


# --- MemoryStorage --------------------------------------------------------------------


def _storage(n: int) -> MemoryStorage:
    st = MemoryStorage(ConfState((1,)))
    st.append([Entry(1, i, data=b"%d" % i) for i in range(1, n + 1)])
    return st


def test_storage_append_truncates_conflicting_suffix() -> None:
    st = _storage(5)
    st.append([Entry(2, 3), Entry(2, 4)])
    assert st.last_index() == 4
    assert [st.term(i) for i in range(1, 5)] == [1, 1, 2, 2]


def test_storage_refuses_gap() -> None:
    st = _storage(2)
    with pytest.raises(Exception, match="missing"):
        st.append([Entry(1, 5)])


def test_storage_compact_and_bounds() -> None:
    st = _storage(10)
    st.create_snapshot(6, None, b"s")
    st.compact(6)
    assert (st.first_index(), st.last_index()) == (7, 10)
    assert st.term(6) == 1
    with pytest.raises(CompactedError):
        st.term(5)
    with pytest.raises(CompactedError):
        st.entries(6, 8)
    with pytest.raises(UnavailableError):
        st.entries(7, 12)
    with pytest.raises(CompactedError):
        st.compact(3)
    assert [e.index for e in st.entries(7, 11)] == [7, 8, 9, 10]
    # Appending over the compacted prefix keeps the part after it.
    st.append([Entry(1, 5), Entry(1, 6), Entry(3, 7)])
    assert (st.last_index(), st.term(7)) == (7, 3)


def test_storage_entries_respects_max_size_but_returns_one() -> None:
    st = _storage(10)  # each entry weighs 16 + 1 or 2 bytes
    assert len(st.entries(1, 11, 40)) == 2
    assert len(st.entries(1, 11, 1)) == 1


def test_storage_snapshot_out_of_date() -> None:
    st = _storage(5)
    snap = st.create_snapshot(4, ConfState((1, 2)), b"x")
    assert st.initial_state()[1] == ConfState((1, 2))
    with pytest.raises(SnapshotOutOfDateError):
        st.create_snapshot(3, None, b"x")
    with pytest.raises(SnapshotOutOfDateError):
        st.apply_snapshot(snap)
    newer = Snapshot(b"n", SnapshotMetadata(ConfState((1,)), index=20, term=4))
    st.apply_snapshot(newer)
    assert (st.first_index(), st.last_index(), st.term(20)) == (21, 20, 4)


def test_follower_past_stale_snapshot_gets_a_fresh_one_7() -> None:
    net = Network()
    net.elect(1)
    net.isolate(3)
    for i in range(5):
        net.propose(1, b"v%d" % i)
    first = _compact_leader(net, 1)
    net.report_snapshots = False
    held: list[Message] = []

    def hold_snap(m: Message) -> Message | None:
        if m.type == MessageType.SNAP:
            held.append(m)  # delayed in the network, never reported
            return None
        return m

    net.filters.append(hold_snap)
    net.cut_links.clear()
    net.tick_all(2)
    leader = net.node(1).raw
    assert leader.status().progress[3].state == ProgressState.SNAPSHOT and held
    for i in range(5):
        net.propose(1, b"w%d" % i)
    second = _compact_leader(net, 1)
    net.recover()
    # The old snapshot arrives late: node 3 installs it, yet the leader's log now
    # starts after it. The leader probes again, which ships the newer snapshot.
    net.deliver(held[0])
    net.stabilize()
    assert net.node(3).storage.snapshot().metadata.index == second > first
    assert leader.status().progress[3].state == ProgressState.REPLICATE


def test_unreported_lost_snapshot_is_sent_again_7() -> None:
    net = Network(election_tick=10)
    net.elect(1)
    net.isolate(3)
    for i in range(5):
        net.propose(1, b"v%d" % i)
    _compact_leader(net, 1)
    net.report_snapshots = False
    lost: list[Message] = []

    def lose_first_snap(m: Message) -> Message | None:
        if m.type == MessageType.SNAP and not lost:
            lost.append(m)
            return None
        return m

    net.cut_links.clear()
    net.filters.append(lose_first_snap)
    net.tick_all(45)  # SNAPSHOT_TIMEOUTS (3) election timeouts and a little more
    snaps = [m for m in net.sent if m.type == MessageType.SNAP and m.to == 3]
    assert len(snaps) == 2
    assert net.node(3).storage.snapshot().metadata.index == 6  # installed the resent one
    assert net.node(1).raw.status().progress[3].state == ProgressState.REPLICATE


def test_node_readded_under_same_id_accepts_snapshot_without_itself_7() -> None:
    net = Network()
    net.elect(1)
    net.node(1).raw.propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 3))
    net.stabilize()
    net.isolate(3)
    for i in range(3):
        net.propose(1, b"v%d" % i)
    _compact_leader(net, 1)  # the snapshot's membership lacks node 3
    assert 3 not in net.node(1).storage.snapshot().metadata.conf_state.voters
    net.recover()
    net.node(1).raw.propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 3))
    net.stabilize()
    net.tick_all(3)
    assert net.node(3).storage.snapshot().metadata.index > 0
    assert net.node(3).raw.status().conf_state.voters == (1, 2, 3)
    net.propose(1, b"back")
    assert net.node(3).applied_data()[-1:] == [b"back"]
