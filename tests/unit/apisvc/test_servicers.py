"""The KV, Cluster and Maintenance servicers over gRPC, against the standalone member.

A real `grpc.aio` server (in its own thread) and a real gRPC client: what goes over the wire
is what a client sees -- status codes, etcd's texts, headers and payloads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from kvorum.api.errors import NoSpaceError
from kvorum.api.grpcserver import GrpcOptions
from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.backend import Backend
from tests.unit.apisvc.standalone import TERM, StandaloneServer

RPC_TIMEOUT_S = 10.0


class Client:
    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(
            target, options=[("grpc.max_send_message_length", 8 * 1024 * 1024)]
        )
        self.kv: Any = rpc_pb2_grpc.KVStub(self.channel)  # type: ignore[no-untyped-call]
        self.cluster: Any = rpc_pb2_grpc.ClusterStub(self.channel)  # type: ignore[no-untyped-call]
        self.maint: Any = rpc_pb2_grpc.MaintenanceStub(self.channel)  # type: ignore[no-untyped-call]

    def put(self, key: bytes, value: bytes = b"v", **kw: Any) -> Any:
        return self.kv.Put(rpc_pb2.PutRequest(key=key, value=value, **kw), timeout=RPC_TIMEOUT_S)

    def range(self, key: bytes, **kw: Any) -> Any:
        return self.kv.Range(rpc_pb2.RangeRequest(key=key, **kw), timeout=RPC_TIMEOUT_S)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StandaloneServer]:
    with StandaloneServer(tmp_path / "member", GrpcOptions(max_txn_ops=16)) as srv:
        yield srv


@pytest.fixture
def client(server: StandaloneServer) -> Iterator[Client]:
    c = Client(f"127.0.0.1:{server.port}")
    yield c
    c.channel.close()


def fails(call: Any, code: grpc.StatusCode, text: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        call()
    err: Any = info.value
    assert (err.code(), err.details()) == (code, text)


def test_headers_name_cluster_member_term_and_revision(
    server: StandaloneServer, client: Client
) -> None:
    assert server.member is not None
    put = client.put(b"a")
    assert put.header.revision == 2  # a fresh store is at revision 1
    assert put.header.cluster_id == server.member.cluster_id
    assert put.header.member_id == server.member.member_id
    assert put.header.raft_term == TERM
    got = client.range(b"a")
    assert got.header.revision == 2
    assert got.kvs[0].key == b"a"
    assert (got.kvs[0].create_revision, got.kvs[0].mod_revision, got.kvs[0].version) == (2, 2, 1)
    # A delete that deletes nothing does not move the revision; its header shows the current.
    gone = client.kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"zz"), timeout=RPC_TIMEOUT_S)
    assert (gone.deleted, gone.header.revision) == (0, 2)
    members = client.cluster.MemberList(rpc_pb2.MemberListRequest(), timeout=RPC_TIMEOUT_S)
    assert members.header.revision == 0  # etcd's Cluster headers carry no revision
    assert members.header.member_id == server.member.member_id


def test_range_flags_through_the_wire(client: Client) -> None:
    for i, key in enumerate([b"k3", b"k1", b"k2"]):
        client.put(key, b"%d" % i)
    got = client.range(
        b"k",
        range_end=b"l",
        sort_order=rpc_pb2.RangeRequest.DESCEND,
        sort_target=rpc_pb2.RangeRequest.KEY,
        limit=2,
        serializable=True,
    )
    assert [kv.key for kv in got.kvs] == [b"k3", b"k2"]
    assert (got.count, got.more) == (3, True)
    only = client.range(b"k", range_end=b"l", count_only=True)
    assert (len(only.kvs), only.count) == (0, 3)
    keys = client.range(b"k1", keys_only=True)
    assert keys.kvs[0].value == b""
    old = client.range(b"k3", revision=2)
    assert old.kvs[0].value == b"0"
    assert old.header.revision == 4  # the header is the store's revision, not the asked one


def test_put_prev_kv_and_ignore_value(client: Client) -> None:
    client.put(b"k", b"one", lease=0)
    second = client.put(b"k", b"two", prev_kv=True)
    assert second.prev_kv.value == b"one"
    kept = client.put(b"k", b"", ignore_value=True, prev_kv=True)
    assert kept.prev_kv.value == b"two"
    assert client.range(b"k").kvs[0].value == b"two"
    fails(
        lambda: client.put(b"missing", b"", ignore_value=True),
        grpc.StatusCode.INVALID_ARGUMENT,
        "etcdserver: key not found",
    )


def test_request_errors_have_etcds_codes(client: Client) -> None:
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    fails(lambda: client.put(b""), invalid, "etcdserver: key is not provided")
    fails(lambda: client.range(b""), invalid, "etcdserver: key is not provided")
    fails(
        lambda: client.put(b"k", b"v", ignore_value=True), invalid, "etcdserver: value is provided"
    )
    too_many = rpc_pb2.TxnRequest(
        success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"k%d" % i)) for i in range(17)
        ]
    )
    fails(
        lambda: client.kv.Txn(too_many, timeout=RPC_TIMEOUT_S),
        invalid,
        "etcdserver: too many operations in txn request",
    )
    dup = rpc_pb2.TxnRequest(
        success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"k"))] * 2
    )
    fails(
        lambda: client.kv.Txn(dup, timeout=RPC_TIMEOUT_S),
        invalid,
        "etcdserver: duplicate key given in txn request",
    )
    fails(lambda: client.put(b"big", b"x" * 1_600_000), invalid, "etcdserver: request is too large")
    # Beyond max-request-bytes + 512 KiB, gRPC itself refuses the message, as under etcd.
    with pytest.raises(grpc.RpcError) as info:
        client.put(b"huge", b"x" * (2 * 1024 * 1024 + 1))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Nothing of it reached the store.
    assert client.range(b"k", range_end=b"\0").count == 0


def test_compaction_and_revision_errors(client: Client) -> None:
    for i in range(4):
        client.put(b"k", b"%d" % i)  # revisions 2..5
    resp = client.kv.Compact(rpc_pb2.CompactionRequest(revision=4), timeout=RPC_TIMEOUT_S)
    assert resp.header.revision == 5
    out = grpc.StatusCode.OUT_OF_RANGE
    compacted = "etcdserver: mvcc: required revision has been compacted"
    fails(lambda: client.range(b"k", revision=3), out, compacted)
    fails(
        lambda: client.range(b"k", revision=6),
        out,
        "etcdserver: mvcc: required revision is a future revision",
    )
    fails(
        lambda: client.kv.Compact(rpc_pb2.CompactionRequest(revision=4), timeout=RPC_TIMEOUT_S),
        out,
        compacted,
    )
    assert client.range(b"k", revision=4).kvs[0].value == b"2"


def test_txn_nested_headers_over_the_wire(client: Client) -> None:
    client.put(b"a", b"1")
    req = rpc_pb2.TxnRequest(
        compare=[
            rpc_pb2.Compare(
                key=b"a", target=rpc_pb2.Compare.VALUE, result=rpc_pb2.Compare.EQUAL, value=b"1"
            )
        ],
        success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"b", value=b"2")),
            rpc_pb2.RequestOp(
                request_txn=rpc_pb2.TxnRequest(
                    success=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"b"))]
                )
            ),
        ],
    )
    resp = client.kv.Txn(req, timeout=RPC_TIMEOUT_S)
    assert resp.succeeded
    assert resp.header.revision == 3
    assert resp.header.raft_term == TERM
    put, nested = resp.responses
    assert put.response_put.header == rpc_pb2.ResponseHeader(revision=3)
    assert nested.response_txn.header == rpc_pb2.ResponseHeader()
    inner = nested.response_txn.responses[0].response_range
    assert inner.header == rpc_pb2.ResponseHeader(revision=3)
    assert inner.kvs[0].value == b"2"


def test_nospace_alarm_refuses_writes(server: StandaloneServer, client: Client) -> None:
    assert server.member is not None
    mid = server.member.member_id
    act = client.maint.Alarm(
        rpc_pb2.AlarmRequest(
            action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=mid, alarm=rpc_pb2.NOSPACE
        ),
        timeout=RPC_TIMEOUT_S,
    )
    assert [(a.memberID, a.alarm) for a in act.alarms] == [(mid, rpc_pb2.NOSPACE)]
    assert not act.HasField("header")  # etcd's Alarm reply has none
    fails(lambda: client.put(b"k"), grpc.StatusCode.RESOURCE_EXHAUSTED, NoSpaceError.text)
    status = client.maint.Status(rpc_pb2.StatusRequest(), timeout=RPC_TIMEOUT_S)
    assert list(status.errors) == [f"memberID:{mid} alarm:NOSPACE"]
    client.maint.Alarm(
        rpc_pb2.AlarmRequest(
            action=rpc_pb2.AlarmRequest.DEACTIVATE, memberID=mid, alarm=rpc_pb2.NOSPACE
        ),
        timeout=RPC_TIMEOUT_S,
    )
    assert client.put(b"k").header.revision == 2


def test_membership_and_leadership_errors(server: StandaloneServer, client: Client) -> None:
    assert server.member is not None
    fails(
        lambda: client.cluster.MemberRemove(
            rpc_pb2.MemberRemoveRequest(ID=1234), timeout=RPC_TIMEOUT_S
        ),
        grpc.StatusCode.NOT_FOUND,
        "etcdserver: member not found",
    )
    added = client.cluster.MemberAdd(
        rpc_pb2.MemberAddRequest(peerURLs=["http://127.0.0.1:1"], isLearner=True),
        timeout=RPC_TIMEOUT_S,
    )
    assert added.member.isLearner
    assert added.member.name == ""
    assert len(added.members) == 2
    fails(
        lambda: client.cluster.MemberAdd(
            rpc_pb2.MemberAddRequest(peerURLs=["http://127.0.0.1:1"]), timeout=RPC_TIMEOUT_S
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "etcdserver: Peer URLs already exists",
    )
    fails(
        lambda: client.maint.MoveLeader(
            rpc_pb2.MoveLeaderRequest(targetID=99), timeout=RPC_TIMEOUT_S
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "etcdserver: bad leader transferee",
    )


def test_unexpected_exception_is_unknown_with_its_text(
    server: StandaloneServer, client: Client
) -> None:
    assert server.member is not None

    async def broken() -> int:
        raise RuntimeError("checksum engine exploded")

    server.member.hash = broken  # type: ignore[method-assign]
    fails(
        lambda: client.maint.Hash(rpc_pb2.HashRequest(), timeout=RPC_TIMEOUT_S),
        grpc.StatusCode.UNKNOWN,
        "checksum engine exploded",
    )


def test_hashes_status_defrag(server: StandaloneServer, client: Client) -> None:
    client.put(b"a")
    h1 = client.maint.HashKV(rpc_pb2.HashKVRequest(), timeout=RPC_TIMEOUT_S)
    assert h1.header.revision == 2
    assert h1.compact_revision == -1
    client.put(b"b")
    at2 = client.maint.HashKV(rpc_pb2.HashKVRequest(revision=2), timeout=RPC_TIMEOUT_S)
    assert at2.hash == h1.hash  # the history up to 2 did not change
    assert at2.header.revision == 3  # etcd's header: the current revision, not the hashed one
    assert at2.hash_revision == 2
    whole = client.maint.Hash(rpc_pb2.HashRequest(), timeout=RPC_TIMEOUT_S)
    assert whole.header.revision == 3
    defrag = client.maint.Defragment(rpc_pb2.DefragmentRequest(), timeout=RPC_TIMEOUT_S)
    assert not defrag.HasField("header")
    assert client.maint.Hash(rpc_pb2.HashRequest(), timeout=RPC_TIMEOUT_S).hash == whole.hash
    status = client.maint.Status(rpc_pb2.StatusRequest(), timeout=RPC_TIMEOUT_S)
    assert status.version == "3.4.23"
    assert status.leader == status.header.member_id
    assert status.header.revision == 3
    assert 0 < status.dbSizeInUse <= status.dbSize


def test_snapshot_stream_is_the_database_and_its_sha256(tmp_path: Path, client: Client) -> None:
    for i in range(200):
        client.put(b"key%03d" % i, b"x" * 1000)
    chunks = list(client.maint.Snapshot(rpc_pb2.SnapshotRequest(), timeout=RPC_TIMEOUT_S))
    blobs = [c.blob for c in chunks]
    data, digest = b"".join(blobs[:-1]), blobs[-1]
    assert hashlib.sha256(data).digest() == digest
    assert len(chunks) > 3
    assert all(len(b) <= 32 * 1024 for b in blobs)
    remaining = [c.remaining_bytes for c in chunks[:-1]]
    assert remaining == sorted(remaining, reverse=True)
    assert remaining[-1] == 0
    assert remaining[0] == len(data) - len(blobs[0])
    path = tmp_path / "copy.db"
    path.write_bytes(data)
    backend = Backend(str(path))
    try:
        from kvorum.mvcc import MvccStore, RangeRequest

        store = MvccStore(backend)
        assert store.current_revision == 201
        assert store.range(RangeRequest(b"key", b"kez")).count == 200
    finally:
        backend.close()
