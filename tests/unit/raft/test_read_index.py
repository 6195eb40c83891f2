"""ReadIndex (thesis §6.4): batched heartbeat rounds, on the leader and via followers."""

from __future__ import annotations

from kvorum.raft import Message, MessageType, ReadState
from tests.unit.raft.helpers import Network, make_node, msg

HEARTBEAT = MessageType.HEARTBEAT


def test_leader_answers_read_after_quorum_heartbeat_round_6_4() -> None:
    net = Network()
    net.elect(1)
    net.propose(1, b"w")
    leader = net.node(1)
    commit = leader.raw.status().commit
    leader.raw.read_index(b"r1")
    assert leader.read_states == []
    net.stabilize()
    assert leader.read_states == [ReadState(commit, b"r1")]


def test_reads_waiting_for_one_round_are_batched_6_4() -> None:
    net = Network()
    net.elect(1)
    leader = net.node(1)
    for i in range(5):
        leader.raw.read_index(b"r%d" % i)
    rd = leader.raw.ready()
    beats = [m for m in rd.messages if m.type == HEARTBEAT]
    assert sorted(m.to for m in beats) == [2, 3]  # one round for all five reads
    net.carry_out(1, rd)
    net.stabilize()
    assert [rs.request_ctx for rs in leader.read_states] == [b"r%d" % i for i in range(5)]


def test_read_after_round_left_needs_a_new_round_6_4() -> None:
    net = Network()
    net.elect(1)
    leader = net.node(1)
    leader.raw.read_index(b"a")
    net.process(1)  # the round's heartbeats leave
    leader.raw.read_index(b"b")
    rd = leader.raw.ready()
    beats = [m for m in rd.messages if m.type == HEARTBEAT]
    assert len(beats) == 2 and beats[0].context != b""
    net.carry_out(1, rd)
    net.stabilize()
    assert sorted(rs.request_ctx for rs in leader.read_states) == [b"a", b"b"]


def test_partitioned_leader_does_not_answer_reads_6_4() -> None:
    net = Network()
    net.elect(1)
    net.isolate(1)
    net.node(1).raw.read_index(b"r")
    net.tick_all(5)
    assert net.node(1).read_states == []


def test_one_ack_confirms_with_majority_6_4() -> None:
    net = Network(ids=(1, 2, 3, 4, 5))
    net.elect(1)
    net.isolate(5)
    net.isolate(4)
    net.node(1).raw.read_index(b"r")
    net.stabilize()
    assert [rs.request_ctx for rs in net.node(1).read_states] == [b"r"]


def test_follower_read_is_forwarded_and_answered_6_4() -> None:
    net = Network()
    net.elect(1)
    net.propose(1, b"w")
    f = net.node(3)
    f.raw.read_index(b"fr")
    rd = f.raw.ready()
    [fwd] = [m for m in rd.messages if m.type == MessageType.READ_INDEX]
    assert fwd.to == 1 and fwd.context == b"fr"
    net.carry_out(3, rd)
    net.stabilize()
    resp = [m for m in net.sent if m.type == MessageType.READ_INDEX_RESP]
    assert [(m.to, m.context) for m in resp] == [(3, b"fr")]
    assert f.read_states == [ReadState(net.node(1).raw.status().commit, b"fr")]


def test_new_leader_defers_reads_until_its_term_commits_6_4() -> None:
    raw, st = make_node(1, (1, 2, 3), pre_vote=False)
    raw.campaign()
    raw.step(msg(MessageType.VOTE_RESP, 2, 1, term=1))
    raw.read_index(b"early")
    rd = raw.ready()
    assert [m for m in rd.messages if m.type == HEARTBEAT] == []  # queued, no round yet
    st.append(rd.entries)
    raw.advance(rd)
    # The no-op (index 1, term 1) commits once node 2 acknowledges it.
    raw.step(msg(MessageType.APP_RESP, 2, 1, term=1, index=1))
    assert raw.status().commit == 1
    rd = raw.ready()
    beats = [m for m in rd.messages if m.type == HEARTBEAT]
    assert len(beats) == 2
    st.append(rd.entries)
    raw.advance(rd)
    raw.step(Message(MessageType.HEARTBEAT_RESP, to=1, frm=2, term=1, context=beats[0].context))
    assert raw.ready().read_states == (ReadState(1, b"early"),)


def test_single_voter_answers_read_at_once_6_4() -> None:
    raw, st = make_node(1, (1,))
    raw.campaign()
    rd = raw.ready()
    st.append(rd.entries)
    raw.advance(rd)
    raw.read_index(b"solo")
    rd = raw.ready()
    assert rd.read_states == (ReadState(1, b"solo"),)


def test_follower_without_leader_drops_read_6_4() -> None:
    raw, _ = make_node(2, (1, 2, 3))
    raw.read_index(b"x")
    assert not raw.has_ready()


def test_later_round_confirms_earlier_ones_6_4() -> None:
    net = Network()
    net.elect(1)
    leader = net.node(1)
    net.drop(2, 1, MessageType.HEARTBEAT_RESP)
    net.drop(3, 1, MessageType.HEARTBEAT_RESP)
    leader.raw.read_index(b"first")
    net.stabilize()
    assert leader.read_states == []
    net.recover()
    leader.raw.read_index(b"second")
    net.stabilize()
    assert [rs.request_ctx for rs in leader.read_states] == [b"first", b"second"]


def test_minority_of_acks_does_not_confirm_read_6_4() -> None:
    net = Network(ids=(1, 2, 3, 4, 5))
    net.elect(1)
    for nid in (3, 4, 5):
        net.isolate(nid)
    net.node(1).raw.read_index(b"r")
    net.stabilize()
    assert net.node(1).read_states == []  # leader + node 2 are 2 of 5
    net.recover()
    net.cut(1, 5)
    net.tick_all(1)  # the regular heartbeat retries the round; now 4 of 5 answer
    assert [rs.request_ctx for rs in net.node(1).read_states] == [b"r"]
