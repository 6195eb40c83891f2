"""Seeded whole-cluster simulations: thousands of seeds, determinism, and that faults happen.

``KVORUM_LONG=1`` multiplies the number of seeds by ten.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from kvorum.sim.checker import ALL_CHECKS, InvariantViolation
from kvorum.sim.cli import main
from kvorum.sim.cluster import Cluster, SimConfig, SimResult, run_seed

ROOT = Path(__file__).resolve().parents[2]
SCALE = 10 if os.environ.get("KVORUM_LONG") == "1" else 1
COVERAGE_SEEDS = range(200)
"""Seeds whose combined statistics must show every fault and every check at work."""
CHUNK_SEEDS = 225 * SCALE
CHUNKS = 8
FIVE_NODE_SEEDS = 100 * SCALE


def _failures(results: list[SimResult]) -> str:
    return "\n".join(f"{r.violation}\n  replay: {r.replay_command()}" for r in results if not r.ok)


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_three_member_seeds_hold_every_invariant(chunk: int) -> None:
    start = len(COVERAGE_SEEDS) + chunk * CHUNK_SEEDS
    results = [run_seed(seed) for seed in range(start, start + CHUNK_SEEDS)]
    assert all(r.ok for r in results), _failures(results)


@pytest.mark.parametrize("chunk", range(2))
def test_five_member_seeds_hold_every_invariant(chunk: int) -> None:
    start = chunk * FIVE_NODE_SEEDS
    results = [run_seed(seed, nodes=5) for seed in range(start, start + FIVE_NODE_SEEDS)]
    assert all(r.ok for r in results), _failures(results)


def test_every_fault_and_every_check_fires_across_seeds() -> None:
    results = [run_seed(seed) for seed in COVERAGE_SEEDS]
    assert all(r.ok for r in results), _failures(results)
    stats: Counter[str] = Counter()
    checks: Counter[str] = Counter()
    for r in results:
        stats.update(r.stats)
        checks.update(r.checks)
    for check in ALL_CHECKS:
        assert checks[check] > 0, f"check {check!r} never ran"
    needed = [
        "leaders_elected",
        "net_dropped",
        "net_duplicated",
        "net_slow",
        "net_partitioned",
        "partitions_isolate",
        "partitions_split",
        "heals",
        "pauses",
        "net_held",
        "crashes",
        "restarts",
        "crashes_losing_unpersisted",
        "crashes_leader_mid_persist",
        "crashes_new_leader",
        "partitions_new_leader",
        "early_sends",
        "writes_acked",
        "reads_served",
        "snapshots_taken",
        "snapshots_installed",
        "snapshot_reports_ok",
        "unreachable_reports",
        "transfers_requested",
        "transfers_completed",
        "conf_applied_add_learner_node",
        "conf_applied_add_node",
        "conf_applied_remove_node",
    ]
    missing = [k for k in needed if stats[k] == 0]
    assert not missing, f"never happened in {len(results)} seeds: {missing}"
    # Every run passed its heal phase, so each one elected a leader and committed after faults.
    assert checks["liveness"] == len(results)


def test_same_seed_same_trace_and_different_seeds_differ() -> None:
    a = run_seed(11)
    b = run_seed(11)
    c = run_seed(12)
    assert a.trace_hash == b.trace_hash
    assert a.stats == b.stats
    assert a.trace_hash != c.trace_hash


def test_verbose_progress_does_not_change_the_trace() -> None:
    lines: list[str] = []
    quiet = Cluster(SimConfig(seed=5)).run()
    loud = Cluster(SimConfig(seed=5), log=lines.append).run()
    assert lines, "verbose run printed no progress"
    assert quiet.trace_hash == loud.trace_hash


def test_replay_in_a_fresh_process_gives_the_same_trace_hash() -> None:
    expected = run_seed(3, nodes=5, steps=120).trace_hash
    proc = subprocess.run(
        [sys.executable, "-m", "kvorum.sim", "--seed", "3", "--nodes", "5", "--steps", "120"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"trace-hash: {expected}"


def test_cli_seed_range_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "0-3", "--jobs", "1", "--steps", "60"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "seeds: 4 passed, 0 failed"


def test_cli_single_seed_ends_with_the_trace_hash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seed", "4", "--steps", "60", "-v"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("t=") for line in out)
    assert out[-1] == f"trace-hash: {run_seed(4, steps=60).trace_hash}"


def test_cli_seed_range_runs_on_two_processes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "0-5", "--jobs", "2", "--steps", "40"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "seeds: 6 passed, 0 failed"


def test_cli_reports_each_failure_with_its_replay_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken_heal_phase(self: Cluster) -> None:
        raise InvariantViolation("injected", self.now, (1,), "for the test")

    monkeypatch.setattr(Cluster, "_heal_phase", broken_heal_phase)
    assert main(["--seeds", "5-6", "--jobs", "1", "--steps", "30"]) == 1
    out = capsys.readouterr().out
    assert "FAIL seed 5: injected violated at t=300 on node(s) 1: for the test" in out
    assert "replay: python -m kvorum.sim --seed 6 --nodes 3 --steps 30" in out
    assert out.strip().splitlines()[-1] == "seeds: 0 passed, 2 failed"

    assert main(["--seed", "5", "--steps", "30"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2] == "replay: python -m kvorum.sim --seed 5 --nodes 3 --steps 30"
    assert lines[-1].startswith("trace-hash: ")
