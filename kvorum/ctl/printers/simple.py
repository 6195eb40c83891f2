"""``--write-out=simple``: etcdctl's human-readable lines (keys and values as raw bytes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.api.pb.mvccpb import kv_pb2
from kvorum.ctl.gofmt import go_hex_bytes
from kvorum.ctl.printers.base import Unsupported
from kvorum.ctl.printers.records import EpHashKV, EpHealth, EpStatus, Rendered
from kvorum.ctl.printers.rows import (
    endpoint_hashkv_table,
    endpoint_status_table,
    member_list_table,
)

__all__ = ["SimplePrinter", "go_string_list"]


def go_string_list(items: Sequence[bytes | str]) -> bytes:
    """``fmt.Print`` of a ``[]string``: ``[a b c]``."""
    parts = [i if isinstance(i, bytes) else i.encode() for i in items]
    return b"[" + b" ".join(parts) + b"]"


def _lines(rows: list[list[str]]) -> bytes:
    return b"".join(", ".join(row).encode() + b"\n" for row in rows)


@dataclass(frozen=True, slots=True)
class SimplePrinter(Unsupported):
    """``hex`` prints keys and values as ``\\xNN`` runs; ``value_only`` drops the key lines
    (``get --print-value-only``)."""

    hex: bool = False
    value_only: bool = False
    format_name = "simple"

    def _kv(self, kv: kv_pb2.KeyValue) -> bytes:
        key, value = kv.key, kv.value
        if self.hex:
            key, value = go_hex_bytes(key).encode(), go_hex_bytes(value).encode()
        head = b"" if self.value_only else key + b"\n"
        return head + value + b"\n"

    def get(self, resp: rpc_pb2.RangeResponse) -> Rendered:
        return Rendered(b"".join(self._kv(kv) for kv in resp.kvs))

    def put(self, resp: rpc_pb2.PutResponse) -> Rendered:
        prev = self._kv(resp.prev_kv) if resp.HasField("prev_kv") else b""
        return Rendered(b"OK\n" + prev)

    def delete(self, resp: rpc_pb2.DeleteRangeResponse) -> Rendered:
        prev = b"".join(self._kv(kv) for kv in resp.prev_kvs)
        return Rendered(f"{resp.deleted}\n".encode() + prev)

    def txn(self, resp: rpc_pb2.TxnResponse) -> Rendered:
        out = Rendered(b"SUCCESS\n" if resp.succeeded else b"FAILURE\n")
        for op in resp.responses:
            out += Rendered(b"\n")
            kind = op.WhichOneof("response")
            if kind == "response_delete_range":
                out += self.delete(op.response_delete_range)
            elif kind == "response_put":
                out += self.put(op.response_put)
            elif kind == "response_range":
                out += self.get(op.response_range)
        return out

    def watch(self, resp: rpc_pb2.WatchResponse) -> Rendered:
        out = b""
        for ev in resp.events:
            out += kv_pb2.Event.EventType.Name(ev.type).encode() + b"\n"
            if ev.HasField("prev_kv"):
                out += self._kv(ev.prev_kv)
            out += self._kv(ev.kv)
        return Rendered(out)

    def member_list(self, resp: rpc_pb2.MemberListResponse) -> Rendered:
        return Rendered(_lines(member_list_table(resp)[1]))

    def member_add(self, resp: rpc_pb2.MemberAddResponse) -> Rendered:
        # etcdctl 3.4 says "added to cluster" for learners too.
        cluster = resp.header.cluster_id
        text = f"Member {resp.member.ID:16x} added to cluster {cluster:16x}\n"
        return Rendered(text.encode())

    def member_remove(self, member_id: int, resp: rpc_pb2.MemberRemoveResponse) -> Rendered:
        cluster = resp.header.cluster_id
        return Rendered(f"Member {member_id:16x} removed from cluster {cluster:16x}\n".encode())

    def member_update(self, member_id: int, resp: rpc_pb2.MemberUpdateResponse) -> Rendered:
        cluster = resp.header.cluster_id
        return Rendered(f"Member {member_id:16x} updated in cluster {cluster:16x}\n".encode())

    def member_promote(self, member_id: int, resp: rpc_pb2.MemberPromoteResponse) -> Rendered:
        cluster = resp.header.cluster_id
        return Rendered(f"Member {member_id:16x} promoted in cluster {cluster:16x}\n".encode())

    def endpoint_status(self, statuses: Sequence[EpStatus]) -> Rendered:
        return Rendered(_lines(endpoint_status_table(statuses)[1]))

    def endpoint_hashkv(self, hashes: Sequence[EpHashKV]) -> Rendered:
        return Rendered(_lines(endpoint_hashkv_table(hashes)[1]))

    def endpoint_health(self, healths: Sequence[EpHealth]) -> Rendered:
        # etcdctl writes health lines to stderr in this format (stdout stays empty).
        err = b""
        for h in healths:
            if h.health:
                line = f"{h.endpoint} is healthy: successfully committed proposal: took = "
                line += f"{h.took}\n"
            else:
                line = f"{h.endpoint} is unhealthy: failed to commit proposal: {h.error}\n"
            err += line.encode()
        return Rendered(b"", err)

    def alarm(self, resp: rpc_pb2.AlarmResponse) -> Rendered:
        # Go's %+v of *pb.AlarmMember is the compact text form, with its trailing space.
        out = b""
        for a in resp.alarms:
            name = rpc_pb2.AlarmType.Name(a.alarm)
            out += f"memberID:{a.memberID} alarm:{name} \n".encode()
        return Rendered(out)

    def lease_grant(self, resp: rpc_pb2.LeaseGrantResponse) -> Rendered:
        return Rendered(f"lease {resp.ID:016x} granted with TTL({resp.TTL}s)\n".encode())

    def lease_revoke(self, lease_id: int, resp: rpc_pb2.LeaseRevokeResponse) -> Rendered:
        return Rendered(f"lease {lease_id:016x} revoked\n".encode())

    def lease_keepalive(self, resp: rpc_pb2.LeaseKeepAliveResponse) -> Rendered:
        return Rendered(f"lease {resp.ID:016x} keepalived with TTL({resp.TTL})\n".encode())

    def lease_timetolive(self, resp: rpc_pb2.LeaseTimeToLiveResponse, keys: bool) -> Rendered:
        if resp.grantedTTL == 0 and resp.TTL == -1:
            return Rendered(f"lease {resp.ID:016x} already expired\n".encode())
        text = (
            f"lease {resp.ID:016x} granted with TTL({resp.grantedTTL}s), remaining({resp.TTL}s)"
        ).encode()
        if keys:
            text += b", attached keys(" + go_string_list(list(resp.keys)) + b")"
        return Rendered(text + b"\n")

    def lease_list(self, resp: rpc_pb2.LeaseLeasesResponse) -> Rendered:
        out = f"found {len(resp.leases)} leases\n".encode()
        out += b"".join(f"{item.ID:016x}\n".encode() for item in resp.leases)
        return Rendered(out)
