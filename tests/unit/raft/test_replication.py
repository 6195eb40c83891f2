"""Log replication: §5.3 consistency check and repair, §5.4.2 commitment rule,
thesis §10.2.1 leader persistence in parallel, progress states, flow control."""

from __future__ import annotations

from kvorum.raft import (
    ConfState,
    Entry,
    MemoryStorage,
    Message,
    MessageType,
    ProgressState,
    StateRole,
)
from tests.unit.raft.helpers import Network, Node, make_node, msg, storage_with_log, strip_entries

APP = MessageType.APP
APP_RESP = MessageType.APP_RESP


def test_committed_entries_reach_every_state_machine_in_order_5_3() -> None:
    net = Network()
    net.elect(1)
    for i in range(20):
        net.node(1).raw.propose(b"v%d" % i)
    net.stabilize()
    want = [b"v%d" % i for i in range(20)]
    for n in net.nodes.values():
        assert n.applied_data() == want
        assert n.raw.status().commit == n.raw.status().applied == 21


def test_leader_appends_noop_on_election_5_4_2() -> None:
    net = Network()
    net.elect(1)
    term = net.node(1).term
    for n in net.nodes.values():
        assert [(e.term, e.data) for e in n.applied] == [(term, b"")]


def test_follower_rejects_append_on_log_mismatch_5_3() -> None:
    st = storage_with_log((1, 2, 3), [1, 1, 2], term=2)
    raw, _ = make_node(2, storage=st)
    # The leader believes index 3 has term 3: the check fails.
    raw.step(msg(APP, 1, 2, term=3, index=3, log_term=3, entries=(Entry(3, 4),)))
    [resp] = raw.ready().messages
    assert resp.type == APP_RESP and resp.reject
    assert resp.index == 3
    # Fast back-off hint: the last index whose term is <= 3 in our log, with its term.
    assert (resp.reject_hint, resp.log_term) == (3, 2)


def test_follower_rejects_append_beyond_its_log_with_hint_5_3() -> None:
    st = storage_with_log((1, 2, 3), [1, 1], term=2)
    raw, _ = make_node(2, storage=st)
    raw.step(msg(APP, 1, 2, term=2, index=7, log_term=2))
    [resp] = raw.ready().messages
    assert resp.reject and resp.reject_hint == 2 and resp.log_term == 1


def test_follower_truncates_conflicting_suffix_5_3() -> None:
    st = storage_with_log((1, 2, 3), [1, 1, 2, 2], term=3, commit=2)
    raw, _ = make_node(2, storage=st)
    new = (Entry(3, 3, data=b"a"), Entry(3, 4, data=b"b"), Entry(3, 5, data=b"c"))
    raw.step(msg(APP, 1, 2, term=3, index=2, log_term=1, entries=new, commit=5))
    rd = raw.ready()
    assert rd.entries == new  # the app overwrites the stored suffix from index 3
    [resp] = rd.messages
    assert not resp.reject and resp.index == 5
    st.append(rd.entries)
    assert [st.term(i) for i in range(1, 6)] == [1, 1, 3, 3, 3]


def test_follower_keeps_matching_entries_on_duplicate_append_5_3() -> None:
    st = storage_with_log((1, 2, 3), [1, 1, 1], term=1, commit=1)
    raw, _ = make_node(2, storage=st)
    dup = (Entry(1, 2, data=b"old2"),)
    raw.step(msg(APP, 1, 2, term=1, index=1, log_term=1, entries=dup, commit=1))
    rd = raw.ready()
    assert rd.entries == ()  # nothing new: the entry at 3 is not truncated
    assert rd.messages[0].index == 2


def test_leader_repairs_divergent_follower_logs_5_3() -> None:
    # Figure 7-like: followers with missing and extra entries converge to the leader.
    leader_log = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
    cases = [
        [1, 1, 1, 4, 4, 5, 5, 6, 6],  # missing one
        [1, 1, 1, 4],  # missing many
        [1, 1, 1, 4, 4, 5, 5, 5, 5, 5, 5, 5],  # longer, with extra entries of term 5
        [1, 1, 1, 4, 4, 4, 4],  # extra entries of an old term
        [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],  # long divergent suffix
    ]
    for follower_log in cases:
        net = Network(ids=(1, 2), pre_vote=False, check_quorum=False)
        net.nodes.clear()
        for nid, terms in ((1, leader_log), (2, follower_log)):
            st = storage_with_log((1, 2), terms, term=6, commit=3)
            raw, _ = make_node(nid, storage=st, pre_vote=False, check_quorum=False)
            net.nodes[nid] = Node(nid, raw, st, {})
        net.elect(1)
        s1, s2 = net.node(1).storage, net.node(2).storage
        assert s2.last_index() == s1.last_index() == 11
        assert [s2.term(i) for i in range(1, 12)] == [s1.term(i) for i in range(1, 12)]
        apps = [m for m in net.sent if m.type == APP and m.to == 2]
        # Fast back-off: a handful of round trips, not one per divergent entry.
        assert len(apps) <= 4, follower_log


