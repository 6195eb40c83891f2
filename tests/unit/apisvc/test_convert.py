"""protobuf <-> mvcc conversion: every field carried, headers as etcd fills them."""

from __future__ import annotations

from kvorum.api import convert
from kvorum.api.member import AlarmMember, AlarmType, Header, MemberInfo, Status
from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.api.pb.mvccpb import kv_pb2
from kvorum.apply import payload
from kvorum.mvcc import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    KeyValue,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
)

HDR = Header(cluster_id=2**64 - 3, member_id=2**63 + 5, revision=40, raft_term=7)
KV = KeyValue(b"k", 3, 9, 2, b"v", 0x1234)


def test_range_request_every_field() -> None:
    pb = rpc_pb2.RangeRequest(
        key=b"a",
        range_end=b"z",
        limit=5,
        revision=7,
        sort_order=rpc_pb2.RangeRequest.DESCEND,
        sort_target=rpc_pb2.RangeRequest.MOD,
        serializable=True,
        keys_only=True,
        count_only=True,
        min_mod_revision=1,
        max_mod_revision=2,
        min_create_revision=3,
        max_create_revision=4,
    )
    assert payload.range_from_pb(pb) == RangeRequest(
        b"a", b"z", 5, 7, SortOrder.DESCEND, SortTarget.MOD, True, True, 1, 2, 3, 4
    )
    assert payload.range_from_pb(rpc_pb2.RangeRequest(key=b"k")) == RangeRequest(b"k")


def test_put_and_delete_requests() -> None:
    pb = rpc_pb2.PutRequest(
        key=b"k", value=b"v", lease=9, prev_kv=True, ignore_value=True, ignore_lease=True
    )
    assert payload.put_from_pb(pb) == PutRequest(b"k", b"v", 9, True, True, True)
    assert payload.delete_range_from_pb(
        rpc_pb2.DeleteRangeRequest(key=b"a", range_end=b"\0", prev_kv=True)
    ) == DeleteRangeRequest(b"a", b"\0", True)


def test_compare_targets() -> None:
    cases = [
        (rpc_pb2.Compare(key=b"k", target=rpc_pb2.Compare.VERSION, version=3), "version", 3),
        (
            rpc_pb2.Compare(key=b"k", target=rpc_pb2.Compare.CREATE, create_revision=4),
            "create_revision",
            4,
        ),
        (rpc_pb2.Compare(key=b"k", target=rpc_pb2.Compare.MOD, mod_revision=5), "mod_revision", 5),
        (rpc_pb2.Compare(key=b"k", target=rpc_pb2.Compare.VALUE, value=b"x"), "value", b"x"),
        (rpc_pb2.Compare(key=b"k", target=rpc_pb2.Compare.LEASE, lease=6), "lease", 6),
    ]
    for pb, field, value in cases:
        pb.result = rpc_pb2.Compare.GREATER
        pb.range_end = b"z"
        got = payload.compare_from_pb(pb)
        assert got.target == CompareTarget(pb.target)
        assert got.result == CompareResult.GREATER
        assert got.range_end == b"z"
        assert getattr(got, field) == value


def test_nested_txn_request() -> None:
    inner = rpc_pb2.TxnRequest(
        success=[rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"d"))]
    )
    pb = rpc_pb2.TxnRequest(
        compare=[rpc_pb2.Compare(key=b"c", result=rpc_pb2.Compare.NOT_EQUAL)],
        success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"p", value=b"1")),
            rpc_pb2.RequestOp(request_txn=inner),
        ],
        failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"r"))],
    )
    assert payload.txn_from_pb(pb) == TxnRequest(
        (Compare(b"c", CompareTarget.VERSION, CompareResult.NOT_EQUAL),),
        (PutRequest(b"p", b"1"), TxnRequest(success=(DeleteRangeRequest(b"d"),))),
        (RangeRequest(b"r"),),
    )


