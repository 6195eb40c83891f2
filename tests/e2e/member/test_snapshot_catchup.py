"""A member that fell behind a compacted log catches up through the leader's snapshot.

Three real kvorum processes with ``--snapshot-count 100`` and only 10 entries kept behind each
snapshot (``KVORUM_SNAPSHOT_CATCHUP_ENTRIES``, kvorum's test knob for etcd's fixed 5000). One
member is killed with SIGKILL, 600 puts go through the other two -- several snapshots, each
compacting the log far past the dead member's last index -- and the member is restarted on
its data dir: the leader can only send it a snapshot, which carries the backend database.
Real ``etcdctl`` then checks that nothing is lost and every member holds the same data.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.testing import Cluster
from tests.e2e.member.helpers import all_published, eventually, kvorum_binary

pytestmark = pytest.mark.timeout(60)

SNAPSHOT_COUNT = 100
CATCH_UP_ENTRIES = 10
PUTS = 600
INSTALLED = "installed the leader's snapshot"


def _hashkv_agree(c: Cluster) -> dict[str, str] | None:
    """``endpoint hashkv --cluster`` per endpoint, once all three report the same hash."""
    rc, out, _ = c.etcdctl("endpoint", "hashkv", "--cluster")
    if rc != 0:
        return None
    hashes = dict(line.split(", ") for line in out.splitlines() if line)
    return hashes if len(hashes) == 3 and len(set(hashes.values())) == 1 else None


def test_lagging_member_catches_up_through_a_snapshot(tmp_path: Path) -> None:
    cluster = Cluster(
        kvorum_binary(),
        3,
        base_dir=tmp_path,
        extra_flags=["--snapshot-count", str(SNAPSHOT_COUNT)],
        env={"KVORUM_SNAPSHOT_CATCHUP_ENTRIES": str(CATCH_UP_ENTRIES)},
    )
    with cluster as c:
        eventually(lambda: all_published(c), "every member to publish itself")
        assert c.etcdctl("put", "before", "0") == (0, "OK\n", "")
        leader = c.leader_index()
        assert leader is not None
        lagging = (leader + 1) % 3
        c.kill(lagging, signal.SIGKILL)

        kv = c.member(leader).kv_stub()
        for n in range(PUTS):
            kv.Put(rpc_pb2.PutRequest(key=f"key{n:04d}".encode(), value=f"v{n}".encode()))
        leader_log = c.member(leader).log_tail(2000)
        assert "log compacted to" in leader_log

        c.restart(lagging)
        agreed = eventually(lambda: _hashkv_agree(c), "hashkv --cluster to agree on all three")
        assert len(agreed) == 3
        log = c.member(lagging).log_tail(2000)
        assert INSTALLED in log, log

        # Every key, read from the caught-up member's own store.
        rc, out, err = c.etcdctl(
            "get", "key", "--prefix", "--consistency=s", endpoint=lagging, timeout_s=30.0
        )
        assert rc == 0, err
        lines = out.splitlines()
        assert lines[0::2] == [f"key{n:04d}" for n in range(PUTS)]
        assert lines[1::2] == [f"v{n}" for n in range(PUTS)]
        rc, out, err = c.etcdctl("get", "before", "--consistency=s", endpoint=lagging)
        assert (rc, out) == (0, "before\n0\n"), err

        # It goes on as a normal member: a write through it lands everywhere.
        assert c.etcdctl("put", "after", "1", endpoint=lagging) == (0, "OK\n", "")
        eventually(lambda: _hashkv_agree(c), "hashkv to agree after a write through it")

        # Both restarted, nothing is lost and the installed database is the one that opens.
        c.restart(lagging)
        c.restart(leader)
        eventually(lambda: _hashkv_agree(c), "hashkv to agree after restarting both")
        for i in (leader, lagging):
            rc, out, err = c.etcdctl(
                "get", "", "--from-key", "--keys-only", "--consistency=s", endpoint=i,
                timeout_s=30.0,
            )  # fmt: skip
            assert rc == 0, err
            assert len(out.split()) == PUTS + 2  # "before", the 600 keys, "after"
