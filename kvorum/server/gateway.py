"""etcd's JSON gateway: the v3 RPCs at their ``/v3/...`` POST paths, JSON in and out.

etcd serves it with grpc-gateway on its client port. Here it is served by the member's HTTP
server (on ``--listen-metrics-urls``; grpc-python cannot share the client port, see
``portmux``), and each request is forwarded over a gRPC channel to the member's own client
listener, so validation, errors, auth and the gRPC metrics are exactly the gRPC path's.

The JSON is grpc-gateway's as etcd configures it (``JSONPb{OrigName: true}``, checked against a
real etcd 3.4.23): proto field names as written in the .proto (``create_revision``,
``dbSize``, ``ID``), 64-bit integers as strings, bytes as base64, enums by name, fields at their
default left out, unknown request fields ignored. A failed call answers
``{"error": text, "message": text, "code": n}`` with grpc-gateway's HTTP status for the code.

Not served: the streaming RPCs (``/v3/watch``, ``/v3/lease/keepalive``,
``/v3/maintenance/snapshot``) answer 501; the deprecated ``/v3beta`` and ``/v3alpha`` prefixes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory

__all__ = [
    "GATEWAY_TIMEOUT_S",
    "ROUTES",
    "STREAMING",
    "Gateway",
    "GatewayReply",
    "gateway_target",
    "http_status",
]

#: How long one forwarded call may take (grpc-gateway sets none; a bound is kept here).
GATEWAY_TIMEOUT_S = 60.0
MAX_MESSAGE_BYTES = 2**31 - 1

#: path -> (service, method), as etcd 3.4's rpc.proto annotates them.
ROUTES: dict[str, tuple[str, str]] = {
    "/v3/kv/range": ("etcdserverpb.KV", "Range"),
    "/v3/kv/put": ("etcdserverpb.KV", "Put"),
    "/v3/kv/deleterange": ("etcdserverpb.KV", "DeleteRange"),
    "/v3/kv/txn": ("etcdserverpb.KV", "Txn"),
    "/v3/kv/compaction": ("etcdserverpb.KV", "Compact"),
    "/v3/lease/grant": ("etcdserverpb.Lease", "LeaseGrant"),
    "/v3/lease/revoke": ("etcdserverpb.Lease", "LeaseRevoke"),
    "/v3/kv/lease/revoke": ("etcdserverpb.Lease", "LeaseRevoke"),
    "/v3/lease/timetolive": ("etcdserverpb.Lease", "LeaseTimeToLive"),
    "/v3/kv/lease/timetolive": ("etcdserverpb.Lease", "LeaseTimeToLive"),
    "/v3/lease/leases": ("etcdserverpb.Lease", "LeaseLeases"),
    "/v3/kv/lease/leases": ("etcdserverpb.Lease", "LeaseLeases"),
    "/v3/cluster/member/add": ("etcdserverpb.Cluster", "MemberAdd"),
    "/v3/cluster/member/remove": ("etcdserverpb.Cluster", "MemberRemove"),
    "/v3/cluster/member/update": ("etcdserverpb.Cluster", "MemberUpdate"),
    "/v3/cluster/member/list": ("etcdserverpb.Cluster", "MemberList"),
    "/v3/cluster/member/promote": ("etcdserverpb.Cluster", "MemberPromote"),
    "/v3/maintenance/alarm": ("etcdserverpb.Maintenance", "Alarm"),
    "/v3/maintenance/status": ("etcdserverpb.Maintenance", "Status"),
    "/v3/maintenance/defragment": ("etcdserverpb.Maintenance", "Defragment"),
    # etcd annotates Hash and HashKV with the same path; grpc-gateway serves the first (Hash).
    "/v3/maintenance/hash": ("etcdserverpb.Maintenance", "Hash"),
    "/v3/maintenance/transfer-leadership": ("etcdserverpb.Maintenance", "MoveLeader"),
    "/v3/auth/enable": ("etcdserverpb.Auth", "AuthEnable"),
    "/v3/auth/disable": ("etcdserverpb.Auth", "AuthDisable"),
    "/v3/auth/authenticate": ("etcdserverpb.Auth", "Authenticate"),
    "/v3/auth/user/add": ("etcdserverpb.Auth", "UserAdd"),
    "/v3/auth/user/get": ("etcdserverpb.Auth", "UserGet"),
    "/v3/auth/user/list": ("etcdserverpb.Auth", "UserList"),
    "/v3/auth/user/delete": ("etcdserverpb.Auth", "UserDelete"),
    "/v3/auth/user/changepw": ("etcdserverpb.Auth", "UserChangePassword"),
    "/v3/auth/user/grant": ("etcdserverpb.Auth", "UserGrantRole"),
    "/v3/auth/user/revoke": ("etcdserverpb.Auth", "UserRevokeRole"),
    "/v3/auth/role/add": ("etcdserverpb.Auth", "RoleAdd"),
    "/v3/auth/role/get": ("etcdserverpb.Auth", "RoleGet"),
    "/v3/auth/role/list": ("etcdserverpb.Auth", "RoleList"),
    "/v3/auth/role/delete": ("etcdserverpb.Auth", "RoleDelete"),
    "/v3/auth/role/grant": ("etcdserverpb.Auth", "RoleGrantPermission"),
    "/v3/auth/role/revoke": ("etcdserverpb.Auth", "RoleRevokePermission"),
}
STREAMING = frozenset({"/v3/watch", "/v3/lease/keepalive", "/v3/maintenance/snapshot"})

#: grpc-gateway v1's runtime.HTTPStatusFromCode.
_HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 408,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}


def gateway_target(client_urls: Sequence[str]) -> str | None:
    """The ``host:port`` the gateway dials: the first plain-HTTP client URL (a wildcard host
    dialled on loopback); None when every client URL needs TLS or is a unix socket."""
    for url in client_urls:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.port is None or not parts.hostname:
            continue
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(parts.hostname, parts.hostname)
        return f"[{host}]:{parts.port}" if ":" in host else f"{host}:{parts.port}"
    return None


def http_status(code: grpc.StatusCode) -> int:
    return _HTTP_STATUS.get(code, 500)


@dataclass(frozen=True, slots=True)
class GatewayReply:
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class _Method:
    path: str  # the gRPC method path, /etcdserverpb.KV/Range
    request: Any  # message classes
    response: Any


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _error(code: grpc.StatusCode, text: str) -> GatewayReply:
    body = {"error": text, "message": text, "code": code.value[0]}
    return GatewayReply(http_status(code), _compact(body))


class Gateway:
    """Translate ``/v3/...`` JSON requests into calls on the member's gRPC listener."""

    def __init__(self, grpc_target: str) -> None:
        from kvorum.api.pb.etcdserverpb import rpc_pb2  # noqa: F401  (fills the pool)

        self._target = grpc_target
        self._channel: grpc.aio.Channel | None = None
        pool = descriptor_pool.Default()
        self._methods: dict[str, _Method] = {}
        for http_path, (service, name) in ROUTES.items():
            method = pool.FindServiceByName(service).methods_by_name[name]
            self._methods[http_path] = _Method(
                f"/{service}/{name}",
                message_factory.GetMessageClass(method.input_type),
                message_factory.GetMessageClass(method.output_type),
            )

    def serves(self, path: str) -> bool:
        return path in self._methods or path in STREAMING

    def _get_channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(
                self._target,
                options=[
                    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ],
            )
        return self._channel

    async def call(self, path: str, body: bytes, token: str | None = None) -> GatewayReply:
        """Forward one POST to ``path`` with JSON ``body``; the JSON reply and its status."""
        method = self._methods.get(path)
        if method is None:
            return _error(grpc.StatusCode.UNIMPLEMENTED, f"{path} streams; not served by kvorum")
        request = method.request()
        try:
            text = body.decode() if body.strip() else "{}"
            json_format.Parse(text, request, ignore_unknown_fields=True)
        except (json_format.ParseError, UnicodeDecodeError) as exc:
            return _error(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        rpc = self._get_channel().unary_unary(
            method.path,
            request_serializer=method.request.SerializeToString,
            response_deserializer=method.response.FromString,
        )
        metadata = (("token", token),) if token else None
        try:
            response = await rpc(request, timeout=GATEWAY_TIMEOUT_S, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            return _error(exc.code(), exc.details() or "")
        reply = json_format.MessageToDict(response, preserving_proto_field_name=True)
        return GatewayReply(200, _compact(reply))

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
