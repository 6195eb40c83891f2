"""The differential suite: every etcdctl scenario, etcd against the target, step by step.

Each scenario file in ``scenarios/`` (format: ``kvorum.testing.scenario``) runs on a fresh
1-member cluster of the reference, real ``/usr/bin/etcd``, and on a fresh 1-member cluster of
the target; for every step the exit code, stdout and stderr of the real ``etcdctl`` must be
equal after normalisation (``kvorum.testing.normalise``: only what differs between two runs of
etcd itself). A mismatch fails with a unified diff per differing step.

The target is chosen by the environment variable ``KVORUM_DIFF_TARGET``:

* ``kvorum`` (the default): the kvorum member, ``.venv/bin/kvorum`` (the entry point next to the
  running Python), started with exactly the same etcd command lines;
* ``etcd``: a second, separate real etcd -- proves that the scenarios are deterministic and that
  the normaliser covers everything that legitimately varies (``test_detection.py`` shows it
  does not hide real differences);
* anything else: a member command line, e.g. ``KVORUM_DIFF_TARGET="python -m kvorum"``.

Each scenario also states the exit codes etcd must give for its error steps (``rc``), so a step
meant to provoke an error cannot silently stop doing so.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kvorum.testing import Cluster
from kvorum.testing.differential import compare, diff_target, run_pair
from kvorum.testing.scenario import Scenario, load_scenarios

SCENARIOS = load_scenarios(Path(__file__).parent / "scenarios")

# Scenarios whose gRPC services kvorum does not serve yet; strict, so the day they pass the
# marker must go. Empty since the Lease service is served.
NOT_YET_ON_KVORUM: dict[str, str] = {}


def _params() -> list[object]:
    pending = NOT_YET_ON_KVORUM if diff_target() == "kvorum" else {}
    return [
        pytest.param(
            s,
            id=s.name,
            marks=[pytest.mark.xfail(strict=True, reason=pending[s.name])]
            if s.name in pending
            else [],
        )
        for s in SCENARIOS
    ]


@pytest.mark.parametrize("scenario", _params())
def test_scenario_matches_etcd(scenario: Scenario, clusters: tuple[Cluster, Cluster]) -> None:
    reference, target = run_pair(*clusters, scenario)
    wrong_rc = [
        f"step {r.step.number} ({r.step.command}): etcd exited {r.returncode}, "
        f"the scenario expects {r.step.rc}\nstdout: {r.stdout}\nstderr: {r.stderr}"
        for r in reference
        if r.step.rc is not None and r.returncode != r.step.rc
    ]
    assert not wrong_rc, "the scenario no longer does what it says:\n" + "\n".join(wrong_rc)
    reports = compare(reference, target, labels=("etcd", diff_target()))
    assert not reports, f"{len(reports)} step(s) differ:\n\n" + "\n\n".join(reports)


def test_scenarios_cover_the_groups() -> None:
    """The groups the compatibility contract names each have a scenario file."""
    names = {s.name for s in SCENARIOS}
    assert {"kv", "txn", "compaction", "history", "member", "maintenance", "errors"} <= names
