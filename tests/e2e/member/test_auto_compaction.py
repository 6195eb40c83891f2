"""--auto-compaction-mode periodic: etcd and kvorum compact old history by themselves.

The same flags and the same writes go to a real etcd 3.4 and to kvorum; both must end up refusing
a read of a revision older than the retention with etcd's compacted error, and keep serving the
current one. (Revision mode checks every 5 minutes, as etcd's does — too slow for a test; its
policy is unit-tested in tests/unit/server/test_compactor.py.)
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kvorum.testing import Cluster
from tests.e2e.failover.helpers import member_command

RETENTION = "2s"
COMPACTED_WITHIN_S = 20.0
COMPACTED = "Error: etcdserver: mvcc: required revision has been compacted"


@pytest.mark.parametrize("target", ["etcd", "kvorum"])
def test_periodic_auto_compaction_drops_history_older_than_the_retention(
    target: str, tmp_path: Path
) -> None:
    flags = ("--auto-compaction-mode=periodic", f"--auto-compaction-retention={RETENTION}")
    with Cluster(member_command(target), 1, base_dir=tmp_path, extra_flags=flags) as c:
        for value in ("1", "2", "3"):
            rc, out, err = c.etcdctl("put", "a", value)
            assert (rc, out) == (0, "OK\n"), err
        # Revision 2 holds a=1; once a compaction passes it, reading it is refused.
        rc, out, err = c.etcdctl("get", "a", "--rev=2", "--print-value-only")
        assert (rc, out) == (0, "1\n"), err
        deadline = time.monotonic() + COMPACTED_WITHIN_S
        while True:
            rc, out, err = c.etcdctl("get", "a", "--rev=2")
            if rc != 0:
                break
            assert time.monotonic() < deadline, "no auto-compaction within the deadline"
            time.sleep(0.5)
        assert err.strip().splitlines()[-1] == COMPACTED, err
        rc, out, err = c.etcdctl("get", "a", "--print-value-only")
        assert (rc, out) == (0, "3\n"), err
