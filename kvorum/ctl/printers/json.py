"""``--write-out=json``: Go's ``encoding/json`` of the gogo-protobuf structs etcdctl prints.

Those structs carry ``json:"<proto field name>,omitempty"`` tags, so a field appears under its
proto name, in declaration order, only when it is not the zero value; ``bytes`` are base64, 64-bit
integers are plain numbers, enums are numbers. A oneof is a Go interface field without a tag:
it appears under the CamelCase oneof name, wrapping the CamelCase member name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.ctl.gofmt import go_bool, go_json_bytes, go_json_string
from kvorum.ctl.printers.base import Unsupported
from kvorum.ctl.printers.records import EpHashKV, EpHealth, EpStatus, Rendered

__all__ = ["JsonPrinter", "go_json"]


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _scalar(field: Any, value: Any) -> str:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return go_json(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return go_json_bytes(value)
    if field.type == FieldDescriptor.TYPE_STRING:
        return go_json_string(value)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return go_bool(value)
    if field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return repr(float(value))
    return str(int(value))


def go_json(msg: Message) -> str:
    """The JSON Go's ``json.Marshal`` writes for the gogo struct of ``msg``."""
    parts: list[str] = []
    seen_oneofs: set[str] = set()
    fields: list[Any] = list(msg.DESCRIPTOR.fields)
    for field in fields:
        oneof = field.containing_oneof
        if oneof is not None:
            if oneof.name in seen_oneofs:
                continue
            seen_oneofs.add(oneof.name)
            which = msg.WhichOneof(oneof.name)
            if which is None:
                parts.append(f'"{_camel(oneof.name)}":null')
                continue
            member = msg.DESCRIPTOR.fields_by_name[which]
            inner = _scalar(member, getattr(msg, which))
            parts.append(f'"{_camel(oneof.name)}":{{"{_camel(which)}":{inner}}}')
            continue
        value = getattr(msg, field.name)
        if field.is_repeated:
            if len(value) == 0:
                continue
            items = ",".join(_scalar(field, v) for v in value)
            parts.append(f"{go_json_string(field.name)}:[{items}]")
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if not msg.HasField(field.name):
                continue
        elif not value:
            continue
        parts.append(f"{go_json_string(field.name)}:{_scalar(field, value)}")
    return "{" + ",".join(parts) + "}"


def _line(text: str) -> Rendered:
    return Rendered(text.encode() + b"\n")


class JsonPrinter(Unsupported):
    """One JSON document per response, on one line."""

    format_name = "json"

    def get(self, resp: rpc_pb2.RangeResponse) -> Rendered:
        return _line(go_json(resp))

    def put(self, resp: rpc_pb2.PutResponse) -> Rendered:
        return _line(go_json(resp))

    def delete(self, resp: rpc_pb2.DeleteRangeResponse) -> Rendered:
        return _line(go_json(resp))

    def txn(self, resp: rpc_pb2.TxnResponse) -> Rendered:
        return _line(go_json(resp))

    def member_list(self, resp: rpc_pb2.MemberListResponse) -> Rendered:
        return _line(go_json(resp))

    def watch(self, resp: rpc_pb2.WatchResponse) -> Rendered:
        # clientv3.WatchResponse: untagged exported fields, so Go names and no omitempty.
        events = _go_slice([go_json(ev) for ev in resp.events])
        if resp.canceled and not resp.events:
            events = "[]"  # clientv3 builds a canceled response with an empty, non-nil slice
        return _line(
            f'{{"Header":{go_json(resp.header)},"Events":{events},'
            f'"CompactRevision":{resp.compact_revision},"Canceled":{go_bool(resp.canceled)},'
            f'"Created":{go_bool(resp.created)}}}'
        )

    def member_add(self, resp: rpc_pb2.MemberAddResponse) -> Rendered:
        return _line(go_json(resp))

    def member_remove(self, member_id: int, resp: rpc_pb2.MemberRemoveResponse) -> Rendered:
        return _line(go_json(resp))

    def member_update(self, member_id: int, resp: rpc_pb2.MemberUpdateResponse) -> Rendered:
        return _line(go_json(resp))

    def member_promote(self, member_id: int, resp: rpc_pb2.MemberPromoteResponse) -> Rendered:
        return _line(go_json(resp))

    def alarm(self, resp: rpc_pb2.AlarmResponse) -> Rendered:
        return _line(go_json(resp))

    def lease_grant(self, resp: rpc_pb2.LeaseGrantResponse) -> Rendered:
        own = f'"ID":{resp.ID},"TTL":{resp.TTL},"Error":{go_json_string(resp.error)}'
        return _line(_with_header(resp.header, own))

    def lease_revoke(self, lease_id: int, resp: rpc_pb2.LeaseRevokeResponse) -> Rendered:
        return _line(go_json(resp))

    def lease_keepalive(self, resp: rpc_pb2.LeaseKeepAliveResponse) -> Rendered:
        return _line(_with_header(resp.header, f'"ID":{resp.ID},"TTL":{resp.TTL}'))

    def lease_timetolive(self, resp: rpc_pb2.LeaseTimeToLiveResponse, keys: bool) -> Rendered:
        attached = _go_slice([go_json_bytes(k) for k in resp.keys])
        own = f'"id":{resp.ID},"ttl":{resp.TTL},"granted-ttl":{resp.grantedTTL},"keys":{attached}'
        return _line(_with_header(resp.header, own))

    def lease_list(self, resp: rpc_pb2.LeaseLeasesResponse) -> Rendered:
        leases = _go_slice([f'{{"id":{item.ID}}}' for item in resp.leases])
        return _line(_with_header(resp.header, f'"leases":{leases}'))

    def endpoint_status(self, statuses: Sequence[EpStatus]) -> Rendered:
        items = [
            f'{{"Endpoint":{go_json_string(s.endpoint)},"Status":{go_json(s.response)}}}'
            for s in statuses
        ]
        return _line(_go_slice(items))

    def endpoint_hashkv(self, hashes: Sequence[EpHashKV]) -> Rendered:
        items = [
            f'{{"Endpoint":{go_json_string(h.endpoint)},"HashKV":{go_json(_hashkv_34(h.response))}}}'
            for h in hashes
        ]
        return _line(_go_slice(items))

    def endpoint_health(self, healths: Sequence[EpHealth]) -> Rendered:
        items = []
        for h in healths:
            text = (
                f'{{"endpoint":{go_json_string(h.endpoint)},"health":{go_bool(h.health)},'
                f'"took":{go_json_string(h.took)}'
            )
            if h.error:
                text += f',"error":{go_json_string(h.error)}'
            items.append(text + "}")
        return _line(_go_slice(items))


def _hashkv_34(resp: rpc_pb2.HashKVResponse) -> rpc_pb2.HashKVResponse:
    """etcdctl 3.4 decodes the response into its own struct, which has no ``hash_revision``
    (a later addition a newer server such as kvorum sends): it never prints it."""
    known = rpc_pb2.HashKVResponse()
    known.CopyFrom(resp)
    known.ClearField("hash_revision")
    return known


def _with_header(header: rpc_pb2.ResponseHeader, own: str) -> str:
    """clientv3's lease responses embed ``*pb.ResponseHeader``: its fields are promoted to the
    top level, followed by the struct's own fields."""
    head = go_json(header)[1:-1]
    return "{" + (head + "," if head else "") + own + "}"


def _go_slice(items: list[str]) -> str:
    # A nil Go slice (nothing collected) marshals as null, not [].
    return "[" + ",".join(items) + "]" if items else "null"