def test_leader_commits_only_entries_of_its_current_term_5_4_2() -> None:
    """Figure 8: an old-term entry on a majority is not committed by counting replicas."""
    stores = {
        1: storage_with_log((1, 2, 3), [1, 2], term=2, commit=1),
        2: storage_with_log((1, 2, 3), [1], term=2, commit=1),
        3: storage_with_log((1, 2, 3), [1], term=2, commit=1),
    }
    net = Network(pre_vote=False, check_quorum=False)
    for nid, st in stores.items():
        raw, _ = make_node(nid, storage=st, pre_vote=False, check_quorum=False)
        net.nodes[nid] = Node(nid, raw, st, {})
    # Node 2 receives the old entry (index 2, term 2) but never the new no-op of term 3;
    # node 3 receives no appends at all.
    net.filters.append(
        lambda m: strip_entries(m, lambda e: e.term != 3) if m.type == APP and m.to == 2 else m
    )
    net.drop(1, 3, APP)
    net.elect(1)
    leader = net.node(1).raw.status()
    assert leader.term == 3
    assert leader.progress[2].match == 2  # index 2 is on a majority (nodes 1 and 2)...
    assert leader.commit == 1  # ...but it is of term 2, so it is not committed
    assert net.node(2).raw.status().commit == 1
    net.recover()
    net.tick_all(2)
    # Once the no-op of term 3 is on a majority, it and everything before commit.
    assert net.node(1).raw.status().commit == 3
    assert all(n.raw.status().commit == 3 for n in net.nodes.values())


def test_leader_counts_own_log_only_once_persisted_10_2_1() -> None:
    net = Network()
    net.elect(1)
    net.isolate(3)
    leader = net.node(1)
    leader.raw.propose(b"x")
    rd = leader.raw.ready()
    # APPs leave with the entries to persist, in parallel with the leader's fsync.
    assert rd.entries and rd.entries[-1].data == b"x"
    apps = [m for m in rd.messages if m.type == APP]
    assert {m.to for m in apps} == {2, 3}
    index = rd.entries[-1].index
    # Node 2 persists and acknowledges while the leader has not yet persisted.
    for m in apps:
        net.deliver(m)
    net.process(2)
    for m in net.queue:
        leader.raw.step(m)
    net.queue.clear()
    # Only one durable copy (node 2): not committed.
    assert leader.raw.status().commit == index - 1
    leader.storage.append(rd.entries)
    leader.raw.advance(rd)
    assert leader.raw.status().commit == index  # now two durable copies


def test_single_voter_commits_only_after_advance_10_2_1() -> None:
    raw, st = make_node(1, (1,))
    raw.campaign()
    rd = raw.ready()
    assert rd.entries and rd.committed_entries == ()
    assert raw.status().commit == 0
    st.append(rd.entries)
    raw.advance(rd)
    rd = raw.ready()
    assert [e.index for e in rd.committed_entries] == [1]


def test_follower_applies_only_persisted_entries() -> None:
    raw, st = make_node(2, (1, 2, 3))
    raw.step(msg(APP, 1, 2, term=1, index=0, log_term=0, entries=(Entry(1, 1),), commit=1))
    rd = raw.ready()
    # Committed, but not yet durable here: not handed out for applying in this Ready.
    assert rd.entries and rd.committed_entries == ()
    assert rd.hard_state is not None and rd.hard_state.commit == 1
    st.append(rd.entries)
    raw.advance(rd)
    assert [e.index for e in raw.ready().committed_entries] == [1]


def test_many_proposals_are_batched_into_one_append() -> None:
    net = Network()
    net.elect(1)
    leader = net.node(1).raw
    for i in range(100):
        leader.propose(b"p%d" % i)
    rd = leader.ready()
    apps = [m for m in rd.messages if m.type == APP]
    assert sorted(m.to for m in apps) == [2, 3]
    assert all(len(m.entries) == 100 for m in apps)


