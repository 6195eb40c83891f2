"""Our generated stubs against the real etcd 3.4 server.

The etcdctl test proves that etcd's client decodes what our code encodes for four RPCs. This
one covers the other direction and the message shapes etcdctl does not exercise there: a real
``/usr/bin/etcd`` (single member, temporary data dir, loopback ports) is driven through our
stubs -- txn compares with their ``target_union`` oneof and ``range_end`` (tag 64), nested txns,
the bidirectional Watch and LeaseKeepAlive streams, lock and election -- and every response
must decode to the values etcd documents.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.api.pb.mvccpb import kv_pb2
from kvorum.api.pb.v3electionpb import v3election_pb2, v3election_pb2_grpc
from kvorum.api.pb.v3lockpb import v3lock_pb2, v3lock_pb2_grpc

ETCD = Path("/usr/bin/etcd")
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
RPC_TIMEOUT_S = 5.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    if not ETCD.exists():
        pytest.skip(f"{ETCD} not installed (run scripts/ensure-debian-packages)")
    data = tmp_path_factory.mktemp("etcd")
    client, peer = _free_port(), _free_port()
    cmd = [
        str(ETCD),
        f"--data-dir={data / 'member'}",
        f"--listen-client-urls=http://127.0.0.1:{client}",
        f"--advertise-client-urls=http://127.0.0.1:{client}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=default=http://127.0.0.1:{peer}",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    with (data / "etcd.log").open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    chan = grpc.insecure_channel(f"127.0.0.1:{client}")
    try:
        _wait_ready(chan, proc, data / "etcd.log")
        yield chan
    finally:
        chan.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(chan: grpc.Channel, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until the member has a leader and serves a linearizable read."""
    kv = rpc_pb2_grpc.KVStub(chan)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"etcd exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            kv.Range(rpc_pb2.RangeRequest(key=b"probe"), timeout=1.0)
            return
        except grpc.RpcError:
            if time.monotonic() > deadline:
                pytest.fail(f"etcd not ready after {START_TIMEOUT_S}s: {log.read_text()[-2000:]}")
            time.sleep(0.1)


def test_header_status_and_members(channel: grpc.Channel) -> None:
    status = rpc_pb2_grpc.MaintenanceStub(channel).Status(
        rpc_pb2.StatusRequest(), timeout=RPC_TIMEOUT_S
    )
    assert status.version.startswith("3.4.")
    assert status.leader == status.header.member_id != 0
    assert status.header.cluster_id != 0
    assert status.raftAppliedIndex > 0 and status.dbSize > 0
    members = rpc_pb2_grpc.ClusterStub(channel).MemberList(
        rpc_pb2.MemberListRequest(), timeout=RPC_TIMEOUT_S
    )
    assert [(m.ID, m.name, m.isLearner) for m in members.members] == [
        (status.header.member_id, "default", False)
    ]


def test_put_range_and_prev_kv(channel: grpc.Channel) -> None:
    kv = rpc_pb2_grpc.KVStub(channel)
    first = kv.Put(rpc_pb2.PutRequest(key=b"/p/a", value=b"1"), timeout=RPC_TIMEOUT_S)
    second = kv.Put(
        rpc_pb2.PutRequest(key=b"/p/a", value=b"2", prev_kv=True), timeout=RPC_TIMEOUT_S
    )
    created = first.header.revision
    assert second.header.revision == created + 1
    assert second.prev_kv == kv_pb2.KeyValue(
        key=b"/p/a", value=b"1", create_revision=created, mod_revision=created, version=1
    )
    got = kv.Range(rpc_pb2.RangeRequest(key=b"/p/", range_end=b"/p0"), timeout=RPC_TIMEOUT_S)
    assert list(got.kvs) == [
        kv_pb2.KeyValue(
            key=b"/p/a", value=b"2", create_revision=created, mod_revision=created + 1, version=2
        )
    ]
    assert (got.count, got.more) == (1, False)


