"""``kvorumctl check perf`` against a real kvorum member, shortened to seconds.

etcdctl's check runs 60 s; ``tests/e2e/failover/test_check_perf.py`` runs the real etcdctl's
full check on both servers. Here kvorumctl's own implementation runs the small load for a few
seconds (``KVORUMCTL_CHECK_PERF_DURATION_S``) and must pass the throughput and error
criteria and clean up after itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kvorum.ctl.commands.check import DURATION_ENV
from kvorum.testing import ETCDCTL, Cluster
from kvorum.testing.cluster import binary_for
from tests.e2e.ctl.helpers import kvorumctl

pytestmark = [
    pytest.mark.skipif(shutil.which(ETCDCTL) is None, reason="etcdctl 3.4 not installed"),
    pytest.mark.timeout(120),
]

DURATION_S = 6
RATE_PER_S = 150  # the small load


def test_check_perf_small_load_on_kvorum(tmp_path: Path) -> None:
    with Cluster(binary_for("kvorum"), 1, base_dir=tmp_path) as c:
        ep = f"--endpoints={c.member(0).client_url}"
        done = kvorumctl(
            [ep, "check", "perf", "--load=s", "--auto-compact"], env={DURATION_ENV: str(DURATION_S)}
        )
        lines = done.out.decode().splitlines()
        shown = "\n".join(lines) + done.err.decode()
        assert done.err == b"", shown  # no terminal, no bar
        assert lines[0].startswith("Compacting with revision "), shown
        assert lines[1].startswith("Compacted with revision "), shown
        throughput = [line for line in lines if "Throughput" in line]
        assert len(throughput) == 1, shown
        assert not any(line.startswith("FAIL: ERROR") for line in lines), shown
        # The puts are paced at the load's rate, never above it: the revision the cleanup
        # ended at counts them (one revision each, one more for the delete).
        puts = int(lines[0].split()[-1]) - 2
        assert RATE_PER_S * DURATION_S * 0.4 <= puts <= RATE_PER_S * DURATION_S + 1, shown
        # Whether 90 % of the rate is reached depends on the machine's load (two cores shared
        # by the whole suite); the verdict must agree with the number it prints.
        rate = int(throughput[0].split()[-2])
        passed = throughput[0].startswith("PASS: Throughput is ")
        # Printed is int(rate) + 1, and the pass mark is above 135/s: 136 can go either way.
        if rate != 136:
            assert passed == (rate > 136), shown
        # Latency verdicts depend on the machine's load: present, pass or fail.
        assert any("Slowest request" in line for line in lines), shown
        assert any("Stddev" in line for line in lines), shown
        assert lines[-1] in ("PASS", "FAIL") and done.rc == (0 if lines[-1] == "PASS" else 1)
        keys = kvorumctl([ep, "get", "/etcdctl-check-perf/", "--prefix", "--keys-only"])
        assert keys.out == b"", keys
