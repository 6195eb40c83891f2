"""``etcdctl check perf --load=s`` on a 3-member cluster of etcd 3.4 and of kvorum.

The check writes 150 puts/s for 60 s from 50 clients (256-byte keys under
``/etcdctl-check-perf/``, 1 KiB values), then deletes the prefix and prints one PASS/FAIL line
per criterion (throughput above 90 % of the rate, slowest request at most 0.5 s, standard
deviation at most 0.1 s, no errors) and a final verdict.

Its 60 s are fixed by etcdctl, so both clusters run their check at the same time: the module
fixture starts both runs at once and each parametrized test reads its own (see ``PerfRuns``).
The load is a rate, not a flood, so the two clusters leave each other enough of the machine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from kvorum.testing import Cluster, CtlResult
from tests.e2e.failover.helpers import member_command

pytestmark = pytest.mark.timeout(300)

TARGETS = ("etcd", "kvorum")
CHECK_PREFIX = "/etcdctl-check-perf/"
# etcdctl's 60 s of load plus its start, the final delete of the prefix and some slack.
CHECK_TIMEOUT_S = 120.0
# Progress-bar frames are not newline-terminated: a verdict may follow one on the same line.
_VERDICT = re.compile(r"(?:PASS|FAIL|Slowest request took too long|Stddev too high)[^\n\r]*")


def _only_machine_bound_failed(result: CtlResult) -> bool:
    """Whether every failed criterion is one the machine decides as much as the server:
    throughput, slowest request, standard deviation (not errors)."""
    failed = [v for v in _VERDICT.findall(result.stdout) if not v.startswith("PASS")]
    failed = [v for v in failed if v != "FAIL"]  # the final verdict itself
    return bool(failed) and all(
        ("Slowest" in v or "Stddev" in v or "Throughput" in v) for v in failed
    )


def _check_perf(target: str, base_dir: Path) -> tuple[CtlResult, CtlResult]:
    """Run the check on a fresh 3-member cluster; return it and a look at the prefix after.

    The latency criteria (slowest request <= 0.5 s, stddev <= 0.1 s) and the throughput one
    (>= 135 of the 150 puts/s asked) measure the machine as much as the server: on a loaded
    2-core CI box, with the other test worker running a 3-member cluster beside it, one
    stretch of starvation fails them for etcd as well (seen: etcd at 131 writes/s). So a run
    that failed *only* on those is repeated once on the same cluster; errors get no second
    chance.
    """
    with Cluster(member_command(target), 3, base_dir=base_dir) as c:
        result = c.etcdctl("check", "perf", "--load=s", timeout_s=CHECK_TIMEOUT_S)
        if result.returncode != 0 and _only_machine_bound_failed(result):
            result = c.etcdctl("check", "perf", "--load=s", timeout_s=CHECK_TIMEOUT_S)
        left = c.etcdctl("get", CHECK_PREFIX, "--prefix", "--keys-only")
        return result, left


class PerfRuns:
    """The check-perf runs of this process, started on first demand, each at most once.

    Alone (no pytest-xdist), the first demand starts every target's run, so that the two
    fixed 60 s runs overlap instead of adding up. Under xdist the parametrized tests may land
    on different workers; each worker then starts only the run it was asked for, so no run is
    made twice -- and the two workers overlap them anyway.
    """

    def __init__(self, pool: ThreadPoolExecutor, factory: pytest.TempPathFactory) -> None:
        self._pool = pool
        self._factory = factory
        self._runs: dict[str, Future[tuple[CtlResult, CtlResult]]] = {}

    def _start(self, target: str) -> None:
        if target not in self._runs:
            base_dir = self._factory.mktemp(f"perf-{target}")
            self._runs[target] = self._pool.submit(_check_perf, target, base_dir)

    def result(self, target: str) -> tuple[CtlResult, CtlResult]:
        for t in (target,) if os.environ.get("PYTEST_XDIST_WORKER") else TARGETS:
            self._start(t)
        return self._runs[target].result()


@pytest.fixture(scope="module")
def perf_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PerfRuns]:
    # Leaving the pool waits for every started run: its cluster is stopped by then.
    with ThreadPoolExecutor(max_workers=len(TARGETS)) as pool:
        yield PerfRuns(pool, tmp_path_factory)


@pytest.mark.parametrize("target", TARGETS)
def test_check_perf_small_load_passes(target: str, perf_runs: PerfRuns) -> None:
    result, left = perf_runs.result(target)
    verdicts = _VERDICT.findall(result.stdout)
    shown = "\n".join(verdicts) or result.stdout[-2000:] + result.stderr[-2000:]
    print(f"etcdctl check perf --load=s on {target}:\n{shown}")  # shown by pytest -rA
    assert result.returncode == 0, shown
    assert verdicts[-1] == "PASS", shown
    assert [v for v in verdicts if not v.startswith("PASS")] == [], shown
    assert {v.split(" is ")[0].split(" took ")[0] for v in verdicts} == {
        "PASS: Throughput",
        "PASS: Slowest request",
        "PASS: Stddev",
        "PASS",
    }, shown
    # The check cleans up after itself: nothing is left under its prefix.
    assert left == (0, "", ""), left
