"""Regression test for a kvorum bug the ``replace`` nemesis found: a follower refused removals.

On a healthy 3-member cluster, ``etcdctl member remove <leader>`` sent to a follower is accepted
by etcd 3.4 and refused by kvorum with "re-configuration failed due to not enough started
members" for as long as one cares to retry (30 s in the nemesis). The strict reconfig check
counts the peers this member is connected to (``KvorumMember._active_ids``, from the peer
transport's ``stats.active``), and kvorum's transport dials a peer only when it first has a
message for it: followers never send each other anything, so to a follower the other follower
never becomes active. etcd's rafthttp dials a stream to every peer as soon as it is added.

Fixed by dialling every peer's small-message stream when it is added, as etcd does.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kvorum.testing.cluster import Cluster
from tests.e2e.failover.helpers import member_command

pytestmark = pytest.mark.timeout(90)

# etcd's strict check wants every peer connected for its health interval (5 s) first.
HEALTH_INTERVAL_S = 5.0
REFUSAL_GRACE_S = 10.0


@pytest.mark.parametrize(
    "target",
    [
        "etcd",
        "kvorum",
    ],
)
def test_member_remove_through_a_follower_is_accepted(target: str, tmp_path: Path) -> None:
    with Cluster(member_command(target), 3, base_dir=tmp_path) as c:
        leader, followers = _steady_leader_with_fresh_followers(c)
        time.sleep(HEALTH_INTERVAL_S + 1.0)
        # The leader is removed through a follower: all three are up and connected to the
        # leader, so two voters stay active and etcd's check passes. A loaded machine may take
        # a few seconds more to connect the followers to each other (etcd too); the bug refused
        # for as long as one retried.
        removed_id = c.status(leader).header.member_id
        deadline = time.monotonic() + REFUSAL_GRACE_S
        while True:
            rc, out, err = c.etcdctl("member", "remove", f"{removed_id:x}", endpoint=followers[0])
            if rc == 0 or "not enough started members" not in err:
                break
            assert time.monotonic() < deadline, err
            time.sleep(0.5)
        assert rc == 0, err
        # etcdctl pads the id to 16 columns ("Member  cd38e1a74885ea2 removed ..."), so an id
        # whose top nibble is zero gains a leading space.
        assert f"Member {removed_id:16x} removed" in out


def _steady_leader_with_fresh_followers(c: Cluster) -> tuple[int, list[int]]:
    """Restart each follower, one after the other, under a steady leader: then the followers
    only ever heard from (and answered) the leader, as no election made them message each
    other. An election during the restarts (a loaded machine) spoils that: start again."""
    for _ in range(3):
        leader = c.wait_for_leader()
        followers = [i for i in range(3) if i != leader]
        for follower in followers:
            c.restart(follower)
        if c.wait_for_leader() == leader:
            return leader, followers
    pytest.fail("leadership moved during each of 3 rounds of follower restarts")
