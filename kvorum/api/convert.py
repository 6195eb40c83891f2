"""kvorum's results as protobuf responses, on every request's path, so kept lean.

Messages are built with keyword arguments in one constructor call (upb does the field work in
C). Requests go the other way through the raft payload's own decoders (`put_from_pb` and its
siblings in `kvorum.apply.payload`), after `validate`.

Response headers follow etcd's `header.fill`: the top-level header gets the member's cluster id,
member id and raft term, and the response's own revision (the store's current one if the
response has none). Responses nested in a txn carry a header with only their revision, and a
nested txn's response an empty header -- what etcd's applier builds, visible in `-w json`.
"""

from __future__ import annotations

from typing import Any

from kvorum.api.member import AlarmMember, Header, MemberInfo, Status
from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.api.pb.mvccpb import kv_pb2
from kvorum.mvcc import (
    DeleteRangeResponse,
    KeyValue,
    PutResponse,
    RangeResponse,
    ResponseOp,
    TxnResponse,
)

__all__ = [
    "alarm_members",
    "cluster_header",
    "delete_range_response",
    "header",
    "kv",
    "member",
    "members",
    "put_response",
    "range_response",
    "status_response",
    "txn_response",
]

_KeyValuePb = kv_pb2.KeyValue
_ResponseHeaderPb = rpc_pb2.ResponseHeader


# --- responses -------------------------------------------------------------------------------


def header(h: Header, revision: int = 0) -> rpc_pb2.ResponseHeader:
    """The top-level header: the member's identity, and `revision` unless it is 0."""
    return _ResponseHeaderPb(
        cluster_id=h.cluster_id,
        member_id=h.member_id,
        revision=revision or h.revision,
        raft_term=h.raft_term,
    )


def cluster_header(h: Header) -> rpc_pb2.ResponseHeader:
    """The header of Cluster responses: etcd leaves their revision at 0."""
    return _ResponseHeaderPb(cluster_id=h.cluster_id, member_id=h.member_id, raft_term=h.raft_term)


def kv(k: KeyValue) -> kv_pb2.KeyValue:
    return _KeyValuePb(
        key=k.key,
        create_revision=k.create_revision,
        mod_revision=k.mod_revision,
        version=k.version,
        value=k.value,
        lease=k.lease,
    )


def _add_kvs(field: Any, kvs: tuple[KeyValue, ...]) -> None:
    # `add(**fields)` builds each entry in place; constructing messages and passing a list
    # copies every one of them again (twice the time for a 100-key range).
    add = field.add
    for k in kvs:
        add(
            key=k.key,
            create_revision=k.create_revision,
            mod_revision=k.mod_revision,
            version=k.version,
            value=k.value,
            lease=k.lease,
        )


def range_response(r: RangeResponse, hdr: rpc_pb2.ResponseHeader) -> rpc_pb2.RangeResponse:
    resp = rpc_pb2.RangeResponse(header=hdr, more=r.more, count=r.count)
    _add_kvs(resp.kvs, r.kvs)
    return resp


def put_response(r: PutResponse, hdr: rpc_pb2.ResponseHeader) -> rpc_pb2.PutResponse:
    if r.prev_kv is None:
        return rpc_pb2.PutResponse(header=hdr)
    return rpc_pb2.PutResponse(header=hdr, prev_kv=kv(r.prev_kv))


def delete_range_response(
    r: DeleteRangeResponse, hdr: rpc_pb2.ResponseHeader
) -> rpc_pb2.DeleteRangeResponse:
    resp = rpc_pb2.DeleteRangeResponse(header=hdr, deleted=r.deleted)
    _add_kvs(resp.prev_kvs, r.prev_kvs)
    return resp


def _response_op(r: ResponseOp) -> rpc_pb2.ResponseOp:
    if isinstance(r, RangeResponse):
        return rpc_pb2.ResponseOp(
            response_range=range_response(r, _ResponseHeaderPb(revision=r.revision))
        )
    if isinstance(r, PutResponse):
        return rpc_pb2.ResponseOp(
            response_put=put_response(r, _ResponseHeaderPb(revision=r.revision))
        )
    if isinstance(r, DeleteRangeResponse):
        return rpc_pb2.ResponseOp(
            response_delete_range=delete_range_response(r, _ResponseHeaderPb(revision=r.revision))
        )
    # etcd gives a nested txn's response an empty header, never filled.
    return rpc_pb2.ResponseOp(response_txn=txn_response(r, _ResponseHeaderPb()))


def txn_response(r: TxnResponse, hdr: rpc_pb2.ResponseHeader) -> rpc_pb2.TxnResponse:
    return rpc_pb2.TxnResponse(
        header=hdr,
        succeeded=r.succeeded,
        responses=[_response_op(op) for op in r.responses],
    )


def member(m: MemberInfo) -> rpc_pb2.Member:
    return rpc_pb2.Member(
        ID=m.id,
        name=m.name,
        peerURLs=m.peer_urls,
        clientURLs=m.client_urls,
        isLearner=m.is_learner,
    )


def members(ms: tuple[MemberInfo, ...]) -> list[rpc_pb2.Member]:
    return [member(m) for m in ms]


def status_response(s: Status, hdr: rpc_pb2.ResponseHeader) -> rpc_pb2.StatusResponse:
    return rpc_pb2.StatusResponse(
        header=hdr,
        version=s.version,
        dbSize=s.db_size_bytes,
        leader=s.leader,
        raftIndex=s.raft_index,
        raftTerm=s.raft_term,
        raftAppliedIndex=s.raft_applied_index,
        errors=s.errors,
        dbSizeInUse=s.db_size_in_use_bytes,
        isLearner=s.is_learner,
    )


def alarm_members(alarms: tuple[AlarmMember, ...]) -> list[rpc_pb2.AlarmMember]:
    return [rpc_pb2.AlarmMember(memberID=a.member_id, alarm=a.alarm.name) for a in alarms]