def test_header_takes_the_response_revision_else_the_current_one() -> None:
    assert convert.header(HDR, 12) == rpc_pb2.ResponseHeader(
        cluster_id=2**64 - 3, member_id=2**63 + 5, revision=12, raft_term=7
    )
    assert convert.header(HDR).revision == 40
    cluster = convert.cluster_header(HDR)
    assert cluster.revision == 0
    assert (cluster.cluster_id, cluster.member_id, cluster.raft_term) == (2**64 - 3, 2**63 + 5, 7)


def test_range_response() -> None:
    resp = RangeResponse(revision=9, kvs=(KV, KeyValue(b"l", 1, 1, 1)), count=5, more=True)
    pb = convert.range_response(resp, convert.header(HDR, resp.revision))
    assert pb.header.revision == 9
    assert list(pb.kvs) == [
        kv_pb2.KeyValue(
            key=b"k", create_revision=3, mod_revision=9, version=2, value=b"v", lease=0x1234
        ),
        kv_pb2.KeyValue(key=b"l", create_revision=1, mod_revision=1, version=1),
    ]
    assert (pb.count, pb.more) == (5, True)


def test_put_response_prev_kv_only_when_asked() -> None:
    assert not convert.put_response(PutResponse(4), convert.header(HDR, 4)).HasField("prev_kv")
    pb = convert.put_response(PutResponse(4, KV), convert.header(HDR, 4))
    assert pb.prev_kv.key == b"k"
    assert pb.prev_kv.lease == 0x1234


def test_delete_response() -> None:
    pb = convert.delete_range_response(DeleteRangeResponse(6, 2, (KV,)), convert.header(HDR, 6))
    assert (pb.header.revision, pb.deleted, [k.key for k in pb.prev_kvs]) == (6, 2, [b"k"])


def test_txn_response_nested_headers_as_etcd_builds_them() -> None:
    """Ops' responses carry a header with only their revision; a nested txn's is empty."""
    resp = TxnResponse(
        revision=11,
        succeeded=True,
        responses=(
            RangeResponse(10, (KV,), 1),
            PutResponse(11),
            DeleteRangeResponse(11, 1),
            TxnResponse(0, False, (PutResponse(11),)),
        ),
    )
    pb = convert.txn_response(resp, convert.header(HDR, resp.revision))
    assert pb.header == convert.header(HDR, 11)
    assert pb.succeeded
    rng, put, dele, txn = pb.responses
    assert rng.response_range.header == rpc_pb2.ResponseHeader(revision=10)
    assert rng.response_range.kvs[0].key == b"k"
    assert put.response_put.header == rpc_pb2.ResponseHeader(revision=11)
    assert dele.response_delete_range.header == rpc_pb2.ResponseHeader(revision=11)
    assert dele.response_delete_range.deleted == 1
    assert txn.response_txn.HasField("header")
    assert txn.response_txn.header == rpc_pb2.ResponseHeader()
    assert not txn.response_txn.succeeded
    assert txn.response_txn.responses[0].response_put.header.revision == 11


def test_members_status_alarms() -> None:
    m = MemberInfo(2**64 - 1, "n", ("http://p:1", "http://p:2"), ("http://c:1",), True)
    assert convert.member(m) == rpc_pb2.Member(
        ID=2**64 - 1,
        name="n",
        peerURLs=["http://p:1", "http://p:2"],
        clientURLs=["http://c:1"],
        isLearner=True,
    )
    st = Status("3.4.23", 100, 50, 7, 20, 3, 19, ("e",), True)
    pb = convert.status_response(st, convert.header(HDR))
    assert (pb.version, pb.dbSize, pb.dbSizeInUse, pb.leader) == ("3.4.23", 100, 50, 7)
    assert (pb.raftIndex, pb.raftTerm, pb.raftAppliedIndex) == (20, 3, 19)
    assert (list(pb.errors), pb.isLearner) == (["e"], True)
    alarms = convert.alarm_members((AlarmMember(5, AlarmType.NOSPACE),))
    assert alarms == [rpc_pb2.AlarmMember(memberID=5, alarm=rpc_pb2.NOSPACE)]
