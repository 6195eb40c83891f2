"""The checker must reject hand-made bad histories: each invariant, one broken history."""

from __future__ import annotations

import pytest

from kvorum.raft.types import ConfState, Entry, EntryType
from kvorum.sim.checker import (
    DURABILITY,
    ELECTION_SAFETY,
    LEADER_COMMIT_RULE,
    LEADER_COMPLETENESS,
    LIVENESS,
    LOG_MATCHING,
    READ_INDEX_SAFETY,
    READY_CONTRACT,
    STATE_MACHINE_SAFETY,
    Checker,
    InvariantViolation,
)
from kvorum.sim.statemachine import StateMachine


def _applied_chain(entries: list[Entry]) -> list[bytes]:
    sm = StateMachine()
    chains = []
    for e in entries:
        sm.apply(e)
        chains.append(sm.chain)
    return chains


def test_two_leaders_in_one_term_is_caught() -> None:
    c = Checker()
    c.time = 42
    c.leader(1, 3)
    c.leader(1, 3)  # the same leader seen again is fine
    c.leader(2, 4)
    with pytest.raises(InvariantViolation) as info:
        c.leader(3, 3)
    assert info.value.invariant == ELECTION_SAFETY
    assert info.value.nodes == (1, 3)
    assert "t=42" in str(info.value) and "term 3" in str(info.value)


def test_same_index_and_term_with_different_data_is_caught() -> None:
    c = Checker()
    c.persisted(1, 0, 0, (Entry(1, 1, data=b"a"), Entry(1, 2, data=b"b")))
    c.persisted(2, 0, 0, (Entry(1, 1, data=b"a"), Entry(1, 2, data=b"b")))
    with pytest.raises(InvariantViolation) as info:
        c.persisted(3, 1, 1, (Entry(1, 2, data=b"X"),))
    assert info.value.invariant == LOG_MATCHING


def test_same_entry_after_a_different_prefix_is_caught() -> None:
    c = Checker()
    c.persisted(1, 0, 0, (Entry(1, 1), Entry(2, 2, data=b"x")))
    # Node 2 claims entry (2, term 2) follows a term-3 entry at index 1: prefixes differ.
    c.persisted(2, 0, 0, (Entry(3, 1),))
    with pytest.raises(InvariantViolation) as info:
        c.persisted(2, 1, 3, (Entry(2, 2, data=b"x"),))
    assert info.value.invariant == LOG_MATCHING


def test_gap_in_persisted_entries_is_caught() -> None:
    c = Checker()
    with pytest.raises(InvariantViolation) as info:
        c.persisted(1, 0, 0, (Entry(1, 1), Entry(1, 3)))
    assert info.value.invariant == LOG_MATCHING


def test_diverging_applied_entries_are_caught() -> None:
    c = Checker()
    good = [Entry(1, 1), Entry(1, 2, data=b"w1")]
    bad = [Entry(1, 1), Entry(1, 2, data=b"w2")]
    for e, chain in zip(good, _applied_chain(good), strict=True):
        c.applied(1, e, chain)
    c.applied(2, bad[0], _applied_chain(bad)[0])
    with pytest.raises(InvariantViolation) as info:
        c.applied(2, bad[1], _applied_chain(bad)[1])
    assert info.value.invariant == STATE_MACHINE_SAFETY
    assert info.value.nodes == (2,)


def test_snapshot_that_no_member_reached_is_caught() -> None:
    c = Checker()
    entries = [Entry(1, 1), Entry(1, 2, data=b"w1")]
    chains = _applied_chain(entries)
    for e, chain in zip(entries, chains, strict=True):
        c.applied(1, e, chain)
    c.snapshot_restored(2, 2, chains[1])
    with pytest.raises(InvariantViolation):
        c.snapshot_restored(3, 2, chains[0])
    with pytest.raises(InvariantViolation):
        c.snapshot_restored(3, 5, chains[1])


def test_diverging_configurations_are_caught() -> None:
    c = Checker()
    c.conf_applied(1, 7, ConfState(voters=(1, 2, 3, 4)))
    with pytest.raises(InvariantViolation) as info:
        c.conf_applied(2, 7, ConfState(voters=(1, 2, 3), learners=(4,)))
    assert info.value.invariant == STATE_MACHINE_SAFETY


