"""The simulation catches bugs: a core made faulty through its public API must fail some seed.

Each mutant wraps ``RawNode.ready()`` (and hands the original Ready back to ``advance()``) and
breaks one rule the Ready carries: a durable vote, a safe read index, an honest commit index, the
order of committed entries. Only the public interface is touched, so the mutants survive changes
inside the core.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from kvorum.raft import NONE, HardState, Message, MessageType, RawNode, ReadState, Ready
from kvorum.sim import node as sim_node
from kvorum.sim.checker import ELECTION_SAFETY, READ_INDEX_SAFETY, READY_CONTRACT
from kvorum.sim.cluster import run_seed

SEEDS_PER_MUTANT = 60
"""Every mutant below is caught well within this many seeds (most by the first)."""

Mutation = Callable[[Ready], Ready]


def _forget_vote(rd: Ready) -> Ready:
    """The vote is never made durable: a restart may vote twice in one term (§5.2)."""
    hs = rd.hard_state
    if hs is None or hs.vote == NONE:
        return rd
    return dataclasses.replace(rd, hard_state=HardState(hs.term, NONE, hs.commit))


def _stale_read_index(rd: Ready) -> Ready:
    """Reads are answered one entry early: they can miss the last acknowledged write."""
    if not rd.read_states:
        return rd
    reads = tuple(ReadState(max(0, r.index - 1), r.request_ctx) for r in rd.read_states)
    return dataclasses.replace(rd, read_states=reads)


def _stale_forwarded_read(rd: Ready) -> Ready:
    """The leader answers forwarded reads one entry early (same bug, other code path)."""
    msgs = tuple(
        dataclasses.replace(m, index=max(0, m.index - 1))
        if m.type == MessageType.READ_INDEX_RESP
        else m
        for m in rd.messages
    )
    return dataclasses.replace(rd, messages=msgs)


def _advertise_unreplicated_commit(rd: Ready) -> Ready:
    """The leader tells followers everything it sends is committed (it is not, yet)."""

    def inflate(m: Message) -> Message:
        if m.type != MessageType.APP or not m.entries:
            return m
        return dataclasses.replace(m, commit=max(m.commit, m.entries[-1].index))

    return dataclasses.replace(rd, messages=tuple(inflate(m) for m in rd.messages))


def _skip_a_committed_entry(rd: Ready) -> Ready:
    """Committed entries handed to the application with one missing."""
    if len(rd.committed_entries) < 2:
        return rd
    return dataclasses.replace(rd, committed_entries=rd.committed_entries[1:])


MUTANTS: dict[str, tuple[Mutation, tuple[str, ...]]] = {
    "forget_vote": (_forget_vote, (READY_CONTRACT, ELECTION_SAFETY)),
    "stale_read_index": (_stale_read_index, (READ_INDEX_SAFETY,)),
    "stale_forwarded_read": (_stale_forwarded_read, (READ_INDEX_SAFETY,)),
    "advertise_unreplicated_commit": (_advertise_unreplicated_commit, ()),
    "skip_a_committed_entry": (_skip_a_committed_entry, (READY_CONTRACT,)),
}


def _mutant_class(mutation: Mutation) -> type[RawNode]:
    class MutantRawNode(RawNode):
        _original: Ready | None = None

        def ready(self) -> Ready:
            rd = super().ready()
            self._original = rd
            return mutation(rd)

        def advance(self, rd: Ready) -> None:
            original = self._original
            assert original is not None
            self._original = None
            super().advance(original)

    return MutantRawNode


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_simulation_catches_a_mutant_core(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    mutation, expected = MUTANTS[name]
    monkeypatch.setattr(sim_node, "RawNode", _mutant_class(mutation))
    for seed in range(SEEDS_PER_MUTANT):
        result = run_seed(seed)
        if not result.ok:
            assert result.violation is not None
            if expected:
                assert any(inv in result.violation for inv in expected), result.violation
            return
    pytest.fail(f"mutant {name} survived {SEEDS_PER_MUTANT} seeds")
