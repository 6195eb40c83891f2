"""A minimal gRPC connection for kvorumctl, until ``kvorum.client`` replaces it.

Everything the commands need from a client is the ``Conn`` protocol: one call per RPC, each
bounded by ``--command-timeout``, failures raised as ``CallError`` carrying the gRPC code and
etcd's error text. Swapping in ``kvorum.client`` means writing another ``Conn``; no command
changes.

Like etcd's clientv3 3.4, a failed unary call is reported on stderr by a JSON log line before
etcdctl prints its ``Error:`` line; ``CallError.log_line`` renders it.
"""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import grpc
from google.protobuf.message import Message

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.ctl.flags import GlobalOptions

__all__ = ["CallError", "Conn", "GrpcConn", "connect", "dial_target"]

_NS_PER_S = 1_000_000_000
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}:\d+$")
# A never-connected channel fails with this text in clientv3 3.4's balancer.
_NO_SUBCONN = "latest balancer error: all SubConns are in TransientFailure"
_PROBE_TIMEOUT_S = 0.2
_AUTH_NOT_ENABLED = "etcdserver: authentication is not enabled"


def _go_code(code: grpc.StatusCode) -> str:
    """``codes.Code.String()``: ``OUT_OF_RANGE`` → ``OutOfRange``."""
    if code == grpc.StatusCode.OK:
        return "OK"
    return "".join(part.capitalize() for part in code.name.split("_"))


class CallError(Exception):
    """A failed RPC: ``message`` is what etcdctl prints after ``Error: ``."""

    def __init__(self, code: grpc.StatusCode, details: str, message: str, target: str) -> None:
        super().__init__(message)
        self.code = code
        self.details = details
        self.message = message
        self.target = target

    def log_line(self, now: datetime | None = None) -> str:
        """clientv3's ``retrying of unary invoker failed`` warning, one JSON line."""
        stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        record = {
            "level": "warn",
            "ts": stamp,
            "caller": "clientv3/retry_interceptor.go:62",
            "msg": "retrying of unary invoker failed",
            "target": self.target,
            "attempt": 0,
            "error": f"rpc error: code = {_go_code(self.code)} desc = {self.details}",
        }
        return json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"


