"""Leader election: §5.1 terms, §5.2 elections, §5.4.1 election restriction,
thesis §9.6 pre-vote and §6.2 check-quorum / leader lease."""

from __future__ import annotations

from kvorum.raft import NONE, HardState, MessageType, StateRole
from tests.unit.raft.helpers import Network, make_node, msg, storage_with_log

VOTE = MessageType.VOTE
VOTE_RESP = MessageType.VOTE_RESP
PRE_VOTE = MessageType.PRE_VOTE


def test_followers_elect_exactly_one_leader_5_2() -> None:
    for seed in range(20):
        net = Network(seed=seed)
        net.tick_all(25)
        leaders = net.leaders()
        assert len(leaders) == 1, f"seed {seed}"
        term = net.node(leaders[0]).term
        for n in net.nodes.values():
            st = n.raw.status()
            assert st.term == term
            assert st.leader == leaders[0]


def test_election_timeout_is_randomized_in_range_5_2() -> None:
    seen = set()
    for seed in range(50):
        raw, _ = make_node(1, (1, 2, 3), seed=seed, election_tick=10)
        timeout = raw._raft.randomized_election_timeout
        assert 10 <= timeout < 20
        seen.add(timeout)
    assert len(seen) > 3  # actually random


def test_same_seed_same_election_5_2() -> None:
    outcomes = []
    for _ in range(2):
        net = Network(seed=42)
        net.tick_all(25)
        outcomes.append((net.leaders(), [n.term for n in net.nodes.values()]))
    assert outcomes[0] == outcomes[1]


def test_follower_votes_at_most_once_per_term_5_2() -> None:
    raw, _ = make_node(1, (1, 2, 3))
    raw.step(msg(VOTE, 2, 1, term=1))
    raw.step(msg(VOTE, 3, 1, term=1))
    rd = raw.ready()
    resps = [(m.to, m.reject) for m in rd.messages if m.type == VOTE_RESP]
    assert resps == [(2, False), (3, True)]
    assert rd.hard_state is not None and rd.hard_state.vote == 2


def test_vote_is_persisted_in_the_same_ready_as_the_grant_5_2() -> None:
    raw, st = make_node(1, (1, 2, 3))
    raw.step(msg(VOTE, 2, 1, term=5))
    rd = raw.ready()
    grant = [m for m in rd.messages if m.type == VOTE_RESP and not m.reject]
    assert grant and grant[0].term == 5
    assert rd.hard_state == HardState(term=5, vote=2, commit=0)
    assert rd.must_sync
    st.set_hard_state(rd.hard_state)
    raw.advance(rd)
    # After a crash the node remembers its vote and refuses a rival in the same term.
    again, _ = make_node(1, storage=st)
    again.step(msg(VOTE, 3, 1, term=5))
    rd = again.ready()
    assert [(m.to, m.reject) for m in rd.messages] == [(3, True)]


def test_vote_granted_only_to_up_to_date_log_5_4_1() -> None:
    # Voter's log: terms [1, 2, 2] (last index 3, last term 2).
    cases = [
        # (candidate last index, candidate last term, granted?)
        (3, 2, True),  # identical
        (4, 2, True),  # same term, longer
        (2, 2, False),  # same term, shorter
        (1, 3, True),  # higher last term wins even if shorter
        (9, 1, False),  # lower last term loses even if longer
    ]
    for index, log_term, granted in cases:
        st = storage_with_log((1, 2, 3), [1, 2, 2], term=2)
        raw, _ = make_node(1, storage=st)
        raw.step(msg(VOTE, 2, 1, term=3, index=index, log_term=log_term))
        rd = raw.ready()
        [resp] = [m for m in rd.messages if m.type == VOTE_RESP]
        assert resp.reject is (not granted), (index, log_term)


def test_stale_log_cannot_win_election_5_4_1() -> None:
    net = Network(pre_vote=False, check_quorum=False)
    net.elect(1)
    net.isolate(3)
    for i in range(3):
        net.propose(1, b"x%d" % i)
    net.recover()
    net.node(3).raw.campaign()
    net.stabilize()
    assert net.node(3).role != StateRole.LEADER
    assert len(net.leaders()) <= 1


def test_higher_term_turns_leader_into_follower_5_1() -> None:
    net = Network(pre_vote=False, check_quorum=False)
    net.elect(1)
    term = net.node(1).term
    net.node(1).raw.step(msg(MessageType.APP_RESP, 2, 1, term=term + 3))
    st = net.node(1).raw.status()
    assert st.role == StateRole.FOLLOWER and st.term == term + 3 and st.leader == NONE


def test_stale_term_messages_are_ignored_and_stale_leader_told_5_1() -> None:
    st = storage_with_log((1, 2, 3), [1, 2], term=5)
    follower, _ = make_node(2, storage=st)
    follower.step(msg(MessageType.APP, 3, 2, term=3, index=2, log_term=2, commit=2))
    rd = follower.ready()
    # Not treated as a leader's append: answered with our term so the sender steps down.
    assert [(m.type, m.term, m.reject) for m in rd.messages] == [(MessageType.APP_RESP, 5, False)]
    status = follower.status()
    assert status.leader == NONE and status.commit == 0 and status.term == 5


def test_candidate_that_loses_becomes_follower_5_2() -> None:
    raw, _ = make_node(1, (1, 2, 3), pre_vote=False)
    raw.campaign()
    assert raw.status().role == StateRole.CANDIDATE
    raw.step(msg(VOTE_RESP, 2, 1, term=1, reject=True))
    assert raw.status().role == StateRole.CANDIDATE  # 1 for, 1 against, 1 missing
    raw.step(msg(VOTE_RESP, 3, 1, term=1, reject=True))
    assert raw.status().role == StateRole.FOLLOWER


