"""Leases on a 3-member kvorum cluster, through the real etcdctl.

A lease nobody keeps alive is revoked by the leader through raft, so its keys vanish on every
member; keep-alive resets the TTL; revoke deletes the keys at once; every member answers
grant, time-to-live and keep-alive (followers hand leader-only work to the leader).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from kvorum.testing import Cluster
from tests.e2e.member.helpers import all_published, eventually, kvorum_cluster

pytestmark = pytest.mark.timeout(60)

#: etcd's minimum TTL with the default timing flags (1.5 election timeouts, rounded up).
MIN_TTL_S = 2
#: TTL + one expiry check + a proposal round, with room for a loaded 2-core machine.
GONE_WITHIN_S = 8.0


def _grant(c: Cluster, ttl_s: int, endpoint: int) -> str:
    rc, out, err = c.etcdctl("lease", "grant", str(ttl_s), endpoint=endpoint)
    assert rc == 0, err
    match = re.fullmatch(r"lease ([0-9a-f]+) granted with TTL\((\d+)s\)\n", out)
    assert match is not None, out
    assert int(match.group(2)) == max(ttl_s, MIN_TTL_S)
    return match.group(1)


def _local_keys(c: Cluster, index: int) -> list[str]:
    """Keys member `index` holds itself (serializable read: no forwarding, no ReadIndex)."""
    rc, out, err = c.etcdctl(
        "get", "", "--from-key", "--keys-only", "--consistency=s", endpoint=index
    )
    assert rc == 0, err
    return [line for line in out.splitlines() if line]


def test_leases_expire_renew_and_revoke_on_three_members(tmp_path: Path) -> None:
    with kvorum_cluster(3, tmp_path) as c:
        eventually(lambda: all_published(c), "every member to publish itself")
        leader = c.wait_for_leader()
        follower = (leader + 1) % 3

        # An unrenewed 2 s lease granted through a follower: its key disappears everywhere.
        short = _grant(c, 1, follower)  # raised to the minimum TTL
        assert c.etcdctl("put", "short", "v", f"--lease={short}", endpoint=follower)[0] == 0
        assert c.etcdctl("put", "plain", "v", endpoint=follower)[0] == 0
        for i in range(3):
            eventually(lambda i=i: "short" in _local_keys(c, i), f"short on member {i}")
        started = time.monotonic()
        for i in range(3):
            eventually(
                lambda i=i: _local_keys(c, i) == ["plain"],
                f"the expired lease's key to vanish on member {i}",
                timeout_s=GONE_WITHIN_S,
            )
        assert time.monotonic() - started < GONE_WITHIN_S
        rc, out, _ = c.etcdctl("lease", "timetolive", short, endpoint=leader)
        assert (rc, out) == (0, f"lease {short} already expired\n")

        # Keep-alive resets the TTL, on the leader and through a follower alike.
        long = _grant(c, 60, leader)
        assert c.etcdctl("put", "a", "1", f"--lease={long}")[0] == 0
        assert c.etcdctl("put", "b", "2", f"--lease={long}")[0] == 0
        for i in (leader, follower):
            rc, out, err = c.etcdctl("lease", "keep-alive", "--once", long, endpoint=i)
            assert (rc, out) == (0, f"lease {long} keepalived with TTL(60)\n"), err
            rc, out, err = c.etcdctl("lease", "timetolive", long, "--keys", endpoint=i)
            assert rc == 0, err
            match = re.fullmatch(
                rf"lease {long} granted with TTL\(60s\), remaining\((\d+)s\), "
                r"attached keys\(\[a b\]\)\n",
                out,
            )
            assert match is not None and 55 <= int(match.group(1)) <= 60, out
        rc, out, _ = c.etcdctl("lease", "list", endpoint=follower)
        assert (rc, out) == (0, f"found 1 leases\n{long}\n")

        # Revoke deletes every attached key, on every member.
        assert c.etcdctl("lease", "revoke", long, endpoint=follower) == (
            0,
            f"lease {long} revoked\n",
            "",
        )
        for i in range(3):
            eventually(lambda i=i: _local_keys(c, i) == ["plain"], f"revoked keys on {i}")
        rc, _, err = c.etcdctl("lease", "revoke", long)
        assert rc != 0 and "requested lease not found" in err

        # The lessor's own errors reach etcdctl with etcd's texts.
        rc, _, err = c.etcdctl("lease", "grant", "9000000001", endpoint=follower)
        assert rc != 0 and "etcdserver: too large lease TTL" in err
