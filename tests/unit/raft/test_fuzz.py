"""A small seeded fuzz of the core over the test network: safety under faults.

The full simulation lives in kvorum/sim; this quick version guards the unit suite
against crashes and the basic safety properties (§5.2 election safety, §5.4.3
state machine safety) with message loss, partitions, restarts and compaction.
Set KVORUM_LONG=1 for more seeds.
"""

from __future__ import annotations

import contextlib
import os
import random

import pytest

from kvorum.raft import (
    ConfChange,
    ConfChangeType,
    ProposalDroppedError,
    StateRole,
)
from tests.unit.raft.helpers import Network

SEEDS = 200 if os.environ.get("KVORUM_LONG") else 25
TICKS = 300


def _check_prefix(net: Network) -> None:
    logs = [[(e.index, e.term, e.data) for e in n.applied] for n in net.nodes.values()]
    for a in logs:
        for b in logs:
            # Different members may have started applying at different snapshots:
            # wherever two applied sequences overlap by index they must be equal.
            da = {i: (t, d) for i, t, d in a}
            for i, t, d in b:
                if i in da:
                    assert da[i] == (t, d), f"entry {i} differs between members"


@pytest.mark.parametrize("seed", range(SEEDS))
def test_fuzz_safety_under_faults_5_4_3(seed: int) -> None:
    rng = random.Random(seed)
    net = Network(ids=(1, 2, 3, 4, 5) if seed % 3 == 0 else (1, 2, 3), seed=seed)
    ids = list(net.nodes)
    leader_of_term: dict[int, int] = {}
    drop_rate = 0.0
    net.filters.append(lambda m: None if rng.random() < drop_rate else m)
    proposals = 0
    for step in range(TICKS):
        r = rng.random()
        if r < 0.05:
            net.isolate(rng.choice(ids))
        elif r < 0.10:
            net.cut_links.clear()
        elif r < 0.13:
            drop_rate = rng.choice((0.0, 0.05, 0.3))
        elif r < 0.16:
            victim = rng.choice(ids)
            net.restart(victim)
        elif r < 0.18:
            node = net.node(rng.choice(ids))
            st = node.raw.status()
            if st.applied > node.storage.snapshot().metadata.index:
                node.storage.create_snapshot(st.applied, st.conf_state, b"")
                node.storage.compact(st.applied)
        elif r < 0.20:
            src = rng.choice(ids)
            with contextlib.suppress(ProposalDroppedError):
                net.node(src).raw.transfer_leader(rng.choice(ids))
        elif r < 0.22:
            src = rng.choice(ids)
            # Learner add and removal of a node that never exists: the quorum is
            # untouched, the conf-change path is exercised.
            kind = rng.choice((ConfChangeType.ADD_LEARNER_NODE, ConfChangeType.REMOVE_NODE))
            with contextlib.suppress(ProposalDroppedError):
                net.node(src).raw.propose_conf_change(ConfChange(kind, 9))
        for _ in range(rng.randrange(3)):
            src = rng.choice(ids)
            try:
                net.node(src).raw.propose(b"s%d-%d" % (seed, proposals))
                proposals += 1
            except ProposalDroppedError:
                pass
        if rng.random() < 0.1:
            net.node(rng.choice(ids)).raw.read_index(b"r%d" % step)
        net.tick_all(1)
        for nid, n in net.nodes.items():
            st = n.raw.status()
            if st.role == StateRole.LEADER:
                assert leader_of_term.setdefault(st.term, nid) == nid, (
                    f"two leaders in term {st.term}"
                )
        _check_prefix(net)
    # Heal and check liveness: a leader emerges and a proposal commits everywhere.
    drop_rate = 0.0
    net.recover()
    net.tick_all(60)
    leaders = net.leaders()
    assert len(leaders) == 1
    net.propose(leaders[0], b"final")
    net.tick_all(5)
    for n in net.nodes.values():
        assert n.applied_data()[-1:] == [b"final"], f"node {n.id}"
