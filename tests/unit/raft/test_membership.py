"""Membership changes one server at a time (thesis §4.1), learners (§4.2.1)."""

from __future__ import annotations

from kvorum.raft import (
    ConfChange,
    ConfChangeType,
    ConfState,
    MessageType,
    ProgressState,
    StateRole,
)
from tests.unit.raft.helpers import Network


def _change(net: Network, leader: int, kind: ConfChangeType, nid: int) -> None:
    net.node(leader).raw.propose_conf_change(ConfChange(kind, nid))
    net.stabilize()


def test_add_voter_gets_the_log_and_counts_for_quorum_4_1() -> None:
    net = Network()
    net.elect(1)
    net.propose(1, b"before")
    net.add_node(4, voters=())  # joins empty; learns everything from the leader
    _change(net, 1, ConfChangeType.ADD_NODE, 4)
    assert net.node(1).raw.status().conf_state == ConfState((1, 2, 3, 4))
    net.tick_all(2)
    assert net.node(4).applied_data() == [b"before"]
    # Quorum is now 3 of 4: with two voters cut off nothing commits.
    net.isolate(3)
    net.isolate(4)
    commit = net.node(1).raw.status().commit
    net.node(1).raw.propose(b"stuck")
    net.stabilize()
    assert net.node(1).raw.status().commit == commit


def test_remove_voter_shrinks_quorum_4_1() -> None:
    net = Network()
    net.elect(1)
    _change(net, 1, ConfChangeType.REMOVE_NODE, 3)
    assert net.node(1).raw.status().conf_state.voters == (1, 2)
    net.isolate(3)
    net.propose(1, b"two of two")
    assert net.node(2).applied_data() == [b"two of two"]


def test_removed_node_does_not_campaign_4_1() -> None:
    net = Network()
    net.elect(1)
    _change(net, 1, ConfChangeType.REMOVE_NODE, 3)
    term = net.node(1).term
    net.isolate(3)
    net.tick_all(100)
    assert net.node(3).role == StateRole.FOLLOWER
    assert net.node(3).term == term
    net.recover()
    net.tick_all(10)
    assert net.leaders() == [1] and net.node(1).term == term


def test_removed_leader_steps_down_and_others_elect_4_2_2() -> None:
    net = Network()
    net.elect(1)
    _change(net, 1, ConfChangeType.REMOVE_NODE, 1)
    assert net.node(1).role == StateRole.FOLLOWER
    net.tick_all(40)
    leaders = net.leaders()
    assert len(leaders) == 1 and leaders[0] in (2, 3)
    net.propose(leaders[0], b"after")
    assert net.node(2).applied_data()[-1:] == [b"after"]
    assert net.node(3).applied_data()[-1:] == [b"after"]


def test_learner_receives_log_but_does_not_count_for_quorum_4_2_1() -> None:
    net = Network(learners=(4,))
    net.elect(1)
    net.propose(1, b"a")
    assert net.node(4).applied_data() == [b"a"]
    net.isolate(2)
    net.isolate(3)
    commit = net.node(1).raw.status().commit
    net.node(1).raw.propose(b"b")
    net.stabilize()
    # The learner has acknowledged it, yet one voter of three is no quorum.
    assert net.node(1).raw.status().progress[4].match == commit + 1
    assert net.node(1).raw.status().commit == commit


def test_learner_never_campaigns_4_2_1() -> None:
    net = Network(learners=(4,))
    net.elect(1)
    net.isolate(4)
    net.tick_all(100)
    assert net.node(4).role == StateRole.FOLLOWER
    assert not [m for m in net.sent if m.frm == 4 and m.type == MessageType.PRE_VOTE]


def test_add_learner_then_promote_4_2_1() -> None:
    net = Network()
    net.elect(1)
    # A joining node starts knowing the current members (as etcd's --initial-cluster).
    net.add_node(4, voters=(1, 2, 3))
    _change(net, 1, ConfChangeType.ADD_LEARNER_NODE, 4)
    st = net.node(1).raw.status()
    assert st.conf_state == ConfState((1, 2, 3), (4,))
    assert st.progress[4].is_learner
    net.tick_all(2)
    _change(net, 1, ConfChangeType.ADD_NODE, 4)
    st = net.node(1).raw.status()
    assert st.conf_state == ConfState((1, 2, 3, 4), ())
    assert not st.progress[4].is_learner
    # Every member applied the same change.
    assert net.node(4).raw.status().conf_state == ConfState((1, 2, 3, 4), ())


def test_status_on_leader_lists_every_peer() -> None:
    net = Network(learners=(4,))
    net.elect(1)
    st = net.node(1).raw.status()
    assert st.role == StateRole.LEADER and st.leader == 1 and st.vote == 1
    assert set(st.progress) == {1, 2, 3, 4}
    last = st.commit
    for nid in (2, 3, 4):
        p = st.progress[nid]
        assert (p.match, p.next, p.state) == (last, last + 1, ProgressState.REPLICATE)
        assert p.recent_active and p.is_learner == (nid == 4)
    assert net.node(2).raw.status().progress == {}


def test_conf_change_committed_and_applied_on_every_member_4_1() -> None:
    net = Network()
    net.elect(1)
    _change(net, 1, ConfChangeType.ADD_LEARNER_NODE, 7)
    for nid in (1, 2, 3):
        assert net.node(nid).conf_states == [ConfState((1, 2, 3), (7,))]
