"""The simulator's own parts: network fates and partitions, the disk's rules, the state machine."""

from __future__ import annotations

import random

import pytest

from kvorum.raft.types import (
    ConfChangeType,
    ConfState,
    Entry,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from kvorum.sim.checker import InvariantViolation
from kvorum.sim.disk import SimDisk
from kvorum.sim.membership import MIN_VOTERS, plan_conf_change
from kvorum.sim.network import NetworkFaults, SimNetwork
from kvorum.sim.statemachine import StateMachine


def _msg(frm: int, to: int, index: int = 0) -> Message:
    return Message(MessageType.APP, to=to, frm=frm, index=index)


def _drain(net: SimNetwork) -> list[tuple[int, bool]]:
    out = []
    while len(net):
        msg, ok = net.pop()
        out.append((msg.index, ok))
    return out


def test_network_delivers_in_time_order_and_reorders_with_slow_paths() -> None:
    faults = NetworkFaults(latency_min_units=1, latency_max_units=1, slow_p=0.5, slow_max_units=50)
    net = SimNetwork(random.Random(7), faults)
    for i in range(200):
        net.send(_msg(1, 2, i), now=i)
    times = []
    while len(net):
        t = net.next_time()
        assert t is not None
        times.append(t)
        net.pop()
    assert times == sorted(times)
    assert net.stats["net_slow"] > 50
    net2 = SimNetwork(random.Random(7), faults)
    for i in range(200):
        net2.send(_msg(1, 2, i), now=i)
    order = [i for i, _ in _drain(net2)]
    assert order != sorted(order), "slow messages must be overtaken"


def test_network_drops_and_duplicates_at_the_configured_rates() -> None:
    faults = NetworkFaults(drop_p=0.2, duplicate_p=0.1)
    net = SimNetwork(random.Random(1), faults, max_in_flight=10_000)
    copies = sum(net.send(_msg(1, 2, i), now=0) for i in range(5000))
    assert 700 < net.stats["net_dropped"] < 1300
    assert 250 < net.stats["net_duplicated"] < 550
    assert copies == len(net) == 5000 - net.stats["net_dropped"] + net.stats["net_duplicated"]


def test_network_bounds_messages_in_flight() -> None:
    net = SimNetwork(random.Random(1), NetworkFaults(), max_in_flight=10)
    for i in range(25):
        net.send(_msg(1, 2, i), now=0)
    assert len(net) == 10
    assert net.stats["net_overflow"] == 15


def test_partition_cuts_messages_already_in_flight_and_heal_restores() -> None:
    net = SimNetwork(random.Random(1), NetworkFaults(latency_min_units=5, latency_max_units=5))
    net.send(_msg(1, 2, 1), now=0)
    net.send(_msg(2, 3, 2), now=0)
    net.send(_msg(3, 1, 3), now=0)
    net.partition((2,))
    assert net.partitioned and not net.connected(1, 2) and net.connected(1, 3)
    assert _drain(net) == [(1, False), (2, False), (3, True)]
    net.heal()
    assert not net.partitioned
    net.send(_msg(1, 2, 4), now=10)
    assert _drain(net) == [(4, True)]
    assert net.stats["partitions"] == 1 and net.stats["heals"] == 1


def test_network_fates_replay_from_the_seed() -> None:
    faults = NetworkFaults(drop_p=0.1, duplicate_p=0.1, slow_p=0.1, latency_max_units=9)

    def run(seed: int) -> list[tuple[int, bool]]:
        net = SimNetwork(random.Random(seed), faults)
        for i in range(300):
            net.send(_msg(1, 2, i), now=i // 3)
        return _drain(net)

    assert run(5) == run(5)
    assert run(5) != run(6)


def _entries(term: int, lo: int, hi: int) -> tuple[Entry, ...]:
    return tuple(Entry(term, i, data=b"%d" % i) for i in range(lo, hi + 1))


def test_disk_appends_overwrites_uncommitted_suffix_and_reports_prev() -> None:
    d = SimDisk(1)
    assert d.append(_entries(1, 1, 5)) == 0
    d.set_hard_state(HardState(term=1, vote=1, commit=3))
    assert d.append(_entries(2, 4, 6)) == 3
    assert [e.term for e in d.entries] == [1, 1, 1, 2, 2, 2]
    assert d.term_at(3) == 1 and d.term_at(6) == 2 and d.term_at(7) is None


def test_disk_refuses_gaps_and_overwriting_committed_entries() -> None:
    d = SimDisk(1)
    d.append(_entries(1, 1, 3))
    with pytest.raises(InvariantViolation, match="do not fit"):
        d.append(_entries(1, 5, 6))
    d.set_hard_state(HardState(term=1, commit=2))
    d.append(_entries(1, 2, 3))  # rewriting the same committed entries is harmless
    with pytest.raises(InvariantViolation, match="committed entry 2"):
        d.append(_entries(2, 2, 3))


def test_disk_hard_state_rules() -> None:
    d = SimDisk(1)
    d.append(_entries(1, 1, 2))
    d.set_hard_state(HardState(term=2, vote=3, commit=1))
    with pytest.raises(InvariantViolation, match="vote in term 2"):
        d.set_hard_state(HardState(term=2, vote=1, commit=1))
    with pytest.raises(InvariantViolation, match="term went back"):
        d.set_hard_state(HardState(term=1, vote=0, commit=1))
    with pytest.raises(InvariantViolation, match="commit went back"):
        d.set_hard_state(HardState(term=2, vote=3, commit=0))
    with pytest.raises(InvariantViolation, match="beyond the durable log"):
        d.set_hard_state(HardState(term=2, vote=3, commit=3))
    d.set_hard_state(HardState(term=3, vote=0, commit=2))


def test_disk_snapshots_compact_and_replay() -> None:
    d = SimDisk(1)
    d.append(_entries(1, 1, 10))
    snap = Snapshot(b"s", SnapshotMetadata(ConfState(voters=(1,)), index=8, term=1))
    d.take_snapshot(snap, compact_index=6)
    assert d.offset == 6 and d.offset_term == 1 and d.last_index() == 10
    assert [e.index for e in d.entries_after(8)] == [9, 10]
    assert d.term_at(5) is None
    received = Snapshot(b"t", SnapshotMetadata(ConfState(voters=(1,)), index=20, term=3))
    d.save_snapshot(received)
    assert d.last_index() == 20 and d.entries == [] and d.term_at(20) == 3
    with pytest.raises(InvariantViolation, match="not newer"):
        d.save_snapshot(received)


def test_state_machine_chain_and_snapshot_roundtrip() -> None:
    a = StateMachine()
    for i, data in enumerate([b"", b"w1", b"x", b"w2"], start=1):
        a.apply(Entry(1, i, data=data))
    assert a.writes == [b"w1", b"w2"]
    b = StateMachine.decode(a.encode())
    assert (b.applied_index, b.chain, b.writes) == (4, a.chain, [b"w1", b"w2"])
    assert StateMachine.decode(StateMachine().encode()).writes == []
    c = StateMachine()
    for i, data in enumerate([b"", b"w1", b"y", b"w2"], start=1):
        c.apply(Entry(1, i, data=data))
    assert c.chain != a.chain
    with pytest.raises(ValueError, match="out of order"):
        c.apply(Entry(1, 9))


def test_membership_plan_keeps_three_voters_and_covers_every_kind() -> None:
    rng = random.Random(3)
    conf = ConfState(voters=(1, 2, 3))
    ever_voters = {1, 2, 3}
    kinds: set[ConfChangeType] = set()
    removed_leader = False
    for _ in range(2000):
        leader = rng.choice(conf.voters)
        cc = plan_conf_change(rng, conf, leader, (1, 2, 3, 4, 5), ever_voters)
        assert cc is not None
        kinds.add(cc.type)
        voters, learners = set(conf.voters), set(conf.learners)
        if cc.type == ConfChangeType.ADD_NODE:
            assert cc.node_id in learners or cc.node_id in ever_voters
            learners.discard(cc.node_id)
            voters.add(cc.node_id)
            ever_voters.add(cc.node_id)
        elif cc.type == ConfChangeType.ADD_LEARNER_NODE:
            assert cc.node_id not in voters | learners
            learners.add(cc.node_id)
        elif cc.type == ConfChangeType.REMOVE_NODE:
            removed_leader |= cc.node_id == leader
            voters.discard(cc.node_id)
            learners.discard(cc.node_id)
        assert len(voters) >= MIN_VOTERS
        conf = ConfState(voters=tuple(sorted(voters)), learners=tuple(sorted(learners)))
    assert kinds == {
        ConfChangeType.ADD_NODE,
        ConfChangeType.ADD_LEARNER_NODE,
        ConfChangeType.REMOVE_NODE,
    }
    assert removed_leader


def test_membership_plan_with_nothing_allowed() -> None:
    conf = ConfState(voters=(1, 2, 3))
    assert plan_conf_change(random.Random(1), conf, 1, (1, 2, 3), {1, 2, 3}) is None
