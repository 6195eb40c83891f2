"""The printer interface shared by every ``--write-out`` format, and the fallback that refuses.

A printer is a pure function of protobuf responses to ``Rendered`` bytes; a format that does
not support a response raises ``CtlExit`` with etcdctl's exit code and text instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.ctl.errors import EXIT_BAD_FEATURE, CtlExit
from kvorum.ctl.printers.records import EpHashKV, EpHealth, EpStatus, Rendered

__all__ = ["Printer", "Unsupported"]


class Printer(Protocol):
    """One output format; every method renders one response (or raises ``CtlExit``)."""

    def get(self, resp: rpc_pb2.RangeResponse) -> Rendered: ...
    def put(self, resp: rpc_pb2.PutResponse) -> Rendered: ...
    def delete(self, resp: rpc_pb2.DeleteRangeResponse) -> Rendered: ...
    def txn(self, resp: rpc_pb2.TxnResponse) -> Rendered: ...
    def watch(self, resp: rpc_pb2.WatchResponse) -> Rendered: ...
    def member_list(self, resp: rpc_pb2.MemberListResponse) -> Rendered: ...
    def member_add(self, resp: rpc_pb2.MemberAddResponse) -> Rendered: ...
    def member_remove(self, member_id: int, resp: rpc_pb2.MemberRemoveResponse) -> Rendered: ...
    def member_update(self, member_id: int, resp: rpc_pb2.MemberUpdateResponse) -> Rendered: ...
    def member_promote(self, member_id: int, resp: rpc_pb2.MemberPromoteResponse) -> Rendered: ...
    def endpoint_status(self, statuses: Sequence[EpStatus]) -> Rendered: ...
    def endpoint_health(self, healths: Sequence[EpHealth]) -> Rendered: ...
    def endpoint_hashkv(self, hashes: Sequence[EpHashKV]) -> Rendered: ...
    def alarm(self, resp: rpc_pb2.AlarmResponse) -> Rendered: ...
    def lease_grant(self, resp: rpc_pb2.LeaseGrantResponse) -> Rendered: ...
    def lease_revoke(self, lease_id: int, resp: rpc_pb2.LeaseRevokeResponse) -> Rendered: ...
    def lease_keepalive(self, resp: rpc_pb2.LeaseKeepAliveResponse) -> Rendered: ...
    def lease_timetolive(self, resp: rpc_pb2.LeaseTimeToLiveResponse, keys: bool) -> Rendered: ...
    def lease_list(self, resp: rpc_pb2.LeaseLeasesResponse) -> Rendered: ...


class Unsupported:
    """Refuses every response the way etcdctl does: ``Error: <fmt> not supported as output
    format``, exit code 4. Formats subclass it and override what they support."""

    format_name = "unknown"

    def _refuse(self) -> Rendered:
        raise CtlExit(EXIT_BAD_FEATURE, f"{self.format_name} not supported as output format")

    def get(self, resp: rpc_pb2.RangeResponse) -> Rendered:
        return self._refuse()

    def put(self, resp: rpc_pb2.PutResponse) -> Rendered:
        return self._refuse()

    def delete(self, resp: rpc_pb2.DeleteRangeResponse) -> Rendered:
        return self._refuse()

    def txn(self, resp: rpc_pb2.TxnResponse) -> Rendered:
        return self._refuse()

    def watch(self, resp: rpc_pb2.WatchResponse) -> Rendered:
        return self._refuse()

    def member_list(self, resp: rpc_pb2.MemberListResponse) -> Rendered:
        return self._refuse()

    def member_add(self, resp: rpc_pb2.MemberAddResponse) -> Rendered:
        return self._refuse()

    def member_remove(self, member_id: int, resp: rpc_pb2.MemberRemoveResponse) -> Rendered:
        return self._refuse()

    def member_update(self, member_id: int, resp: rpc_pb2.MemberUpdateResponse) -> Rendered:
        return self._refuse()

    def member_promote(self, member_id: int, resp: rpc_pb2.MemberPromoteResponse) -> Rendered:
        return self._refuse()

    def endpoint_status(self, statuses: Sequence[EpStatus]) -> Rendered:
        return self._refuse()

    def endpoint_health(self, healths: Sequence[EpHealth]) -> Rendered:
        return self._refuse()

    def endpoint_hashkv(self, hashes: Sequence[EpHashKV]) -> Rendered:
        return self._refuse()

    def alarm(self, resp: rpc_pb2.AlarmResponse) -> Rendered:
        return self._refuse()

    def lease_grant(self, resp: rpc_pb2.LeaseGrantResponse) -> Rendered:
        return self._refuse()

    def lease_revoke(self, lease_id: int, resp: rpc_pb2.LeaseRevokeResponse) -> Rendered:
        return self._refuse()

    def lease_keepalive(self, resp: rpc_pb2.LeaseKeepAliveResponse) -> Rendered:
        return self._refuse()

    def lease_timetolive(self, resp: rpc_pb2.LeaseTimeToLiveResponse, keys: bool) -> Rendered:
        return self._refuse()

    def lease_list(self, resp: rpc_pb2.LeaseLeasesResponse) -> Rendered:
        return self._refuse()
