"""Printers on fixed responses; expected texts are etcdctl 3.4.23's for the same responses."""

from __future__ import annotations

import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.api.pb.mvccpb import kv_pb2
from kvorum.ctl.errors import CtlExit
from kvorum.ctl.printers import EpHashKV, EpHealth, EpStatus, make_printer

CLUSTER_ID = 15118495548433857066
MEMBER_ID = 13668033151171901709
HEADER = rpc_pb2.ResponseHeader(cluster_id=CLUSTER_ID, member_id=MEMBER_ID, revision=6, raft_term=2)
KV = kv_pb2.KeyValue(key=b"foo", create_revision=2, mod_revision=6, version=5, value=b"bar5")
RANGE = rpc_pb2.RangeResponse(header=HEADER, kvs=[KV], count=1)
MEMBERS = rpc_pb2.MemberListResponse(
    header=rpc_pb2.ResponseHeader(cluster_id=CLUSTER_ID, member_id=MEMBER_ID, raft_term=2),
    members=[
        rpc_pb2.Member(
            ID=MEMBER_ID,
            name="m0",
            peerURLs=["http://127.0.0.1:23801"],
            clientURLs=["http://127.0.0.1:23791"],
        )
    ],
)
STATUS = EpStatus(
    "127.0.0.1:23791",
    rpc_pb2.StatusResponse(
        header=rpc_pb2.ResponseHeader(
            cluster_id=CLUSTER_ID, member_id=MEMBER_ID, revision=7, raft_term=2
        ),
        version="3.4.23",
        dbSize=20480,
        leader=MEMBER_ID,
        raftIndex=19,
        raftTerm=2,
        raftAppliedIndex=19,
        dbSizeInUse=16384,
    ),
)


MEMBER_TABLE = """\
+------------------+---------+------+------------------------+------------------------+------------+
|        ID        | STATUS  | NAME |       PEER ADDRS       |      CLIENT ADDRS      | IS LEARNER |
+------------------+---------+------+------------------------+------------------------+------------+
| bdae9bbc11dd390d | started |   m0 | http://127.0.0.1:23801 | http://127.0.0.1:23791 |      false |
+------------------+---------+------+------------------------+------------------------+------------+
"""


def _out(fmt: str, method: str, *args: object, hex_output: bool = False) -> str:
    return getattr(make_printer(fmt, hex_output), method)(*args).out.decode()


def test_get_simple_json_fields_hex() -> None:
    assert _out("simple", "get", RANGE) == "foo\nbar5\n"
    hexed = "\\x66\\x6f\\x6f\n\\x62\\x61\\x72\\x35\n"
    assert _out("simple", "get", RANGE, hex_output=True) == hexed
    assert _out("json", "get", RANGE) == (
        '{"header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,'
        '"revision":6,"raft_term":2},"kvs":[{"key":"Zm9v","create_revision":2,'
        '"mod_revision":6,"version":5,"value":"YmFyNQ=="}],"count":1}\n'
    )
    assert _out("fields", "get", RANGE) == (
        '"ClusterID" : 15118495548433857066\n"MemberID" : 13668033151171901709\n'
        '"Revision" : 6\n"RaftTerm" : 2\n"Key" : "foo"\n"CreateRevision" : 2\n'
        '"ModRevision" : 6\n"Version" : 5\n"Value" : "bar5"\n"Lease" : 0\n'
        '"More" : false\n"Count" : 1\n'
    )
    assert make_printer("simple", False, value_only=True).get(RANGE).out == b"bar5\n"


def test_put_with_prev_kv() -> None:
    resp = rpc_pb2.PutResponse(header=HEADER, prev_kv=KV)
    assert _out("simple", "put", resp) == "OK\nfoo\nbar5\n"
    assert _out("json", "put", rpc_pb2.PutResponse(header=HEADER)) == (
        '{"header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,'
        '"revision":6,"raft_term":2}}\n'
    )


def test_txn_json_wraps_oneof_as_gogo_does() -> None:
    resp = rpc_pb2.TxnResponse(
        header=HEADER,
        succeeded=True,
        responses=[
            rpc_pb2.ResponseOp(
                response_put=rpc_pb2.PutResponse(header=rpc_pb2.ResponseHeader(revision=9))
            ),
            rpc_pb2.ResponseOp(
                response_delete_range=rpc_pb2.DeleteRangeResponse(
                    header=rpc_pb2.ResponseHeader(revision=9)
                )
            ),
        ],
    )
    assert _out("json", "txn", resp).endswith(
        '"succeeded":true,"responses":[{"Response":{"ResponsePut":{"header":{"revision":9}}}},'
        '{"Response":{"ResponseDeleteRange":{"header":{"revision":9}}}}]}\n'
    )
    assert _out("simple", "txn", resp) == "SUCCESS\n\nOK\n\n0\n"


def test_member_list_every_format() -> None:
    assert _out("simple", "member_list", MEMBERS) == (
        "bdae9bbc11dd390d, started, m0, http://127.0.0.1:23801, http://127.0.0.1:23791, false\n"
    )
    assert _out("json", "member_list", MEMBERS) == (
        '{"header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,'
        '"raft_term":2},"members":[{"ID":13668033151171901709,"name":"m0",'
        '"peerURLs":["http://127.0.0.1:23801"],"clientURLs":["http://127.0.0.1:23791"]}]}\n'
    )
    assert _out("table", "member_list", MEMBERS) == MEMBER_TABLE