def test_leader_missing_a_committed_entry_is_caught() -> None:
    c = Checker()
    c.observe_term(2)
    entries = [Entry(1, 1), Entry(2, 2, data=b"w1")]
    for e, chain in zip(entries, _applied_chain(entries), strict=True):
        c.applied(1, e, chain)
    log = {1: 1, 2: 2}
    c.leader_log(3, 3, 1, log.get)  # holds both: fine
    c.leader_log(4, 2, 1, {1: 1}.get)  # same term as the commit: not bound by it
    c.leader_log(5, 3, 3, {}.get)  # both below its snapshot: checked elsewhere
    with pytest.raises(InvariantViolation) as info:
        c.leader_log(4, 3, 1, {1: 1, 2: 3}.get)
    assert info.value.invariant == LEADER_COMPLETENESS


def test_stale_read_is_caught() -> None:
    c = Checker()
    assert c.read_issued() == 0
    c.acknowledged(1, b"w1", 5)
    required = c.read_issued()
    assert required == 5
    c.read_answered(2, b"r1", 5, required)
    c.read_answered(2, b"r2", 9, required)
    with pytest.raises(InvariantViolation) as info:
        c.read_answered(3, b"r3", 4, required)
    assert info.value.invariant == READ_INDEX_SAFETY


def test_read_issued_before_a_write_is_acked_may_miss_it() -> None:
    c = Checker()
    required = c.read_issued()
    c.acknowledged(1, b"w1", 5)
    c.read_answered(2, b"r1", 3, required)  # concurrent with the write: either answer is fine


def test_lost_acknowledged_write_is_caught() -> None:
    c = Checker()
    c.acknowledged(1, b"w1", 3)
    c.acknowledged(1, b"w2", 4)
    c.durable(1, 4, {b"w1", b"w2"})
    with pytest.raises(InvariantViolation) as info:
        c.durable(2, 4, {b"w1"})
    assert info.value.invariant == DURABILITY
    with pytest.raises(InvariantViolation):
        c.durable(3, 3, {b"w1", b"w2"})


def test_liveness_failure_is_reported() -> None:
    c = Checker()
    c.live(True, (1, 2, 3), "")
    with pytest.raises(InvariantViolation) as info:
        c.live(False, (1, 2, 3), "no leader")
    assert info.value.invariant == LIVENESS
    assert c.checks[LIVENESS] == 2


def test_conf_change_entries_are_part_of_the_chain() -> None:
    a = _applied_chain([Entry(1, 1, EntryType.CONF_CHANGE, b"\x00")])
    b = _applied_chain([Entry(1, 1, EntryType.NORMAL, b"\x00")])
    assert a != b


def test_vote_reply_before_the_vote_is_durable_is_caught() -> None:
    c = Checker()
    c.vote_sent(1, candidate=3, term=5, durable_term=5, vote=3)
    # Superseded within one Ready by a vote in a later term: the later hard state protects it.
    c.vote_sent(1, candidate=3, term=5, durable_term=6, vote=2)
    with pytest.raises(InvariantViolation) as info:
        c.vote_sent(1, candidate=3, term=5, durable_term=5, vote=0)
    assert info.value.invariant == READY_CONTRACT
    with pytest.raises(InvariantViolation):
        c.vote_sent(1, candidate=3, term=5, durable_term=4, vote=3)


def test_append_reply_before_the_entries_are_durable_is_caught() -> None:
    c = Checker()
    c.append_acked(2, term=3, index=7, durable_term=3, durable_last_index=7)
    # A reply of an older term may trail a truncation made for a newer leader.
    c.append_acked(2, term=3, index=7, durable_term=4, durable_last_index=5)
    with pytest.raises(InvariantViolation) as info:
        c.append_acked(2, term=3, index=8, durable_term=3, durable_last_index=7)
    assert info.value.invariant == READY_CONTRACT


def test_leader_committing_an_old_term_entry_by_counting_is_caught() -> None:
    c = Checker()
    c.leader_commit(1, term=4, commit_index=9, entry_term=4)
    with pytest.raises(InvariantViolation) as info:
        c.leader_commit(1, term=4, commit_index=8, entry_term=2)
    assert info.value.invariant == LEADER_COMMIT_RULE
