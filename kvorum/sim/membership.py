"""Which membership change to try next: remove and re-add voters, add and promote learners.

The plan never proposes a removal that would leave fewer than ``MIN_VOTERS`` voters in the
configuration it is given (the leader's applied one); the core admits one change at a time, so
changes proposed on top of an unapplied one are refused there.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from kvorum.raft.types import ConfChange, ConfChangeType, ConfState

MIN_VOTERS = 3
REMOVE_LEADER_P = 0.15
"""How often a removal picks the leader itself (it must step down safely)."""


def plan_conf_change(
    rng: random.Random,
    conf: ConfState,
    leader: int,
    all_ids: Iterable[int],
    ever_voters: set[int],
) -> ConfChange | None:
    """One change drawn from those allowed in ``conf``; None if nothing is allowed."""
    members = set(conf.voters) | set(conf.learners)
    outside = [i for i in sorted(all_ids) if i not in members]
    options: list[ConfChange] = []
    for learner in conf.learners:
        options.append(ConfChange(ConfChangeType.ADD_NODE, learner))  # promote
        options.append(ConfChange(ConfChangeType.REMOVE_NODE, learner))
    for node_id in outside:
        options.append(ConfChange(ConfChangeType.ADD_LEARNER_NODE, node_id))
        if node_id in ever_voters:
            # Re-adding a removed voter keeps its old disk (same id, old vote): safe, unlike
            # re-adding it with a wiped disk, which could vote twice in one term.
            options.append(ConfChange(ConfChangeType.ADD_NODE, node_id))
    if len(conf.voters) > MIN_VOTERS:
        others = [v for v in conf.voters if v != leader]
        if leader not in conf.voters or rng.random() >= REMOVE_LEADER_P:
            victim = rng.choice(others)
        else:
            victim = leader
        options.append(ConfChange(ConfChangeType.REMOVE_NODE, victim))
    return rng.choice(options) if options else None