def test_candidate_becomes_follower_on_append_from_leader_of_same_term_5_2() -> None:
    raw, _ = make_node(1, (1, 2, 3), pre_vote=False)
    raw.campaign()
    raw.step(msg(MessageType.APP, 2, 1, term=1, index=0, log_term=0))
    st = raw.status()
    assert st.role == StateRole.FOLLOWER and st.leader == 2 and st.term == 1


def test_single_voter_becomes_leader_at_once_5_2() -> None:
    raw, _ = make_node(1, (1,))
    raw.campaign()
    assert raw.status().role == StateRole.LEADER


def test_pre_vote_does_not_bump_term_of_partitioned_node_9_6() -> None:
    net = Network()
    net.elect(1)
    term = net.node(1).term
    net.isolate(3)
    net.tick_all(100)
    assert net.node(3).term == term
    assert net.node(3).role == StateRole.PRE_CANDIDATE
    net.recover()
    net.tick_all(5)
    # Rejoining did not disrupt the leader.
    assert net.leaders() == [1] and net.node(1).term == term


def test_without_pre_vote_partitioned_node_disrupts_on_return_9_6() -> None:
    net = Network(pre_vote=False, check_quorum=False)
    net.elect(1)
    term = net.node(1).term
    net.isolate(3)
    net.tick_all(100)
    assert net.node(3).term > term
    net.recover()
    net.tick_all(30)
    assert net.node(1).term > term  # the leader was deposed by the higher term


def test_pre_vote_granted_without_changing_voter_state_9_6() -> None:
    raw, _ = make_node(1, (1, 2, 3))
    raw.step(msg(PRE_VOTE, 2, 1, term=1))
    rd = raw.ready()
    [resp] = rd.messages
    assert resp.type == MessageType.PRE_VOTE_RESP and not resp.reject and resp.term == 1
    st = raw.status()
    assert st.term == 0 and st.vote == NONE


def test_pre_candidate_becomes_candidate_after_quorum_of_pre_votes_9_6() -> None:
    raw, _ = make_node(1, (1, 2, 3))
    raw.campaign()
    assert raw.status().role == StateRole.PRE_CANDIDATE and raw.status().term == 0
    raw.step(msg(MessageType.PRE_VOTE_RESP, 2, 1, term=1))
    st = raw.status()
    assert st.role == StateRole.CANDIDATE and st.term == 1 and st.vote == 1


def test_leader_without_quorum_steps_down_check_quorum_6_2() -> None:
    net = Network(election_tick=10)
    net.elect(1)
    net.isolate(1)
    net.tick_all(21)
    assert net.node(1).role == StateRole.FOLLOWER


def test_leader_with_quorum_stays_check_quorum_6_2() -> None:
    net = Network(election_tick=10)
    net.elect(1)
    net.isolate(3)
    net.tick_all(50)
    assert net.node(1).role == StateRole.LEADER


def test_follower_in_lease_ignores_vote_request_6_2() -> None:
    net = Network()
    net.elect(1)
    term = net.node(1).term
    f = net.node(2).raw
    f.step(msg(VOTE, 3, 2, term=term + 1, index=99, log_term=term))
    assert f.status().term == term  # ignored: no term change
    assert not any(m.type == VOTE_RESP for m in f.ready().messages)


def test_follower_past_lease_grants_vote_6_2() -> None:
    net = Network(election_tick=10)
    net.elect(1)
    term = net.node(1).term
    net.isolate(1)
    for _ in range(10):
        net.node(2).raw.tick()  # election_elapsed reaches the timeout
    f = net.node(2).raw
    f.step(msg(VOTE, 3, 2, term=term + 1, index=99, log_term=term))
    resps = [m for m in f.ready().messages if m.type == VOTE_RESP]
    assert resps and not resps[0].reject


def test_learner_votes_are_not_counted_5_2() -> None:
    raw, _ = make_node(1, (1, 2, 3), learners=(4, 5), pre_vote=False)
    raw.campaign()
    raw.step(msg(VOTE_RESP, 4, 1, term=1))
    raw.step(msg(VOTE_RESP, 5, 1, term=1))
    assert raw.status().role == StateRole.CANDIDATE
    raw.step(msg(VOTE_RESP, 2, 1, term=1))
    assert raw.status().role == StateRole.LEADER


def test_election_recovers_from_split_votes_5_2() -> None:
    for seed in range(10):
        net = Network(ids=(1, 2, 3, 4, 5), seed=seed)
        for _ in range(200):
            net.tick_all(1)
            if net.leaders():
                break
        assert len(net.leaders()) == 1, f"seed {seed}"


def test_vote_alone_changing_is_persisted_with_sync_5_2() -> None:
    # Already at term 5 (no vote yet): only the vote changes, and it must still be
    # synced to disk before the grant goes out.
    st = storage_with_log((1, 2, 3), [1], term=5)
    raw, _ = make_node(1, storage=st)
    raw.step(msg(VOTE, 2, 1, term=5, index=1, log_term=1))
    rd = raw.ready()
    assert [(m.type, m.reject) for m in rd.messages] == [(VOTE_RESP, False)]
    assert rd.hard_state == HardState(term=5, vote=2, commit=0)
    assert rd.must_sync
