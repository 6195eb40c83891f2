"""kill -9 of members of a 3-member cluster, against etcd 3.4 and kvorum alike.

The issue: "kill -9 of the leader: a new leader within 3 s at default timeouts, writes go on;
a second member killed: writes fail with etcd's timeout error, serializable reads still answer;
both restarted: nothing lost, the lagging member caught up".
"""

from __future__ import annotations

import signal
import time
from functools import partial
from pathlib import Path

import pytest

from kvorum.testing import Cluster
from tests.e2e.failover.helpers import (
    NEW_LEADER_WITHIN_S,
    agreed_leader,
    cluster_hashes,
    endpoint_statuses,
    grpc_put_all,
    holds_all,
    last_error_line,
    local_kvs,
    member_command,
    member_ids,
    others,
    wait_agreed_leader,
)
from tests.e2e.member.helpers import all_published, eventually

pytestmark = pytest.mark.timeout(120)

PREFIX = "/failover/"
KEYS_BEFORE = 100
KEYS_AFTER_FIRST_KILL = 10
# etcd's server-side request timeout is 5 s + 2 x election timeout = 7 s at defaults; etcdctl's
# own deadline must be longer for the server's answer (not the client's) to show.
SERVER_REQUEST_TIMEOUT_S = 7.0
PUT_COMMAND_TIMEOUT_S = 10.0
# A linearizable read in a minority never completes; a short client deadline ends it.
READ_COMMAND_TIMEOUT = "--command-timeout=2s"
# After the second kill the lone survivor steps down (check-quorum) within two election
# timeouts; it is then leaderless for good.
STEP_DOWN_WITHIN_S = 5.0


@pytest.mark.parametrize("target", ["etcd", "kvorum"])
def test_leader_kill_then_minority_then_both_restarted_lose_nothing(
    target: str, tmp_path: Path
) -> None:
    with Cluster(member_command(target), 3, base_dir=tmp_path) as c:
        ids = member_ids(c)
        acked = {f"{PREFIX}k{n:03d}": f"v{n}" for n in range(KEYS_BEFORE)}
        grpc_put_all(c, acked.items(), via=range(3))

        # kill -9 of the leader: the survivors agree on another leader within 3 s.
        old = wait_agreed_leader(c, range(3), not_id=0, within_s=NEW_LEADER_WITHIN_S)
        c.kill(old, signal.SIGKILL)
        killed_at = time.monotonic()
        survivors = others([old], 3)
        new = wait_agreed_leader(c, survivors, not_id=ids[old], within_s=NEW_LEADER_WITHIN_S)
        elected_s = time.monotonic() - killed_at
        assert elected_s < NEW_LEADER_WITHIN_S, f"new leader after {elected_s:.2f} s"

        # Writes go on, through either survivor.
        for n in range(KEYS_AFTER_FIRST_KILL):
            key, value = f"{PREFIX}after{n}", str(n)
            assert c.etcdctl("put", key, value, endpoint=survivors[n % 2]) == (0, "OK\n", "")
            acked[key] = value

        # kill -9 of the other follower: the new leader is alone and cannot commit. Asked at
        # once (before check-quorum makes it step down), it holds the proposal until the
        # server's request timeout and answers etcd's timeout error -- not the client's deadline.
        (follower,) = others([old, new], 3)
        c.kill(follower, signal.SIGKILL)
        started = time.monotonic()
        rc, _, err = c.etcdctl(
            f"--command-timeout={PUT_COMMAND_TIMEOUT_S:g}s", "put", f"{PREFIX}lost", "x",
            endpoint=new,
        )  # fmt: skip
        failed_after_s = time.monotonic() - started
        assert rc != 0
        assert last_error_line(err) == "Error: etcdserver: request timed out", err
        assert SERVER_REQUEST_TIMEOUT_S - 1.0 < failed_after_s < PUT_COMMAND_TIMEOUT_S

        # Serializable reads still answer from the survivor's own store, with the old data.
        # (The timed-out put may yet commit after the restarts: it is in the survivor's log.)
        kvs = local_kvs(c, new, PREFIX)
        assert kvs is not None
        assert {k: v for k, v in kvs.items() if k != f"{PREFIX}lost"} == acked
        # A linearizable read needs a quorum: it fails when etcdctl's deadline expires. The
        # server's read wait runs on the deadline etcdctl sent along, so with etcd either side
        # may report it first: "context deadline exceeded" bare, or as code Unknown.
        rc, out, err = c.etcdctl("get", f"{PREFIX}k000", READ_COMMAND_TIMEOUT, endpoint=new)
        assert (rc, out) == (1, "")
        assert last_error_line(err).endswith(" context deadline exceeded"), err

        # Both restarted on their data dirs: nothing acknowledged is lost on any member, the
        # lagging ones caught up, all hashes agree and all three are listed as started.
        c.restart(follower)
        c.restart(old)
        for i in range(3):
            eventually(partial(holds_all, c, i, PREFIX, acked), f"every acked key on {i}")
        hashes = eventually(lambda: cluster_hashes(c), "endpoint hashkv --cluster to agree")
        assert len(hashes) == 3
        listed = eventually(lambda: all_published(c), "member list with 3 started members")
        assert sorted(m.name for m in listed) == ["infra0", "infra1", "infra2"]
        assert agreed_leader(c, range(3)) is not None


@pytest.mark.parametrize("target", ["etcd", "kvorum"])
def test_put_to_a_leaderless_member_times_out_like_etcd(target: str, tmp_path: Path) -> None:
    with Cluster(member_command(target), 3, base_dir=tmp_path) as c:
        leader = wait_agreed_leader(c, range(3), not_id=0, within_s=NEW_LEADER_WITHIN_S)
        # Kill the leader and one follower: the survivor is a follower that never gets a leader.
        (survivor, follower) = others([leader], 3)
        c.kill(leader, signal.SIGKILL)
        c.kill(follower, signal.SIGKILL)

        def leaderless() -> bool:
            statuses = endpoint_statuses(c, [survivor])
            return statuses is not None and statuses[0].leader_id == 0

        # Until its election timeout fires the survivor still names the dead leader (and would
        # forward the put there); once it campaigns it knows no leader at all.
        eventually(leaderless, "the survivor to drop its dead leader", STEP_DOWN_WITHIN_S)
        started = time.monotonic()
        rc, _, err = c.etcdctl(
            f"--command-timeout={PUT_COMMAND_TIMEOUT_S:g}s", "put", "k", "v", endpoint=survivor
        )
        failed_after_s = time.monotonic() - started
        assert rc != 0
        # etcd 3.4: raft has no leader to hand the proposal to and blocks it until the server's
        # request context expires; that bare context error reaches the client as code Unknown.
        expected = "Error: rpc error: code = Unknown desc = context deadline exceeded"
        assert last_error_line(err) == expected, err
        assert SERVER_REQUEST_TIMEOUT_S - 1.0 < failed_after_s < PUT_COMMAND_TIMEOUT_S
