"""Leases through leader failure and a full-cluster restart on 3 kvorum members.

A lease kept alive from a client on a follower outlives a SIGKILL of the leader: its key stays
through the election and for over two TTLs after the kill, and once the keep-alives stop it
vanishes from every member within TTL + election timeout (+ margin). A lease survives stopping
every member: after the restart it is still granted, and, as in etcd, the new leader restarts
its full TTL (plus the election timeout) instead of counting the time the cluster was down.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.testing import Cluster
from tests.e2e.member.helpers import eventually, kvorum_cluster

pytestmark = pytest.mark.timeout(120)

TTL_S = 4
#: etcd's default election timeout: a new leader gives every lease this much on top of its TTL.
ELECTION_TIMEOUT_S = 1.0
#: The client renews every TTL/4 (etcd's client: TTL/3), so one lost round costs nothing.
KEEP_ALIVE_EVERY_S = TTL_S / 4
#: A keep-alive answer later than this means the stream is stuck: it is cancelled and reopened.
ANSWER_WAIT_S = 3.0
RPC_TIMEOUT_S = 5.0
NEW_LEADER_WITHIN_S = 15.0
#: After the last keep-alive a lease lives TTL (+ the election timeout if leadership changed
#: since), then the leader notices within its 0.5 s expiry check and commits the revocation.
#: The margin of 6 s is for a loaded 2-core CI machine (several clusters and test processes
#: at once): on an idle machine the key goes within TTL + 1 s.
EXPIRY_MARGIN_S = 6.0
GONE_WITHIN_S = TTL_S + ELECTION_TIMEOUT_S + EXPIRY_MARGIN_S
KEY = b"lf/held"


class Keeper:
    """One LeaseKeepAlive stream on one member, renewing every KEEP_ALIVE_EVERY_S. A failed or
    stuck stream (as during an election) is reopened on the same member."""

    def __init__(self, address: str, lease_id: int) -> None:
        self._address = address
        self._lease_id = lease_id
        self._stopped = threading.Event()
        #: (monotonic time, TTL answered) of every answer; TTL <= 0 means "lease not found".
        self.answers: list[tuple[float, int]] = []
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with grpc.insecure_channel(self._address) as channel:
            stub: Any = rpc_pb2_grpc.LeaseStub(channel)  # type: ignore[no-untyped-call]
            while not self._stopped.is_set():
                requests: queue.Queue[rpc_pb2.LeaseKeepAliveRequest | None] = queue.Queue()
                call = stub.LeaseKeepAlive(iter(requests.get, None))
                try:
                    self._renew_on(call, requests)
                except grpc.RpcError as error:
                    self.errors.append(f"{error.code()}: {error.details()}")
                    self._stopped.wait(0.2)
                finally:
                    requests.put(None)
                    call.cancel()

    def _renew_on(self, call: Any, requests: queue.Queue[Any]) -> None:
        while not self._stopped.is_set():
            requests.put(rpc_pb2.LeaseKeepAliveRequest(ID=self._lease_id))
            watchdog = threading.Timer(ANSWER_WAIT_S, call.cancel)
            watchdog.start()
            try:
                answer = next(call)
            finally:
                watchdog.cancel()
            self.answers.append((time.monotonic(), answer.TTL))
            if answer.TTL <= 0:
                return  # the lease is gone: nothing left to keep
            self._stopped.wait(KEEP_ALIVE_EVERY_S)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(ANSWER_WAIT_S + RPC_TIMEOUT_S)
        assert not self._thread.is_alive(), "the keeper did not stop"


@contextmanager
def _lease_stub(c: Cluster, index: int) -> Iterator[Any]:
    with grpc.insecure_channel(c.member(index).spec.client_address) as channel:
        yield rpc_pb2_grpc.LeaseStub(channel)  # type: ignore[no-untyped-call]


def _held_locally(c: Cluster, index: int) -> bool | None:
    """Whether member `index` itself holds KEY (serializable read); None if it did not answer."""
    try:
        resp = (
            c.member(index)
            .kv_stub()
            .Range(rpc_pb2.RangeRequest(key=KEY, serializable=True), timeout=RPC_TIMEOUT_S)
        )
    except grpc.RpcError:
        return None
    return bool(resp.count == 1)


def _grant_and_attach(c: Cluster, index: int, ttl_s: int) -> int:
    with _lease_stub(c, index) as lease:
        lease_id: int = lease.LeaseGrant(
            rpc_pb2.LeaseGrantRequest(TTL=ttl_s), timeout=RPC_TIMEOUT_S
        ).ID
    put = rpc_pb2.PutRequest(key=KEY, value=b"v", lease=lease_id)
    c.member(index).kv_stub().Put(put, timeout=RPC_TIMEOUT_S)
    return lease_id


def _time_to_live(c: Cluster, index: int, lease_id: int) -> rpc_pb2.LeaseTimeToLiveResponse:
    with _lease_stub(c, index) as lease:
        request = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=True)
        response: rpc_pb2.LeaseTimeToLiveResponse = lease.LeaseTimeToLive(
            request, timeout=RPC_TIMEOUT_S
        )
    return response


def _wait_gone_everywhere(c: Cluster, since: float, within_s: float) -> None:
    deadline = since + within_s
    for i in range(c.size):
        while _held_locally(c, i) is not False:
            assert time.monotonic() < deadline, f"the lease's key is still on member {i}"
            time.sleep(0.05)


def test_a_lease_kept_alive_on_a_follower_outlives_the_leaders_death(tmp_path: Path) -> None:
    with kvorum_cluster(3, tmp_path) as c:
        leader = c.wait_for_leader()
        follower = (leader + 1) % 3
        lease_id = _grant_and_attach(c, follower, TTL_S)
        keeper = Keeper(c.member(follower).spec.client_address, lease_id)
        try:
            eventually(lambda: keeper.answers, "a first keep-alive answer")
            c.kill(leader, signal.SIGKILL)
            killed_at = time.monotonic()
            new_leader = c.wait_for_leader(NEW_LEADER_WITHIN_S, exclude=[leader])
            elected_at = time.monotonic()
            # Through the election and two TTLs beyond the kill, the key never goes away.
            while time.monotonic() < killed_at + 2 * TTL_S + 1:
                assert _held_locally(c, follower), "the kept lease expired after the kill"
                time.sleep(0.25)
            renewed_after_election = [t for t, ttl in keeper.answers if t > elected_at]
            assert renewed_after_election, f"no renewal after the election: {keeper.errors}"
            assert all(ttl == TTL_S for _, ttl in keeper.answers), keeper.answers
            # Back to three members, so that the expiry is checked on every one of them.
            c.restart(leader)
            eventually(lambda: _held_locally(c, leader), "the restarted member to catch up")
        finally:
            keeper.stop()
        stopped_at = time.monotonic()
        # Not expired early: the last renewal was at most one interval ago (TTL + election
        # timeout at most, should leadership have moved again since).
        remaining = _time_to_live(c, new_leader, lease_id)
        assert 0 < remaining.TTL <= TTL_S + ELECTION_TIMEOUT_S, remaining
        assert list(remaining.keys) == [KEY]
        _wait_gone_everywhere(c, stopped_at, GONE_WITHIN_S)
        assert _time_to_live(c, follower, lease_id).TTL == -1


def test_leases_survive_a_full_cluster_restart_with_their_ttl_restarted(
    tmp_path: Path,
) -> None:
    ttl_s = 8
    with kvorum_cluster(3, tmp_path) as c:
        lease_id = _grant_and_attach(c, c.wait_for_leader(), ttl_s)
        granted_at = time.monotonic()
        c.stop()
        # Down for longer than the TTL: a lease whose clock ran on would be expired now.
        time.sleep(max(granted_at + ttl_s + 1 - time.monotonic(), 0))
        starting_at = time.monotonic()
        c.start()
        asked_at = time.monotonic()
        ttl = _time_to_live(c, 0, lease_id)
        with _lease_stub(c, 1) as lease:
            listed = lease.LeaseLeases(rpc_pb2.LeaseLeasesRequest(), timeout=RPC_TIMEOUT_S)
        assert [item.ID for item in listed.leases] == [lease_id]
        assert (ttl.grantedTTL, list(ttl.keys)) == (ttl_s, [KEY])
        # The new leader granted TTL + election timeout when it was elected, after start-up
        # began; the answer truncates to whole seconds.
        upper_s = ttl_s + ELECTION_TIMEOUT_S
        assert upper_s - (asked_at - starting_at) - 1 <= ttl.TTL <= upper_s, ttl
        assert all(_held_locally(c, i) for i in range(3))
        # Unrenewed, the restored lease still expires, on every member.
        _wait_gone_everywhere(c, asked_at, ttl.TTL + 1 + EXPIRY_MARGIN_S)
