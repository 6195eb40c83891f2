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


@pytest.mark.parametrize(
    "target",
    [
        "etcd",
        "kvorum",
    ],
)
def test_member_remove_through_a_follower_is_accepted(target: str, tmp_path: Path) -> None:
    with Cluster(member_command(target), 3, base_dir=tmp_path) as c:
        leader = c.wait_for_leader()
        followers = [i for i in range(3) if i != leader]
        # Restarted one after the other under a steady leader, the followers only ever hear
        # from (and answer) the leader: no election makes them message each other.
        for follower in followers:
            c.restart(follower)
        assert c.wait_for_leader() == leader, "leadership moved; the setup needs a steady one"
        time.sleep(HEALTH_INTERVAL_S + 1.0)
        # The leader is removed through a follower: all three are up and connected to the
        # leader, so two voters stay active and etcd's check passes.
        removed_id = c.status(leader).header.member_id
        rc, out, err = c.etcdctl("member", "remove", f"{removed_id:x}", endpoint=followers[0])
        assert rc == 0, err
        assert f"Member {removed_id:x} removed" in out
