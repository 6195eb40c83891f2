"""A 3-member kvorum cluster from the clustering guide's static-bootstrap command lines.

Every member serves etcdctl; all agree on membership, status and history; kill -9 of the
leader gives a new leader within 3 s and writes go on; the killed member, restarted on its
data dir, catches up.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from kvorum.testing import Cluster
from tests.e2e.member.helpers import all_published, eventually, kvorum_cluster

pytestmark = pytest.mark.timeout(90)

NEW_LEADER_WITHIN_S = 3.0


def _statuses(c: Cluster) -> list[dict[str, object]]:
    rc, out, err = c.etcdctl("endpoint", "status", "-w", "json")
    assert rc == 0, err
    return [s["Status"] for s in json.loads(out)]


def _hashkv_agree(c: Cluster) -> dict[str, str] | None:
    """``endpoint hashkv`` per endpoint, once every live member reports the same hash."""
    rc, out, _ = c.etcdctl("endpoint", "hashkv")
    if rc != 0:
        return None
    hashes = dict(line.split(", ") for line in out.splitlines() if line)
    live = sum(m.live for m in c.members)
    return hashes if len(hashes) == live and len(set(hashes.values())) == 1 else None


def test_three_members_agree_survive_leader_kill_and_catch_up(tmp_path: Path) -> None:
    with kvorum_cluster(3, tmp_path) as c:
        members = eventually(lambda: all_published(c), "every member to publish itself")
        assert sorted(m.name for m in members) == ["infra0", "infra1", "infra2"]
        assert {m.client_urls for m in members} == set(c.endpoints)
        assert {m.peer_urls for m in members} == {m.spec.peer_url for m in c.members}
        # Every member shows the same list.
        for i in range(3):
            assert eventually(lambda i=i: all_published(c, i), f"member list on {i}") == members

        # Writes and reads through every member (followers forward to the leader).
        for i in range(3):
            assert c.etcdctl("put", f"k{i}", f"v{i}", endpoint=i) == (0, "OK\n", "")
        for i in range(3):
            rc, out, err = c.etcdctl("get", "k", "--prefix", endpoint=i)
            assert (rc, out) == (0, "k0\nv0\nk1\nv1\nk2\nv2\n"), err

        statuses = _statuses(c)
        ids = {s["header"]["member_id"] for s in statuses}  # type: ignore[index]
        leaders = {s["leader"] for s in statuses}
        assert len(ids) == 3 and len(leaders) == 1 and leaders <= ids
        assert len({s["raftTerm"] for s in statuses}) == 1
        rc, out, err = c.etcdctl("endpoint", "health")
        assert rc == 0 and out.count("is healthy") + err.count("is healthy") == 3, out + err
        before = eventually(lambda: _hashkv_agree(c), "hashkv to agree")

        # kill -9 of the leader: another member leads within 3 s, writes go on.
        old = c.leader_index()
        assert old is not None
        c.kill(old, signal.SIGKILL)
        killed_at = time.monotonic()
        new = c.wait_for_leader(timeout_s=10.0, exclude=[old])
        elected_s = time.monotonic() - killed_at
        assert elected_s < NEW_LEADER_WITHIN_S, f"new leader after {elected_s:.2f} s"
        survivors = [i for i in range(3) if i != old]
        for n in range(10):
            via = survivors[n % 2]
            assert c.etcdctl("put", f"after{n}", str(n), endpoint=via) == (0, "OK\n", "")
        assert eventually(lambda: _hashkv_agree(c), "survivors' hashkv") != before

        # Restarted on its data dir, the old leader catches up from the log.
        c.restart(old)
        rc, out, err = c.etcdctl("get", "after9", endpoint=old)
        assert (rc, out) == (0, "after9\n9\n"), err
        agreed = eventually(lambda: _hashkv_agree(c), "hashkv on all three after the restart")
        assert len(agreed) == 3
        # The restarted member serves serializable reads from its own, caught-up store.
        rc, out, _ = c.etcdctl("get", "after", "--prefix", "--keys-only", "--consistency=s",
                               endpoint=old)  # fmt: skip
        assert len(out.split()) == 10

        # move-leader through the current leader.
        leader = c.leader_index()
        assert leader is not None
        target = next(i for i in range(3) if i != leader)
        target_id = format(_statuses(c)[target]["header"]["member_id"], "x")  # type: ignore[index]
        rc, out, err = c.etcdctl("move-leader", target_id, endpoint=leader)
        assert rc == 0 and out.startswith("Leadership transferred from "), err
        eventually(lambda: c.leader_index() == target, "every member to see the new leader")

        # SIGTERM of the leader: it hands leadership over before it stops (as etcd does).
        leader = c.leader_index()
        assert leader is not None
        c.restart(leader)
        # The whole log: the restart appends its own start-up lines after the hand-over line.
        log = c.member(leader).spec.log_path.read_text(errors="replace")
        assert "handed leadership to" in log
        assert c.etcdctl("put", "after-restart", "1", endpoint=new) == (0, "OK\n", "")
