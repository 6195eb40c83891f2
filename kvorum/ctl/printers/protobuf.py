"""``--write-out=protobuf``: the wire encoding of the response, raw, with no newline.

Both gogo-protobuf and Python's protobuf write known fields in field-number order, so the bytes
are etcdctl's (the differential tests hold this, ``%`` sequences and invalid UTF-8 included).
"""

from __future__ import annotations

from google.protobuf.message import Message

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.ctl.printers.base import Unsupported
from kvorum.ctl.printers.records import Rendered

__all__ = ["ProtobufPrinter"]


def _pb(msg: Message) -> Rendered:
    return Rendered(msg.SerializeToString())


class ProtobufPrinter(Unsupported):
    format_name = "protobuf"

    def get(self, resp: rpc_pb2.RangeResponse) -> Rendered:
        return _pb(resp)

    def put(self, resp: rpc_pb2.PutResponse) -> Rendered:
        return _pb(resp)

    def delete(self, resp: rpc_pb2.DeleteRangeResponse) -> Rendered:
        return _pb(resp)

    def txn(self, resp: rpc_pb2.TxnResponse) -> Rendered:
        return _pb(resp)

    def watch(self, resp: rpc_pb2.WatchResponse) -> Rendered:
        return _pb(resp)

    def member_list(self, resp: rpc_pb2.MemberListResponse) -> Rendered:
        return _pb(resp)

    def alarm(self, resp: rpc_pb2.AlarmResponse) -> Rendered:
        return _pb(resp)

    # clientv3's lease responses embed *pb.ResponseHeader, whose Marshal is what etcdctl
    # reaches: only the header is written.
    def lease_grant(self, resp: rpc_pb2.LeaseGrantResponse) -> Rendered:
        return _pb(resp.header)

    def lease_revoke(self, lease_id: int, resp: rpc_pb2.LeaseRevokeResponse) -> Rendered:
        return _pb(resp)

    def lease_keepalive(self, resp: rpc_pb2.LeaseKeepAliveResponse) -> Rendered:
        return _pb(resp.header)

    def lease_timetolive(self, resp: rpc_pb2.LeaseTimeToLiveResponse, keys: bool) -> Rendered:
        return _pb(resp.header)

    def lease_list(self, resp: rpc_pb2.LeaseLeasesResponse) -> Rendered:
        return _pb(resp.header)
