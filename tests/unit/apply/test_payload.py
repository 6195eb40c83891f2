"""The proposal payload: every request survives encode -> decode, and garbage is refused.

Every member decodes the very bytes the proposer encoded, so what matters is that decoding is a
function of the bytes alone and that malformed bytes fail loudly and alike.
"""

from __future__ import annotations

import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.apply import (
    AlarmRequest,
    ClusterVersionSetRequest,
    CompactRequest,
    LeaseGrantRequest,
    LeaseRevokeRequest,
    MemberAttrSetRequest,
    Op,
    PayloadError,
    Request,
    decode_payload,
    encode_payload,
    encode_pb,
)
from kvorum.apply.payload import MAX_TXN_DEPTH
from kvorum.membership import AlarmAction, AlarmType
from kvorum.mvcc import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    SortOrder,
    SortTarget,
    TxnRequest,
)

NESTED_TXN = TxnRequest(
    compare=(
        Compare(b"k", CompareTarget.VALUE, CompareResult.EQUAL, value=b""),
        Compare(b"a", CompareTarget.MOD, CompareResult.GREATER, range_end=b"b", mod_revision=7),
        Compare(b"l", CompareTarget.LEASE, CompareResult.NOT_EQUAL, lease=5),
        Compare(b"v", CompareTarget.VERSION, CompareResult.LESS, version=3),
        Compare(b"c", CompareTarget.CREATE, CompareResult.EQUAL, create_revision=2),
    ),
    success=(
        PutRequest(b"k", b"v", lease=9, prev_kv=True),
        RangeRequest(
            b"a",
            b"z",
            limit=3,
            revision=2,
            sort_order=SortOrder.DESCEND,
            sort_target=SortTarget.MOD,
            keys_only=True,
            min_mod_revision=1,
            max_create_revision=8,
        ),
        TxnRequest(success=(DeleteRangeRequest(b"x", b"y", prev_kv=True),)),
    ),
    failure=(PutRequest(b"k", ignore_value=True, ignore_lease=True),),
)

REQUESTS: list[Request] = [
    PutRequest(b"key", b"value"),
    PutRequest(b"\x00\xff", b"", lease=1 << 62, prev_kv=True),
    DeleteRangeRequest(b"a", b"\x00", prev_kv=True),
    TxnRequest(),
    NESTED_TXN,
    CompactRequest(12, physical=True),
    CompactRequest(3),
    LeaseGrantRequest(0x1234, 60),
    LeaseRevokeRequest(0x1234),
    AlarmRequest(AlarmAction.ACTIVATE, 0xABC, AlarmType.NOSPACE),
    AlarmRequest(AlarmAction.GET, 0, AlarmType.NONE),
    MemberAttrSetRequest(0xABC, "infra1", ("http://127.0.0.1:2379", "http://10.0.0.1:2379")),
    ClusterVersionSetRequest("3.4.0"),
]


@pytest.mark.parametrize("req", REQUESTS, ids=lambda r: type(r).__name__)
def test_every_request_round_trips(req: Request) -> None:
    data = encode_payload(req)
    assert decode_payload(data) == req
    # Decoding depends on the bytes alone: a second decode of a copy gives the same request.
    assert decode_payload(bytes(bytearray(data))) == req


def test_encoding_from_protobuf_equals_encoding_from_dataclasses() -> None:
    pb = rpc_pb2.PutRequest(key=b"k", value=b"v", lease=7, prev_kv=True)
    assert encode_pb(pb) == encode_payload(PutRequest(b"k", b"v", lease=7, prev_kv=True))
    cpb = rpc_pb2.CompactionRequest(revision=5, physical=True)
    assert decode_payload(encode_pb(cpb)) == CompactRequest(5, True)
    assert encode_pb(rpc_pb2.LeaseRevokeRequest(ID=3))[0] == Op.LEASE_REVOKE
    with pytest.raises(TypeError):
        encode_pb(rpc_pb2.RangeRequest(key=b"k"))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (bytes([0]) + b"\x0a\x01k", "unknown op tag 0"),
        (bytes([200]), "unknown op tag 200"),
        (bytes([Op.LEASE_GRANT + 5]), "reserved tag"),
        (bytes([Op.PUT]) + b"\xff\xff\xff", "corrupt protobuf"),
        # field 99 (varint) is not a PutRequest field
        (bytes([Op.PUT]) + b"\x98\x06\x01", "unknown field"),
        # sort_order (field 5) = 9 is no SortOrder
        (
            bytes([Op.TXN]) + rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp()]).SerializeToString(),
            "empty op",
        ),
        (bytes([Op.CLUSTER_VERSION_SET]) + b"\xff\xfe", "not utf-8"),
        (bytes([Op.ALARM]) + b"\x08\x07", "alarm action 7"),
    ],
)
def test_garbage_is_refused_with_payload_error(data: bytes, why: str) -> None:
    with pytest.raises(PayloadError):
        decode_payload(data)


def test_unknown_enum_value_in_a_range_is_refused() -> None:
    rng = rpc_pb2.RangeRequest(key=b"k", sort_order="DESCEND")
    raw = rng.SerializeToString().replace(b"\x28\x02", b"\x28\x09")
    op = rpc_pb2.RequestOp()
    op.request_range.ParseFromString(raw)
    txn = rpc_pb2.TxnRequest(success=[op])
    with pytest.raises(PayloadError):
        decode_payload(bytes([Op.TXN]) + txn.SerializeToString())


def test_txn_nesting_is_bounded() -> None:
    txn = TxnRequest()
    for _ in range(MAX_TXN_DEPTH + 2):
        txn = TxnRequest(success=(txn,))
    with pytest.raises(PayloadError):
        decode_payload(encode_payload(txn))
