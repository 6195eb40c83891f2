"""Lock and Election on a 3-member kvorum cluster: a claim outlives neither its holder nor a
change of raft leader.

The holders talk to one follower, the waiters to the other; the holders' processes are
SIGKILLed together with the kvorum leader. The new leader's lessor takes the holders' leases
over (with a fresh TTL, as etcd's does), lets them expire since nobody keeps them alive, and
the waiters -- served by the Lock and Election services of a member that never saw a client
of the holders -- get the lock and the leadership; an observer on that member sees the
leadership change.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import grpc

from kvorum.api.pb.v3electionpb import v3election_pb2 as epb
from kvorum.api.pb.v3lockpb import v3lock_pb2 as lpb
from kvorum.testing import binary_for
from kvorum.testing.pytest_plugin import ClusterFactory
from tests.e2e.lockelect.conftest import Background
from tests.e2e.lockelect.helpers import RPC_TIMEOUT_S, WAIT_S, stubs_for, wait_until

TTL_S = 2
# Leader election (about one election timeout, more on a loaded machine), then the holders'
# leases run a full TTL under the new leader before they expire.
HANDOVER_S_MAX = 30.0


def test_claims_pass_on_when_holders_and_the_raft_leader_die(
    kvorum_cluster: ClusterFactory, background: Background
) -> None:
    cluster = kvorum_cluster(size=3, binary=binary_for("kvorum"))
    leader = cluster.wait_for_leader()
    holder_side, waiter_side = (i for i in range(3) if i != leader)
    holder_stubs, waiter_stubs = stubs_for(cluster, holder_side), stubs_for(cluster, waiter_side)
    try:
        # The lock holder: etcdctl, its session lease kept alive by etcdctl itself.
        holder = background(cluster, ["lock", "--ttl", str(TTL_S), "mylock"], member=holder_side)
        holder.wait_lines(1)
        # The election's leader: a lease kept alive by `etcdctl lease keep-alive`.
        leader_lease = holder_stubs.grant(TTL_S)
        keeper = background(
            cluster, ["lease", "keep-alive", format(leader_lease, "x")], member=holder_side
        )
        keeper.wait_lines(1)
        won = holder_stubs.election.Campaign(
            epb.CampaignRequest(name=b"myelection", lease=leader_lease, value=b"p1"),
            timeout=RPC_TIMEOUT_S,
        )

        # The waiters, on the other follower, with leases long enough to outlast the test.
        lock_lease, campaign_lease = waiter_stubs.grant(60), waiter_stubs.grant(60)
        lock_waiter = waiter_stubs.lock.Lock.future(
            lpb.LockRequest(name=b"mylock", lease=lock_lease), timeout=HANDOVER_S_MAX + WAIT_S
        )
        campaign_waiter = waiter_stubs.election.Campaign.future(
            epb.CampaignRequest(name=b"myelection", lease=campaign_lease, value=b"p2"),
            timeout=HANDOVER_S_MAX + WAIT_S,
        )
        observed: list[Any] = []
        stream = waiter_stubs.election.Observe(
            epb.LeaderRequest(name=b"myelection"), timeout=HANDOVER_S_MAX + WAIT_S
        )

        def read() -> None:
            try:
                for response in stream:
                    observed.append(response)
            except grpc.RpcError:
                pass  # cancelled at the end

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        wait_until(lambda: waiter_stubs.count(b"mylock/") == 2, "the lock waiter to queue")
        wait_until(lambda: waiter_stubs.count(b"myelection/") == 2, "the candidate to queue")
        wait_until(lambda: len(observed) == 1, "the observer to see p1")
        assert observed[0].kv.value == b"p1"
        assert not lock_waiter.done() and not campaign_waiter.done()

        holder.send_signal(signal.SIGKILL)
        keeper.send_signal(signal.SIGKILL)
        cluster.kill(leader, signal.SIGKILL)
        killed_at = time.monotonic()

        locked = lock_waiter.result(timeout=HANDOVER_S_MAX)
        assert locked.key == b"mylock/" + format(lock_lease, "x").encode()
        elected = campaign_waiter.result(timeout=HANDOVER_S_MAX)
        assert elected.leader.key == b"myelection/" + format(campaign_lease, "x").encode()
        handover_s = time.monotonic() - killed_at
        wait_until(lambda: len(observed) == 2, "the observer to see p2")
        assert observed[1].kv.value == b"p2"
        assert observed[1].kv.key == elected.leader.key
        # The old claims are gone for good, and the new leader can proclaim.
        assert waiter_stubs.count(b"mylock/") == 1
        with_old_key = epb.ProclaimRequest(leader=won.leader, value=b"stale")
        try:
            waiter_stubs.election.Proclaim(with_old_key, timeout=RPC_TIMEOUT_S)
            raise AssertionError("the old leader could still proclaim")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNKNOWN
            assert exc.details() == "election: not leader"
        waiter_stubs.election.Proclaim(
            epb.ProclaimRequest(leader=elected.leader, value=b"p2b"), timeout=RPC_TIMEOUT_S
        )
        wait_until(lambda: len(observed) == 3, "the observer to see p2b")
        assert observed[2].kv.value == b"p2b"
        stream.cancel()
        reader.join(timeout=WAIT_S)
        # Not at once: the leases had to expire first.
        assert handover_s > 1.0, handover_s
    finally:
        holder_stubs.close()
        waiter_stubs.close()