def test_append_size_is_bounded_by_max_size_per_msg() -> None:
    net = Network(max_size_per_msg_bytes=1000)
    net.elect(1)
    leader = net.node(1).raw
    for _ in range(30):
        leader.propose(b"x" * 84)  # 100 bytes each with the entry overhead
    rd = leader.ready()
    apps = [m for m in rd.messages if m.type == APP and m.to == 2]
    assert [len(m.entries) for m in apps] == [10, 10, 10]


def test_replicate_state_pipelines_with_optimistic_next() -> None:
    net = Network()
    net.elect(1)
    net.drop(2, 1, APP_RESP)  # acknowledgements lost: the leader keeps streaming
    leader = net.node(1).raw
    for i in range(3):
        leader.propose(b"x%d" % i)
        net.stabilize()
    pr = leader.status().progress[2]
    assert pr.state == ProgressState.REPLICATE
    assert pr.next == leader.status().commit + 1 and pr.match < pr.next - 1


def test_inflight_window_bounded_by_count() -> None:
    net = Network(max_inflight_msgs=2)
    net.elect(1)
    net.drop(2, 1, APP_RESP)
    leader = net.node(1).raw
    net.sent.clear()
    for i in range(5):
        leader.propose(b"x%d" % i)
        net.stabilize()
    apps = [m for m in net.sent if m.type == APP and m.to == 2 and m.entries]
    assert len(apps) == 2


def test_inflight_window_bounded_by_bytes() -> None:
    net = Network(max_inflight_bytes=250)
    net.elect(1)
    net.drop(2, 1, APP_RESP)
    leader = net.node(1).raw
    net.sent.clear()
    for i in range(5):
        leader.propose(b"x" * 84 + b"%d" % i)  # ~100 bytes per message
        net.stabilize()
    apps = [m for m in net.sent if m.type == APP and m.to == 2 and m.entries]
    assert len(apps) == 3  # the third crosses 250 bytes, then the window is full


def test_heartbeat_response_frees_a_slot_in_a_full_window() -> None:
    net = Network(max_inflight_msgs=1)
    net.elect(1)
    net.drop(2, 1, APP_RESP)
    leader = net.node(1).raw
    leader.propose(b"a")
    net.stabilize()
    leader.propose(b"b")
    net.stabilize()
    n_before = len([m for m in net.sent if m.type == APP and m.to == 2 and m.entries])
    net.tick(1, 1)  # heartbeat; its response frees the slot and the leader sends on
    net.stabilize()
    n_after = len([m for m in net.sent if m.type == APP and m.to == 2 and m.entries])
    assert n_after == n_before + 1


def test_probe_state_sends_one_append_until_answered() -> None:
    st = MemoryStorage(ConfState((1, 2)))
    raw, _ = make_node(1, storage=st, pre_vote=False)
    raw.campaign()
    raw.step(msg(MessageType.VOTE_RESP, 2, 1, term=1))
    assert raw.status().role == StateRole.LEADER
    rd = raw.ready()
    assert len([m for m in rd.messages if m.type == APP]) == 1
    st.append(rd.entries)
    raw.advance(rd)
    for i in range(3):
        raw.propose(b"x%d" % i)
    rd = raw.ready()
    # Still probing (no answer yet): nothing more is sent to 2.
    assert [m for m in rd.messages if m.type == APP] == []
    assert raw.status().progress[2].state == ProgressState.PROBE


def test_rejection_moves_replicating_follower_back_to_probe() -> None:
    net = Network()
    net.elect(1)
    leader = net.node(1).raw
    term = leader.status().term
    assert leader.status().progress[2].state == ProgressState.REPLICATE
    last = leader.status().commit
    leader.step(
        Message(APP_RESP, to=1, frm=2, term=term, index=last + 5, reject=True, reject_hint=last)
    )
    assert leader.status().progress[2].state == ProgressState.PROBE


def test_report_unreachable_moves_to_probe() -> None:
    net = Network()
    net.elect(1)
    leader = net.node(1).raw
    leader.report_unreachable(2)
    assert leader.status().progress[2].state == ProgressState.PROBE


def test_restart_keeps_log_term_vote_and_commit() -> None:
    net = Network()
    net.elect(1)
    for i in range(5):
        net.propose(1, b"v%d" % i)
    before = net.node(2).raw.status()
    node = net.restart(2)
    after = node.raw.status()
    assert (after.term, after.vote, after.commit) == (before.term, before.vote, before.commit)
    net.stabilize()
    # It re-applies from its snapshot (none yet): the same entries in the same order.
    assert node.applied_data() == [b"v%d" % i for i in range(5)]
