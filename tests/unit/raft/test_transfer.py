"""Leadership transfer (thesis §3.10)."""

from __future__ import annotations

import pytest

from kvorum.raft import (
    ConfChange,
    ConfChangeType,
    Message,
    MessageType,
    ProposalDroppedError,
    StateRole,
)
from tests.unit.raft.helpers import Network


def test_transfer_to_up_to_date_follower_3_10() -> None:
    net = Network()
    net.elect(1)
    term = net.node(1).term
    net.node(1).raw.transfer_leader(2)
    net.stabilize()
    assert net.leaders() == [2]
    assert net.node(2).term == term + 1
    timeout_now = [m for m in net.sent if m.type == MessageType.TIMEOUT_NOW]
    assert [(m.frm, m.to) for m in timeout_now] == [(1, 2)]
    # The transferee skipped pre-vote and marked its votes to pass the leader lease.
    votes = [m for m in net.sent if m.type == MessageType.VOTE and m.frm == 2]
    assert votes and all(m.context == b"CampaignTransfer" for m in votes)
    assert not [m for m in net.sent if m.type == MessageType.PRE_VOTE and m.frm == 2]


def test_transfer_brings_lagging_transferee_up_to_date_first_3_10() -> None:
    net = Network()
    net.elect(1)
    net.isolate(3)
    for i in range(5):
        net.propose(1, b"v%d" % i)
    net.recover()
    net.sent.clear()
    net.node(1).raw.transfer_leader(3)
    net.stabilize()
    assert net.leaders() == [3]
    sent_types = [m.type for m in net.sent if m.frm == 1 and m.to == 3]
    assert sent_types.index(MessageType.APP) < sent_types.index(MessageType.TIMEOUT_NOW)
    assert net.node(3).applied_data()[:5] == [b"v%d" % i for i in range(5)]


def test_transfer_requested_on_follower_is_forwarded_3_10() -> None:
    net = Network()
    net.elect(1)
    net.node(3).raw.transfer_leader(3)
    net.stabilize()
    assert net.leaders() == [3]


def test_transfer_aborted_after_election_timeout_3_10() -> None:
    net = Network(election_tick=10)
    net.elect(1)
    net.isolate(3)
    leader = net.node(1).raw
    leader.transfer_leader(3)
    assert leader.status().lead_transferee == 3
    with pytest.raises(ProposalDroppedError):
        leader.propose(b"x")
    net.cut_links.clear()
    net.drop(1, 3)  # node 3 never gets anything: the transfer cannot finish
    net.tick_all(10)
    assert leader.status().lead_transferee == 0
    assert leader.status().role == StateRole.LEADER
    leader.propose(b"x")  # accepted again


def test_transfer_to_learner_refused_3_10() -> None:
    net = Network(learners=(4,))
    net.elect(1)
    with pytest.raises(ProposalDroppedError, match="not a voter"):
        net.node(1).raw.transfer_leader(4)
    assert net.node(1).raw.status().lead_transferee == 0


def test_transfer_to_removed_transferee_is_aborted_3_10() -> None:
    net = Network()
    net.elect(1)
    net.isolate(3)
    leader = net.node(1).raw
    leader.transfer_leader(3)
    net.recover()
    # Removing the transferee ends the transfer (applied via the state machine).
    leader.apply_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 3))
    assert leader.status().lead_transferee == 0


def test_transfer_vote_bypasses_leader_lease_3_10() -> None:
    net = Network()
    net.elect(1)
    net.node(2).raw.step(Message(MessageType.TIMEOUT_NOW, to=2, frm=1, term=net.node(1).term))
    net.stabilize()
    # Node 3 heard from leader 1 a moment ago, yet granted its vote.
    assert net.leaders() == [2]