class Conn(Protocol):
    """What kvorumctl's commands call; each method is one RPC bounded by the command timeout."""

    def range(self, req: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse: ...
    def put(self, req: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse: ...
    def delete_range(self, req: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse: ...
    def txn(self, req: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse: ...
    def compact(self, req: rpc_pb2.CompactionRequest) -> rpc_pb2.CompactionResponse: ...
    def member_list(self) -> rpc_pb2.MemberListResponse: ...
    def member_add(self, peer_urls: list[str], learner: bool) -> rpc_pb2.MemberAddResponse: ...
    def member_remove(self, member_id: int) -> rpc_pb2.MemberRemoveResponse: ...
    def member_update(
        self, member_id: int, peer_urls: list[str]
    ) -> rpc_pb2.MemberUpdateResponse: ...
    def member_promote(self, member_id: int) -> rpc_pb2.MemberPromoteResponse: ...
    def status(self) -> rpc_pb2.StatusResponse: ...
    def hash_kv(self, revision: int) -> rpc_pb2.HashKVResponse: ...
    def alarm(self, req: rpc_pb2.AlarmRequest) -> rpc_pb2.AlarmResponse: ...
    def defragment(self) -> rpc_pb2.DefragmentResponse: ...
    def lease_grant(self, ttl_s: int) -> rpc_pb2.LeaseGrantResponse: ...
    def lease_revoke(self, lease_id: int) -> rpc_pb2.LeaseRevokeResponse: ...
    def lease_time_to_live(self, lease_id: int, keys: bool) -> rpc_pb2.LeaseTimeToLiveResponse: ...
    def lease_leases(self) -> rpc_pb2.LeaseLeasesResponse: ...
    def lease_keep_alive_once(self, lease_id: int) -> rpc_pb2.LeaseKeepAliveResponse: ...
    def watch(self, req: rpc_pb2.WatchCreateRequest) -> Iterator[rpc_pb2.WatchResponse]: ...
    def snapshot(self, timeout_s: float | None) -> Iterator[rpc_pb2.SnapshotResponse]: ...
    def move_leader(self, target_id: int) -> rpc_pb2.MoveLeaderResponse: ...
    def auth_call(self, method: str, req: Message) -> Any: ...
    def close(self) -> None: ...

    @property
    def warnings(self) -> list[str]: ...


def _strip_scheme(endpoint: str) -> str:
    for scheme in ("http://", "https://", "unix://", "unixs://"):
        if endpoint.startswith(scheme):
            return endpoint[len(scheme) :]
    return endpoint


def dial_target(endpoints: Sequence[str]) -> str:
    """The gRPC target: all IPv4 endpoints round-robined as clientv3 does, else the first."""
    hosts = [_strip_scheme(e) for e in endpoints]
    if len(hosts) > 1 and all(_IPV4.match(h) for h in hosts):
        return "ipv4:" + ",".join(hosts)
    return hosts[0]


class GrpcConn:
    """``Conn`` over the generated stubs on one channel."""

    def __init__(
        self,
        options: GlobalOptions,
        endpoints: Sequence[str],
        log_target: str,
        *,
        passthrough: bool = False,
    ) -> None:
        self._passthrough = passthrough
        self._timeout_s = options.command_timeout_ns / _NS_PER_S
        self._log_target = log_target
        channel_options: list[tuple[str, Any]] = [
            ("grpc.keepalive_time_ms", options.keepalive_time_ns // 1_000_000),
            ("grpc.keepalive_timeout_ms", options.keepalive_timeout_ns // 1_000_000),
            ("grpc.lb_policy_name", "round_robin"),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 500),
        ]
        target = dial_target(endpoints)
        secure = any(e.startswith("https://") for e in endpoints) or bool(
            options.cacert or options.cert or options.key
        )
        if secure:
            creds = grpc.ssl_channel_credentials(
                root_certificates=_read(options.cacert),
                private_key=_read(options.key),
                certificate_chain=_read(options.cert),
            )
            self._channel = grpc.secure_channel(target, creds, options=channel_options)
        else:
            self._channel = grpc.insecure_channel(target, options=channel_options)
        self._endpoints = list(endpoints)
        self._kv = rpc_pb2_grpc.KVStub(self._channel)  # type: ignore[no-untyped-call]
        self._cluster = rpc_pb2_grpc.ClusterStub(self._channel)  # type: ignore[no-untyped-call]
        self._maint = rpc_pb2_grpc.MaintenanceStub(self._channel)  # type: ignore[no-untyped-call]
        self._lease = rpc_pb2_grpc.LeaseStub(self._channel)  # type: ignore[no-untyped-call]
        self._watch_stub = rpc_pb2_grpc.WatchStub(self._channel)  # type: ignore[no-untyped-call]
        self._metadata: list[tuple[str, str]] = []
        # Log lines of the connection itself, for the caller's stderr.
        self.warnings: list[str] = []
        if options.user:
            self._authenticate(options)

    def _reachable(self) -> bool:
        """Whether any endpoint accepts a TCP connection (tells a dead server from a slow one)."""
        for ep in self._endpoints:
            host, _, port = _strip_scheme(ep).rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), _PROBE_TIMEOUT_S):
                    return True
            except (OSError, ValueError):
                continue
        return False

    def _authenticate(self, options: GlobalOptions) -> None:
        name, _, password = options.user.partition(":")
        if options.password:
            name, password = options.user, options.password
        auth = rpc_pb2_grpc.AuthStub(self._channel)  # type: ignore[no-untyped-call]
        req = rpc_pb2.AuthenticateRequest(name=name, password=password)
        try:
            resp = self._call(auth.Authenticate, req)
        except CallError as err:
            # clientv3 goes on without a token when the cluster has auth off (logged).
            if err.message != _AUTH_NOT_ENABLED:
                raise
            self.warnings.append(err.log_line())
            return
        self._metadata = [("token", resp.token)]

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(
                request,
                timeout=self._timeout_s,
                wait_for_ready=True,
                metadata=self._metadata or None,
            )
        except grpc.RpcError as err:
            raise self._error(err) from None

    def _error(self, err: grpc.RpcError) -> CallError:
        code: grpc.StatusCode = err.code()
        details: str = err.details() or ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            if self._reachable():
                details = "context deadline exceeded"
            elif self._passthrough:
                # A single-endpoint client reports the dial error itself.
                host = _strip_scheme(self._endpoints[0])
                details = (
                    'latest balancer error: connection error: desc = "transport: Error while '
                    f'dialing dial tcp {host}: connect: connection refused"'
                )
            else:
                details = _NO_SUBCONN
            return CallError(code, details, "context deadline exceeded", self._log_target)
        if details.startswith("etcdserver: ") or code == grpc.StatusCode.UNAVAILABLE:
            return CallError(code, details, details, self._log_target)
        text = f"rpc error: code = {_go_code(code)} desc = {details}"
        return CallError(code, details, text, self._log_target)

    def range(self, req: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        resp: rpc_pb2.RangeResponse = self._call(self._kv.Range, req)
        return resp

    def put(self, req: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        resp: rpc_pb2.PutResponse = self._call(self._kv.Put, req)
        return resp

    def delete_range(self, req: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        resp: rpc_pb2.DeleteRangeResponse = self._call(self._kv.DeleteRange, req)
        return resp

    def txn(self, req: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        resp: rpc_pb2.TxnResponse = self._call(self._kv.Txn, req)
        return resp

    def compact(self, req: rpc_pb2.CompactionRequest) -> rpc_pb2.CompactionResponse:
        resp: rpc_pb2.CompactionResponse = self._call(self._kv.Compact, req)
        return resp

    def member_list(self) -> rpc_pb2.MemberListResponse:
        req = rpc_pb2.MemberListRequest()
        resp: rpc_pb2.MemberListResponse = self._call(self._cluster.MemberList, req)
        return resp

    def member_add(self, peer_urls: list[str], learner: bool) -> rpc_pb2.MemberAddResponse:
        req = rpc_pb2.MemberAddRequest(peerURLs=peer_urls, isLearner=learner)
        resp: rpc_pb2.MemberAddResponse = self._call(self._cluster.MemberAdd, req)
        return resp

    def member_remove(self, member_id: int) -> rpc_pb2.MemberRemoveResponse:
        req = rpc_pb2.MemberRemoveRequest(ID=member_id)
        resp: rpc_pb2.MemberRemoveResponse = self._call(self._cluster.MemberRemove, req)
        return resp

    def member_update(self, member_id: int, peer_urls: list[str]) -> rpc_pb2.MemberUpdateResponse:
        req = rpc_pb2.MemberUpdateRequest(ID=member_id, peerURLs=peer_urls)
        resp: rpc_pb2.MemberUpdateResponse = self._call(self._cluster.MemberUpdate, req)
        return resp

    def member_promote(self, member_id: int) -> rpc_pb2.MemberPromoteResponse:
        req = rpc_pb2.MemberPromoteRequest(ID=member_id)
        resp: rpc_pb2.MemberPromoteResponse = self._call(self._cluster.MemberPromote, req)
        return resp

    def status(self) -> rpc_pb2.StatusResponse:
        resp: rpc_pb2.StatusResponse = self._call(self._maint.Status, rpc_pb2.StatusRequest())
        return resp

    def hash_kv(self, revision: int) -> rpc_pb2.HashKVResponse:
        req = rpc_pb2.HashKVRequest(revision=revision)
        resp: rpc_pb2.HashKVResponse = self._call(self._maint.HashKV, req)
        return resp

    def alarm(self, req: rpc_pb2.AlarmRequest) -> rpc_pb2.AlarmResponse:
        resp: rpc_pb2.AlarmResponse = self._call(self._maint.Alarm, req)
        return resp

    def defragment(self) -> rpc_pb2.DefragmentResponse:
        req = rpc_pb2.DefragmentRequest()
        resp: rpc_pb2.DefragmentResponse = self._call(self._maint.Defragment, req)
        return resp

    def lease_grant(self, ttl_s: int) -> rpc_pb2.LeaseGrantResponse:
        req = rpc_pb2.LeaseGrantRequest(TTL=ttl_s)
        resp: rpc_pb2.LeaseGrantResponse = self._call(self._lease.LeaseGrant, req)
        return resp

    def lease_revoke(self, lease_id: int) -> rpc_pb2.LeaseRevokeResponse:
        req = rpc_pb2.LeaseRevokeRequest(ID=lease_id)
        resp: rpc_pb2.LeaseRevokeResponse = self._call(self._lease.LeaseRevoke, req)
        return resp

    def lease_time_to_live(self, lease_id: int, keys: bool) -> rpc_pb2.LeaseTimeToLiveResponse:
        req = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys)
        resp: rpc_pb2.LeaseTimeToLiveResponse = self._call(self._lease.LeaseTimeToLive, req)
        return resp

    def lease_leases(self) -> rpc_pb2.LeaseLeasesResponse:
        req = rpc_pb2.LeaseLeasesRequest()
        resp: rpc_pb2.LeaseLeasesResponse = self._call(self._lease.LeaseLeases, req)
        return resp

    def lease_keep_alive_once(self, lease_id: int) -> rpc_pb2.LeaseKeepAliveResponse:
        """One round on the keep-alive stream; a TTL of zero or less means the lease is gone
        (clientv3 turns that into ``ErrLeaseNotFound``, which is not logged: not unary)."""
        req = rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)
        try:
            stream = self._lease.LeaseKeepAlive(
                iter([req]), timeout=self._timeout_s, metadata=self._metadata or None
            )
            resp: rpc_pb2.LeaseKeepAliveResponse = next(iter(stream))
        except grpc.RpcError as err:
            raise self._error(err) from None
        if resp.TTL <= 0:
            text = "etcdserver: requested lease not found"
            raise CallError(grpc.StatusCode.NOT_FOUND, text, text, self._log_target)
        return resp

    def watch(self, req: rpc_pb2.WatchCreateRequest) -> Iterator[rpc_pb2.WatchResponse]:
        """The responses of one watch, until the server ends it (no deadline: it is long)."""
        wreq = rpc_pb2.WatchRequest(create_request=req)
        try:
            yield from self._watch_stub.Watch(iter([wreq]), metadata=self._metadata or None)
        except grpc.RpcError as err:
            raise self._error(err) from None

    def snapshot(self, timeout_s: float | None) -> Iterator[rpc_pb2.SnapshotResponse]:
        """The messages of one Snapshot stream; ``timeout_s`` None: no deadline (etcdctl
        bounds ``snapshot save`` only when ``--command-timeout`` is given)."""
        try:
            yield from self._maint.Snapshot(
                rpc_pb2.SnapshotRequest(),
                timeout=timeout_s,
                wait_for_ready=True,
                metadata=self._metadata or None,
            )
        except grpc.RpcError as err:
            raise self._error(err) from None

    def move_leader(self, target_id: int) -> rpc_pb2.MoveLeaderResponse:
        req = rpc_pb2.MoveLeaderRequest(targetID=target_id)
        resp: rpc_pb2.MoveLeaderResponse = self._call(self._maint.MoveLeader, req)
        return resp

    def auth_call(self, method: str, req: Message) -> Any:
        """One call of etcd's Auth service by its RPC name (``UserAdd``, ``AuthEnable``, ...),
        bounded by the command timeout and carrying the token like every other call."""
        stub = rpc_pb2_grpc.AuthStub(self._channel)  # type: ignore[no-untyped-call]
        return self._call(getattr(stub, method), req)

    def close(self) -> None:
        self._channel.close()


def _read(path: str) -> bytes | None:
    return Path(path).read_bytes() if path else None


def connect(
    options: GlobalOptions, endpoints: Sequence[str] | None = None, passthrough: bool = False
) -> Conn:
    """A connection to ``endpoints`` (default: ``--endpoints``).

    ``passthrough`` names the log target as clientv3 does for its per-endpoint clients of
    ``endpoint status``/``hashkv`` (``passthrough:///ep``) instead of its balancer's.
    """
    eps = list(endpoints if endpoints is not None else options.endpoints)
    host = _strip_scheme(eps[0])
    if passthrough:
        log_target = f"passthrough:///{host}"
    else:
        log_target = f"endpoint://client-{uuid.uuid4()}/{host}"
    return GrpcConn(options, eps, log_target, passthrough=passthrough)