def test_txn_compares_and_nested_txn(channel: grpc.Channel) -> None:
    kv = rpc_pb2_grpc.KVStub(channel)
    rev = kv.Put(rpc_pb2.PutRequest(key=b"/t/a", value=b"x"), timeout=RPC_TIMEOUT_S)
    mod = rev.header.revision
    compares = [
        rpc_pb2.Compare(
            key=b"/t/a", target=rpc_pb2.Compare.MOD, result=rpc_pb2.Compare.EQUAL, mod_revision=mod
        ),
        rpc_pb2.Compare(
            key=b"/t/a", target=rpc_pb2.Compare.VALUE, result=rpc_pb2.Compare.NOT_EQUAL, value=b"y"
        ),
        # A range compare: every key in [/t/, /t0) has lease 0.
        rpc_pb2.Compare(
            key=b"/t/",
            range_end=b"/t0",
            target=rpc_pb2.Compare.LEASE,
            result=rpc_pb2.Compare.EQUAL,
            lease=0,
        ),
    ]
    nested = rpc_pb2.TxnRequest(
        success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"/t/b", value=b"n"))]
    )
    resp = kv.Txn(
        rpc_pb2.TxnRequest(
            compare=compares,
            success=[
                rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"/t/a")),
                rpc_pb2.RequestOp(request_txn=nested),
            ],
            failure=[
                rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"/t/a"))
            ],
        ),
        timeout=RPC_TIMEOUT_S,
    )
    assert resp.succeeded
    assert [r.WhichOneof("response") for r in resp.responses] == ["response_range", "response_txn"]
    assert resp.responses[0].response_range.kvs[0].value == b"x"
    inner = resp.responses[1].response_txn
    assert inner.succeeded and inner.responses[0].WhichOneof("response") == "response_put"
    assert resp.header.revision == mod + 1

    failed = kv.Txn(
        rpc_pb2.TxnRequest(
            compare=[
                rpc_pb2.Compare(
                    key=b"/t/a",
                    target=rpc_pb2.Compare.VERSION,
                    result=rpc_pb2.Compare.GREATER,
                    version=5,
                )
            ],
            failure=[
                rpc_pb2.RequestOp(
                    request_delete_range=rpc_pb2.DeleteRangeRequest(
                        key=b"/t/", range_end=b"/t0", prev_kv=True
                    )
                )
            ],
        ),
        timeout=RPC_TIMEOUT_S,
    )
    assert not failed.succeeded
    deleted = failed.responses[0].response_delete_range
    assert deleted.deleted == 2
    assert sorted(p.key for p in deleted.prev_kvs) == [b"/t/a", b"/t/b"]


def test_watch_stream_delivers_events(channel: grpc.Channel) -> None:
    kv = rpc_pb2_grpc.KVStub(channel)
    start = kv.Put(rpc_pb2.PutRequest(key=b"/w/a", value=b"1"), timeout=RPC_TIMEOUT_S)
    kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"/w/a"), timeout=RPC_TIMEOUT_S)
    create = rpc_pb2.WatchCreateRequest(
        key=b"/w/", range_end=b"/w0", start_revision=start.header.revision, prev_kv=True
    )
    requests = iter([rpc_pb2.WatchRequest(create_request=create)])
    stream = rpc_pb2_grpc.WatchStub(channel).Watch(requests, timeout=RPC_TIMEOUT_S)
    try:
        created = next(stream)
        assert created.created and not created.events
        events: list[kv_pb2.Event] = []
        for resp in stream:
            assert resp.watch_id == created.watch_id
            events.extend(resp.events)
            if len(events) >= 2:
                break
    finally:
        stream.cancel()
    put, delete = events
    assert put.type == kv_pb2.Event.PUT and put.kv.value == b"1" and put.kv.version == 1
    assert delete.type == kv_pb2.Event.DELETE
    assert delete.kv.key == b"/w/a" and delete.kv.mod_revision == start.header.revision + 1
    assert delete.prev_kv.value == b"1"


