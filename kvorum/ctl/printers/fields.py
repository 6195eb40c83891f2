"""``--write-out=fields``: one ``"Name" : value`` line per field, as etcdctl's fields printer."""

from __future__ import annotations

from collections.abc import Sequence

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.api.pb.mvccpb import kv_pb2
from kvorum.ctl.errors import EXIT_PANIC, CtlExit
from kvorum.ctl.gofmt import go_bool, go_quote
from kvorum.ctl.printers.base import Unsupported
from kvorum.ctl.printers.records import EpHashKV, EpHealth, EpStatus, Rendered
from kvorum.ctl.printers.simple import go_string_list

__all__ = ["FieldsPrinter"]

# etcdctl dereferences a missing header and panics (exit code 2); the trace cannot match.
_NIL_HEADER_PANIC = "panic: runtime error: invalid memory address or nil pointer dereference\n"


def _hdr(h: rpc_pb2.ResponseHeader) -> str:
    return (
        f'"ClusterID" : {h.cluster_id}\n"MemberID" : {h.member_id}\n'
        f'"Revision" : {h.revision}\n"RaftTerm" : {h.raft_term}\n'
    )


def _kv(prefix: str, kv: kv_pb2.KeyValue) -> str:
    return (
        f'"{prefix}Key" : {go_quote(kv.key)}\n'
        f'"{prefix}CreateRevision" : {kv.create_revision}\n'
        f'"{prefix}ModRevision" : {kv.mod_revision}\n'
        f'"{prefix}Version" : {kv.version}\n'
        f'"{prefix}Value" : {go_quote(kv.value)}\n'
        f'"{prefix}Lease" : {kv.lease}\n'
    )


def _out(text: str) -> Rendered:
    return Rendered(text.encode())


class FieldsPrinter(Unsupported):
    format_name = "fields"

    def _get(self, r: rpc_pb2.RangeResponse) -> str:
        text = _hdr(r.header) + "".join(_kv("", kv) for kv in r.kvs)
        return text + f'"More" : {go_bool(r.more)}\n"Count" : {r.count}\n'

    def _put(self, r: rpc_pb2.PutResponse) -> str:
        return _hdr(r.header) + (_kv("Prev", r.prev_kv) if r.HasField("prev_kv") else "")

    def _del(self, r: rpc_pb2.DeleteRangeResponse) -> str:
        text = _hdr(r.header) + f'"Deleted" : {r.deleted}\n'
        return text + "".join(_kv("Prev", kv) for kv in r.prev_kvs)

    def get(self, resp: rpc_pb2.RangeResponse) -> Rendered:
        return _out(self._get(resp))

    def put(self, resp: rpc_pb2.PutResponse) -> Rendered:
        return _out(self._put(resp))

    def delete(self, resp: rpc_pb2.DeleteRangeResponse) -> Rendered:
        return _out(self._del(resp))

    def txn(self, resp: rpc_pb2.TxnResponse) -> Rendered:
        text = _hdr(resp.header) + f'"Succeeded" : {go_bool(resp.succeeded)}\n'
        for op in resp.responses:
            kind = op.WhichOneof("response")
            if kind == "response_delete_range":
                text += self._del(op.response_delete_range)
            elif kind == "response_put":
                text += self._put(op.response_put)
            elif kind == "response_range":
                text += self._get(op.response_range)
        return _out(text)

    def watch(self, resp: rpc_pb2.WatchResponse) -> Rendered:
        text = _hdr(resp.header)
        for ev in resp.events:
            text += f'"Type" : {kv_pb2.Event.EventType.Name(ev.type)}\n'
            if ev.HasField("prev_kv"):
                text += _kv("Prev", ev.prev_kv)
            text += _kv("", ev.kv)
        return _out(text)

    def member_list(self, resp: rpc_pb2.MemberListResponse) -> Rendered:
        text = _hdr(resp.header)
        for m in resp.members:
            text += f'"ID" : {m.ID}\n"Name" : {go_quote(m.name)}\n'
            text += "".join(f'"PeerURL" : {go_quote(u)}\n' for u in m.peerURLs)
            text += "".join(f'"ClientURL" : {go_quote(u)}\n' for u in m.clientURLs)
            text += f'"IsLearner" : {go_bool(m.isLearner)}\n\n'
        return _out(text)

    def endpoint_status(self, statuses: Sequence[EpStatus]) -> Rendered:
        text = ""
        for st in statuses:
            r = st.response
            errors = go_string_list(list(r.errors)).decode("utf-8", "surrogateescape")
            text += (
                _hdr(r.header)
                + f'"Version" : {go_quote(r.version)}\n"DBSize" : {r.dbSize}\n'
                + f'"Leader" : {r.leader}\n"IsLearner" : {go_bool(r.isLearner)}\n'
                + f'"RaftIndex" : {r.raftIndex}\n"RaftTerm" : {r.raftTerm}\n'
                + f'"RaftAppliedIndex" : {r.raftAppliedIndex}\n"Errors" : {errors}\n'
                + f'"Endpoint" : {go_quote(st.endpoint)}\n\n'
            )
        return _out(text)

    def endpoint_hashkv(self, hashes: Sequence[EpHashKV]) -> Rendered:
        text = ""
        for h in hashes:
            text += _hdr(h.response.header)
            text += f'"Endpoint" : {go_quote(h.endpoint)}\n"Hash" : {h.response.hash}\n\n'
        return _out(text)

    def endpoint_health(self, healths: Sequence[EpHealth]) -> Rendered:
        text = ""
        for h in healths:
            text += f'"Endpoint" : {go_quote(h.endpoint)}\n"Health" : {go_bool(h.health)}\n'
            text += f'"Took" : {h.took}\n"Error" : {h.error}\n\n'
        return _out(text)

    def alarm(self, resp: rpc_pb2.AlarmResponse) -> Rendered:
        if not resp.HasField("header"):
            raise CtlExit(EXIT_PANIC, None, prefix=_NIL_HEADER_PANIC)
        text = _hdr(resp.header)
        for a in resp.alarms:
            name = rpc_pb2.AlarmType.Name(a.alarm)
            text += f'"MemberID" : {a.memberID}\n"AlarmType" : {name}\n\n'
        return _out(text)

    def lease_grant(self, resp: rpc_pb2.LeaseGrantResponse) -> Rendered:
        return _out(_hdr(resp.header) + f'"ID" : {resp.ID}\n"TTL" : {resp.TTL}\n')

    def lease_revoke(self, lease_id: int, resp: rpc_pb2.LeaseRevokeResponse) -> Rendered:
        return _out(_hdr(resp.header))

    def lease_keepalive(self, resp: rpc_pb2.LeaseKeepAliveResponse) -> Rendered:
        return _out(_hdr(resp.header) + f'"ID" : {resp.ID}\n"TTL" : {resp.TTL}\n')

    def lease_timetolive(self, resp: rpc_pb2.LeaseTimeToLiveResponse, keys: bool) -> Rendered:
        text = _hdr(resp.header)
        text += f'"ID" : {resp.ID}\n"TTL" : {resp.TTL}\n"GrantedTTL" : {resp.grantedTTL}\n'
        text += "".join(f'"Key" : {go_quote(k)}\n' for k in resp.keys)
        return _out(text)

    def lease_list(self, resp: rpc_pb2.LeaseLeasesResponse) -> Rendered:
        return _out(_hdr(resp.header) + "".join(f'"ID" : {i.ID}\n' for i in resp.leases))
