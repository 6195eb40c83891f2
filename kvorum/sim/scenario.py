"""What a seed decides before the run starts: raft settings, fault rates, network behaviour.

Each run draws its own mix so that the seeds together cover calm and hostile clusters, short and
long election timeouts, one-entry and unbounded messages, synchronous and slow disks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from kvorum.sim.network import NetworkFaults
from kvorum.sim.node import NodeParams

TICK_UNITS = 10
"""Simulated time units per raft tick; message latencies and disk delays are in these units."""


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Per-tick chances of each client action and fault (``*_p``), and disk behaviour."""

    propose_p: float
    read_p: float
    crash_p: float
    partition_p: float
    transfer_p: float
    conf_change_p: float
    persist_async_p: float
    """Chance a Ready's persist step takes time (the window for early sends and lost writes)."""
    persist_max_units: int
    crash_mid_persist_p: float
    unreachable_report_p: float
    crash_new_leader_p: float
    isolate_new_leader_p: float
    pause_p: float
    read_new_leader_p: float


@dataclass(frozen=True, slots=True)
class Scenario:
    params: NodeParams
    rates: FaultRates
    network: NetworkFaults


def draw_scenario(rng: random.Random, voters: tuple[int, ...]) -> Scenario:
    """Draw one run's settings; the order of draws is part of the replay contract."""
    params = NodeParams(
        initial_voters=voters,
        election_tick=rng.choice((4, 5, 6, 8, 10)),
        heartbeat_tick=1,
        # 1 byte means one entry per APP: old-term entries then travel ahead of the no-op.
        max_size_per_msg_bytes=rng.choice((1, 64, 512, 1 << 20)),
        max_inflight_msgs=rng.choice((2, 8, 256)),
        snapshot_every_entries=rng.randint(4, 30),
        snapshot_keep_entries=rng.randint(0, 8),
    )
    rates = FaultRates(
        propose_p=rng.uniform(0.2, 0.8),
        read_p=rng.uniform(0.05, 0.4),
        crash_p=rng.uniform(0.003, 0.02),
        partition_p=rng.uniform(0.003, 0.02),
        transfer_p=rng.uniform(0.0, 0.02),
        conf_change_p=rng.uniform(0.005, 0.04),
        persist_async_p=rng.uniform(0.0, 0.8),
        persist_max_units=rng.randint(1, 8),
        crash_mid_persist_p=rng.uniform(0.0, 0.05),
        unreachable_report_p=rng.uniform(0.0, 0.5),
        crash_new_leader_p=rng.uniform(0.0, 0.4),
        isolate_new_leader_p=rng.uniform(0.0, 0.4),
        pause_p=rng.uniform(0.0, 0.01),
        read_new_leader_p=rng.uniform(0.0, 0.8),
    )
    network = NetworkFaults(
        drop_p=rng.uniform(0.0, 0.1),
        duplicate_p=rng.uniform(0.0, 0.05),
        latency_min_units=1,
        latency_max_units=rng.randint(2, 8),
        slow_p=rng.uniform(0.0, 0.05),
        slow_max_units=rng.randint(10, 5 * TICK_UNITS),
    )
    return Scenario(params, rates, network)
