"""The noisy neighbour: the leader of a 3-member cluster stopped (SIGSTOP) for 5 s, then resumed.

Against etcd 3.4 and kvorum alike: while the leader is frozen the other two elect a new leader
and keep acknowledging writes; once resumed, the old leader learns of the newer term, follows,
and catches up with everything written while it was stopped.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from kvorum.testing import Cluster
from tests.e2e.failover.helpers import (
    NEW_LEADER_WITHIN_S,
    agreed_leader,
    cluster_hashes,
    grpc_put_all,
    holds_all,
    member_command,
    member_ids,
    others,
    wait_agreed_leader,
)
from tests.e2e.member.helpers import eventually

pytestmark = pytest.mark.timeout(90)

PREFIX = "/paused/"
KEYS_BEFORE = 20
PAUSE_S = 5.0
# etcdctl runs one after another while the leader is stopped; a handful proves service went on.
WRITES_DURING_PAUSE_MIN = 3


@pytest.mark.parametrize("target", ["etcd", "kvorum"])
def test_paused_leader_is_replaced_and_catches_up_after_resume(target: str, tmp_path: Path) -> None:
    with Cluster(member_command(target), 3, base_dir=tmp_path) as c:
        ids = member_ids(c)
        acked = {f"{PREFIX}k{n:02d}": f"v{n}" for n in range(KEYS_BEFORE)}
        grpc_put_all(c, acked.items(), via=range(3))

        old = wait_agreed_leader(c, range(3), not_id=0, within_s=NEW_LEADER_WITHIN_S)
        c.kill(old, signal.SIGSTOP)
        paused_at = time.monotonic()
        live = others([old], 3)
        wait_agreed_leader(c, live, not_id=ids[old], within_s=NEW_LEADER_WITHIN_S)
        elected_s = time.monotonic() - paused_at
        assert elected_s < NEW_LEADER_WITHIN_S, f"new leader after {elected_s:.2f} s"

        # Until the pause ends, every write through either live member is acknowledged.
        written = 0
        while time.monotonic() - paused_at < PAUSE_S:
            key, value = f"{PREFIX}during{written:03d}", str(written)
            rc, out, err = c.etcdctl("put", key, value, endpoint=live[written % 2])
            assert (rc, out) == (0, "OK\n"), f"put {written} during the pause: {err}"
            acked[key] = value
            written += 1
        assert written >= WRITES_DURING_PAUSE_MIN
        c.kill(old, signal.SIGCONT)

        # Resumed, the old leader follows the newer term and holds every acknowledged write.
        eventually(lambda: holds_all(c, old, PREFIX, acked), "the resumed member to catch up")
        eventually(lambda: agreed_leader(c, range(3)) is not None, "all three on one leader")
        hashes = eventually(lambda: cluster_hashes(c), "endpoint hashkv --cluster to agree")
        assert len(hashes) == 3
        # And it serves writes again (a follower now: it forwards them to the leader).
        assert c.etcdctl("put", f"{PREFIX}resumed", "1", endpoint=old) == (0, "OK\n", "")
