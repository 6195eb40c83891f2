"""Jepsen-style fault runs against real etcd 3.4 and kvorum: kill, pause, partition, transfer.

Each test starts a real cluster, runs client workers recording a history, lets a seeded nemesis
inject and heal faults, and asserts the run's checks (see ``runner.py``): the history is
linearizable per key (with a final read per key, so a lost acknowledged write shows), every
member converges to one HashKV at one revision, and a cut-off member never acknowledged a
request. The same assertions against real etcd show that the workload, the nemesis and the
checker are right; against kvorum they are the point.

Short by default (CI: a few seconds of faults per test). Long mode, for ``make faults``:
``KVORUM_FAULTS_DURATION`` (seconds of faults per run) also adds 5-member clusters and a mixed
nemesis; ``KVORUM_FAULTS_SEED`` fixes the seed (default: one per test, printed).
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import pytest

from tests.e2e.failover.helpers import member_command
from tests.faults.netns import netns_unavailable_reason
from tests.faults.runner import NETWORK_NEMESES, Plan, run_faults

DURATION_ENV = "KVORUM_FAULTS_DURATION"
SEED_ENV = "KVORUM_FAULTS_SEED"
SHORT_DURATION_S = 5.0

LONG_DURATION_S = float(os.environ.get(DURATION_ENV, "0") or 0)
LONG = LONG_DURATION_S > 0

pytestmark = pytest.mark.timeout(600 if LONG else 150)

TARGETS = ("etcd", "kvorum")
NEMESIS_GROUPS: dict[str, tuple[str, ...]] = {
    "kill": ("kill", "kill-leader"),
    "pause": ("pause", "pause-leader"),
    "partition": ("partition", "partition-leader"),
    "transfer": ("transfer",),
    "membership": ("replace",),
}
if LONG:
    NEMESIS_GROUPS["mixed"] = (
        "kill",
        "kill-leader",
        "pause",
        "pause-leader",
        "partition",
        "partition-leader",
        "transfer",
        "replace",
    )
SIZES = (3, 5) if LONG else (3,)


def seed_for(test_id: str) -> int:
    """``KVORUM_FAULTS_SEED`` if set, else a stable seed per test (so CI runs replay)."""
    if os.environ.get(SEED_ENV):
        return int(os.environ[SEED_ENV])
    return zlib.crc32(test_id.encode()) % 10_000


def require_netns() -> None:
    reason = netns_unavailable_reason()
    if reason is not None:
        pytest.skip(f"network partitions need network namespaces: {reason}")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("group", list(NEMESIS_GROUPS))
@pytest.mark.parametrize("target", TARGETS)
def test_history_stays_linearizable_under_faults(
    target: str, group: str, size: int, tmp_path: Path
) -> None:
    nemeses = NEMESIS_GROUPS[group]
    if size == 5 and "partition" in nemeses:
        nemeses = (*nemeses, "partition-minority")
    plan = Plan(
        target=target,
        command=member_command(target),
        size=size,
        nemeses=nemeses,
        duration_s=LONG_DURATION_S if LONG else SHORT_DURATION_S,
        seed=seed_for(f"{target}/{group}/{size}"),
    )
    if any(n in NETWORK_NEMESES for n in nemeses):
        require_netns()
    result = run_faults(plan, tmp_path / "run")
    if not result.ok:
        pytest.fail(result.failure_message(), pytrace=False)
    # The run must have exercised what it claims: faults injected, writes acknowledged.
    assert sum(result.faults_done.values()) >= 1, result.nemesis_log
    assert result.op_counts["write:ok"] + result.op_counts["cas:ok"] > 50, result.summary()
    if any(n in NETWORK_NEMESES for n in nemeses):
        assert any(r.startswith("pinned") for r in _processes(result.history_path))


def _processes(history: Path) -> set[str]:
    return {str(json.loads(line)["process"]) for line in history.read_text().splitlines() if line}
