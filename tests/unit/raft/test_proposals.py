"""Proposals: forwarding to the leader and every reason a proposal is refused."""

from __future__ import annotations

import pytest

from kvorum.raft import ConfChange, ConfChangeType, MessageType, ProposalDroppedError
from tests.unit.raft.helpers import Network, make_node, msg, storage_with_log


def test_follower_forwards_proposal_to_leader_5_1() -> None:
    net = Network()
    net.elect(1)
    f = net.node(3).raw
    f.propose(b"hello")
    rd = f.ready()
    [prop] = [m for m in rd.messages if m.type == MessageType.PROP]
    assert prop.to == 1 and prop.entries[0].data == b"hello"
    net.carry_out(3, rd)
    net.stabilize()
    for n in net.nodes.values():
        assert n.applied_data() == [b"hello"]


def test_proposal_without_leader_is_refused() -> None:
    raw, _ = make_node(1, (1, 2, 3))
    with pytest.raises(ProposalDroppedError, match="no leader"):
        raw.propose(b"x")


def test_proposal_on_candidate_is_refused() -> None:
    raw, _ = make_node(1, (1, 2, 3))
    raw.campaign()
    with pytest.raises(ProposalDroppedError, match="no leader"):
        raw.propose(b"x")


def test_proposal_refused_when_forwarding_disabled() -> None:
    net = Network(disable_proposal_forwarding=True)
    net.elect(1)
    with pytest.raises(ProposalDroppedError, match="forwarding is disabled"):
        net.node(2).raw.propose(b"x")


def test_proposal_refused_during_leadership_transfer_3_10() -> None:
    net = Network()
    net.elect(1)
    net.isolate(2)  # the transfer cannot complete
    net.node(1).raw.transfer_leader(2)
    with pytest.raises(ProposalDroppedError, match="transfer to 2"):
        net.node(1).raw.propose(b"x")


def test_proposal_refused_beyond_uncommitted_size() -> None:
    net = Network(max_uncommitted_entries_size_bytes=100)
    net.elect(1)
    net.isolate(1)  # nothing commits
    leader = net.node(1).raw
    leader.propose(b"x" * 60)
    leader.propose(b"x" * 40)
    with pytest.raises(ProposalDroppedError, match="uncommitted"):
        leader.propose(b"x" * 10)
    net.recover()
    net.stabilize()
    leader.propose(b"x" * 60)  # committed and applied: room again


def test_uncommitted_bound_admits_one_big_proposal_when_empty() -> None:
    net = Network(max_uncommitted_entries_size_bytes=10)
    net.elect(1)
    net.node(1).raw.propose(b"y" * 50)


def test_second_conf_change_refused_while_first_pending_4_1() -> None:
    net = Network()
    net.elect(1)
    leader = net.node(1).raw
    leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4))
    with pytest.raises(ProposalDroppedError, match="already pending"):
        leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 5))
    net.stabilize()  # committed and applied
    leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 5))


def test_conf_change_refused_until_new_leader_applied_its_log_4_1() -> None:
    # A new leader cannot tell whether its unapplied tail holds a conf change.
    st = storage_with_log((1, 2, 3), [1, 1], term=1, commit=2)
    raw, _ = make_node(1, storage=st, pre_vote=False)
    raw.campaign()
    raw.step(msg(MessageType.VOTE_RESP, 2, 1, term=2))
    assert raw.status().applied == 0
    with pytest.raises(ProposalDroppedError, match="already pending"):
        raw.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4))
    rd = raw.ready()
    st.append(rd.entries)
    raw.advance(rd)  # applies entries 1 and 2
    assert raw.status().applied == 2
    raw.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4))


def test_forwarded_conf_change_while_pending_becomes_noop_4_1() -> None:
    net = Network()
    net.elect(1)
    net.node(1).raw.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4))
    net.node(2).raw.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 5))
    net.stabilize()
    assert net.node(1).raw.status().conf_state.learners == (4,)


def test_removed_leader_refuses_proposals() -> None:
    net = Network()
    net.elect(1)
    net.node(1).raw.propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 1))
    net.stabilize()
    with pytest.raises(ProposalDroppedError):
        net.node(1).raw.propose(b"x")
