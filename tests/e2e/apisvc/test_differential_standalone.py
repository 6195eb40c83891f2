"""The etcdctl differential scenarios: real etcd against the servicers over the standalone member.

The standalone member (`tests/unit/apisvc/standalone.py`, run as a process that takes etcd's
flags) has no raft, Watch or Lease, so this covers the scenarios whose every step goes through
KV, Cluster and Maintenance only: what differs there is the API layer's fault. The lease
scenario and watch steps are left out until those servicers exist; the full suite with the
real member is `tests/e2e/diff` with ``KVORUM_DIFF_TARGET=kvorum``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kvorum.testing import ETCD, Cluster
from kvorum.testing.differential import compare, run_pair
from kvorum.testing.scenario import Scenario, load_scenarios

SCENARIO_DIR = Path(__file__).parents[1] / "diff" / "scenarios"
STANDALONE = Path(__file__).parents[2] / "unit" / "apisvc" / "standalone.py"
COVERED = ("kv", "txn", "errors", "history", "compaction", "maintenance", "member")
# Commands served by servicers this layer does not own yet.
UNSERVED = frozenset({"watch", "lease"})


def _covered() -> list[Scenario]:
    chosen = []
    for scenario in load_scenarios(SCENARIO_DIR):
        if scenario.name not in COVERED:
            continue
        steps = tuple(s for s in scenario.steps if s.args[0] not in UNSERVED)
        chosen.append(dataclasses.replace(scenario, steps=steps))
    return chosen


SCENARIOS = _covered()


@pytest.fixture
def clusters(tmp_path: Path, etcd_installed: None) -> Iterator[tuple[Cluster, Cluster]]:
    reference = Cluster(ETCD, 1, base_dir=tmp_path / "etcd")
    target = Cluster([sys.executable, str(STANDALONE)], 1, base_dir=tmp_path / "standalone")
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for started in [pool.submit(reference.start), pool.submit(target.start)]:
                started.result()
        yield reference, target
    finally:
        reference.stop()
        target.stop()


def test_every_covered_scenario_is_present() -> None:
    assert sorted(s.name for s in SCENARIOS) == sorted(COVERED)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_standalone_matches_etcd(scenario: Scenario, clusters: tuple[Cluster, Cluster]) -> None:
    reference, target = run_pair(*clusters, scenario)
    reports = compare(reference, target, labels=("etcd", "standalone"))
    assert not reports, f"{len(reports)} step(s) differ:\n\n" + "\n\n".join(reports)