def test_endpoint_status_simple_json_fields() -> None:
    assert _out("simple", "endpoint_status", [STATUS]) == (
        "127.0.0.1:23791, bdae9bbc11dd390d, 3.4.23, 20 kB, true, false, 2, 19, 19, \n"
    )
    assert _out("json", "endpoint_status", [STATUS]) == (
        '[{"Endpoint":"127.0.0.1:23791","Status":{"header":{"cluster_id":15118495548433857066,'
        '"member_id":13668033151171901709,"revision":7,"raft_term":2},"version":"3.4.23",'
        '"dbSize":20480,"leader":13668033151171901709,"raftIndex":19,"raftTerm":2,'
        '"raftAppliedIndex":19,"dbSizeInUse":16384}}]\n'
    )
    assert '"Errors" : []\n"Endpoint" : "127.0.0.1:23791"\n\n' in _out(
        "fields", "endpoint_status", [STATUS]
    )
    assert _out("json", "endpoint_status", []) == "null\n"


def test_endpoint_health_simple_goes_to_stderr() -> None:
    healthy = EpHealth("127.0.0.1:23791", True, "2.367503ms", "")
    rendered = make_printer("simple", False).endpoint_health([healthy])
    assert rendered.out == b""
    assert rendered.err == (
        b"127.0.0.1:23791 is healthy: successfully committed proposal: took = 2.367503ms\n"
    )
    assert _out("json", "endpoint_health", [healthy]) == (
        '[{"endpoint":"127.0.0.1:23791","health":true,"took":"2.367503ms"}]\n'
    )


def test_hashkv_table() -> None:
    resp = rpc_pb2.HashKVResponse(header=HEADER, hash=3601118329, compact_revision=3)
    assert _out("table", "endpoint_hashkv", [EpHashKV("127.0.0.1:23791", resp)]) == (
        "+-----------------+------------+\n"
        "|    ENDPOINT     |    HASH    |\n"
        "+-----------------+------------+\n"
        "| 127.0.0.1:23791 | 3601118329 |\n"
        "+-----------------+------------+\n"
    )


@pytest.mark.parametrize(
    ("fmt", "method", "message"),
    [
        ("table", "get", "table not supported as output format"),
        ("protobuf", "endpoint_status", "protobuf not supported as output format"),
    ],
)
def test_unsupported_combinations_exit_4(fmt: str, method: str, message: str) -> None:
    with pytest.raises(CtlExit) as info:
        getattr(make_printer(fmt, False), method)(RANGE if method == "get" else [STATUS])
    assert (info.value.code, info.value.message) == (4, message)


def test_unknown_format() -> None:
    with pytest.raises(CtlExit) as info:
        make_printer("yaml", False)
    assert (info.value.code, info.value.message) == (4, "unsupported output format")


def test_protobuf_is_the_wire_encoding() -> None:
    assert make_printer("protobuf", False).get(RANGE).out == RANGE.SerializeToString()


def test_lease_and_member_simple_lines() -> None:
    ttl = rpc_pb2.LeaseTimeToLiveResponse(ID=0x1234, TTL=5, grantedTTL=10, keys=[b"a", b"b"])
    assert _out("simple", "lease_timetolive", ttl, True) == (
        "lease 0000000000001234 granted with TTL(10s), remaining(5s), attached keys([a b])\n"
    )
    added = rpc_pb2.MemberAddResponse(
        header=rpc_pb2.ResponseHeader(cluster_id=0xABC), member=rpc_pb2.Member(ID=0x1F)
    )
    assert _out("simple", "member_add", added) == (
        "Member               1f added to cluster              abc\n"
    )


def _watch_delete() -> rpc_pb2.WatchResponse:
    prev = kv_pb2.KeyValue(key=b"wk", create_revision=36, mod_revision=36, version=1, value=b"v1")
    event = kv_pb2.Event(
        type=kv_pb2.Event.DELETE, kv=kv_pb2.KeyValue(key=b"wk", mod_revision=37), prev_kv=prev
    )
    header = rpc_pb2.ResponseHeader(
        cluster_id=CLUSTER_ID, member_id=MEMBER_ID, revision=37, raft_term=2
    )
    return rpc_pb2.WatchResponse(header=header, events=[event])


def test_watch_event_every_text_format() -> None:
    resp = _watch_delete()
    assert _out("simple", "watch", resp) == "DELETE\nwk\nv1\nwk\n\n"
    assert _out("json", "watch", resp) == (
        '{"Header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,'
        '"revision":37,"raft_term":2},"Events":[{"type":1,"kv":{"key":"d2s=","mod_revision":37},'
        '"prev_kv":{"key":"d2s=","create_revision":36,"mod_revision":36,"version":1,'
        '"value":"djE="}}],"CompactRevision":0,"Canceled":false,"Created":false}\n'
    )
    fields = _out("fields", "watch", resp)
    assert fields.startswith('"ClusterID" : 15118495548433857066\n')
    assert '"Revision" : 37\n"RaftTerm" : 2\n"Type" : DELETE\n"PrevKey" : "wk"\n' in fields
    assert fields.endswith('"Key" : "wk"\n"CreateRevision" : 0\n"ModRevision" : 37\n'
                           '"Version" : 0\n"Value" : ""\n"Lease" : 0\n')  # fmt: skip
    assert make_printer("protobuf", False).watch(resp).out == resp.SerializeToString()