def test_lease_grant_keepalive_ttl_revoke(channel: grpc.Channel) -> None:
    leases = rpc_pb2_grpc.LeaseStub(channel)
    kv = rpc_pb2_grpc.KVStub(channel)
    grant = leases.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60, ID=0x77), timeout=RPC_TIMEOUT_S)
    assert (grant.ID, grant.TTL, grant.error) == (0x77, 60, "")
    kv.Put(rpc_pb2.PutRequest(key=b"/l/a", value=b"v", lease=0x77), timeout=RPC_TIMEOUT_S)
    keepalive = leases.LeaseKeepAlive(
        iter([rpc_pb2.LeaseKeepAliveRequest(ID=0x77)]), timeout=RPC_TIMEOUT_S
    )
    renewed = next(keepalive)
    keepalive.cancel()
    assert (renewed.ID, renewed.TTL) == (0x77, 60)
    ttl = leases.LeaseTimeToLive(
        rpc_pb2.LeaseTimeToLiveRequest(ID=0x77, keys=True), timeout=RPC_TIMEOUT_S
    )
    assert (ttl.grantedTTL, list(ttl.keys)) == (60, [b"/l/a"])
    assert 0 < ttl.TTL <= 60
    listed = leases.LeaseLeases(rpc_pb2.LeaseLeasesRequest(), timeout=RPC_TIMEOUT_S)
    assert 0x77 in [status.ID for status in listed.leases]
    leases.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=0x77), timeout=RPC_TIMEOUT_S)
    assert kv.Range(rpc_pb2.RangeRequest(key=b"/l/a"), timeout=RPC_TIMEOUT_S).count == 0


def test_lock_and_election(channel: grpc.Channel) -> None:
    leases = rpc_pb2_grpc.LeaseStub(channel)
    lease = leases.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30), timeout=RPC_TIMEOUT_S).ID
    lock = v3lock_pb2_grpc.LockStub(channel)
    held = lock.Lock(v3lock_pb2.LockRequest(name=b"/lock/x", lease=lease), timeout=RPC_TIMEOUT_S)
    assert held.key.startswith(b"/lock/x/")
    lock.Unlock(v3lock_pb2.UnlockRequest(key=held.key), timeout=RPC_TIMEOUT_S)

    election = v3election_pb2_grpc.ElectionStub(channel)
    won = election.Campaign(
        v3election_pb2.CampaignRequest(name=b"/elect/x", lease=lease, value=b"me"),
        timeout=RPC_TIMEOUT_S,
    )
    assert won.leader.name == b"/elect/x" and won.leader.lease == lease
    leader = election.Leader(v3election_pb2.LeaderRequest(name=b"/elect/x"), timeout=RPC_TIMEOUT_S)
    assert leader.kv.value == b"me" and leader.kv.create_revision == won.leader.rev
    election.Resign(v3election_pb2.ResignRequest(leader=won.leader), timeout=RPC_TIMEOUT_S)
    leases.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=lease), timeout=RPC_TIMEOUT_S)


# Status codes and texts etcd 3.4 returns; kvorum's error table must reproduce them.
ERRORS: list[tuple[str, Callable[[rpc_pb2_grpc.KVStub], object], grpc.StatusCode, str]] = [
    (
        "future revision",
        lambda kv: kv.Range(rpc_pb2.RangeRequest(key=b"a", revision=1 << 40)),
        grpc.StatusCode.OUT_OF_RANGE,
        "etcdserver: mvcc: required revision is a future revision",
    ),
    (
        "empty key",
        lambda kv: kv.Put(rpc_pb2.PutRequest(key=b"", value=b"v")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "etcdserver: key is not provided",
    ),
    (
        "unknown lease",
        lambda kv: kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"v", lease=0xDEAD)),
        grpc.StatusCode.NOT_FOUND,
        "etcdserver: requested lease not found",
    ),
    (
        "too many txn ops",
        lambda kv: kv.Txn(
            rpc_pb2.TxnRequest(
                success=[
                    rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"k%d" % i))
                    for i in range(129)
                ]
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "etcdserver: too many operations in txn request",
    ),
    (
        "duplicate key in txn",
        lambda kv: kv.Txn(
            rpc_pb2.TxnRequest(
                success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"k"))] * 2
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "etcdserver: duplicate key given in txn request",
    ),
]


@pytest.mark.parametrize(("case", "call", "code", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_error_status(
    channel: grpc.Channel,
    case: str,
    call: Callable[[rpc_pb2_grpc.KVStub], object],
    code: grpc.StatusCode,
    message: str,
) -> None:
    kv = rpc_pb2_grpc.KVStub(channel)
    with pytest.raises(grpc.RpcError) as raised:
        call(kv)
    assert (raised.value.code(), raised.value.details()) == (code, message), case
