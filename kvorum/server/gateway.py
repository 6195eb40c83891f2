"""etcd's JSON gateway: the v3 RPCs at their ``/v3/...`` POST paths, JSON in and out.

etcd serves it with grpc-gateway on its client port. Here it is served by the member's HTTP
server on the client port (through ``portmux``) and on ``--listen-metrics-urls``, and each
request is forwarded over a gRPC channel to the member's own gRPC listener, so validation,
errors, auth (the ``Authorization`` header becomes the ``token`` metadata) and the gRPC metrics
are exactly the gRPC path's.

The JSON is grpc-gateway's as etcd configures it (``JSONPb{OrigName: true}``, checked against a
real etcd 3.4.23): proto field names as written in the .proto (``create_revision``,
``dbSize``, ``ID``), 64-bit integers as strings, bytes as base64, enums by name, fields at their
default left out, unknown request fields ignored. A failed call answers
``{"error": text, "message": text, "code": n}`` with grpc-gateway's HTTP status for the code.

The streaming RPCs (``/v3/watch``, ``/v3/lease/keepalive``, ``/v3/maintenance/snapshot``) are
served as grpc-gateway v1 serves them: the request body holds one or more JSON messages (sent
in order, then the sending side is closed), and the answer is chunked, one ``{"result": ...}``
line per message; an error ends the stream with ``{"error": {"grpc_code", "http_code",
"message", "http_status"}}`` (and sets the HTTP status when nothing was sent before). A watch
stays open after the body ends, as etcd's does, until the client goes away.

etcd 3.4 serves the same paths under ``/v3beta`` too (``/v3alpha`` was dropped in 3.4).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory

__all__ = [
    "GATEWAY_TIMEOUT_S",
    "ROUTES",
    "STREAMING",
    "Gateway",
    "GatewayReply",
    "GatewayStream",
    "canonical_path",
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
#: The streaming RPCs; Watch and LeaseKeepAlive stream both ways, Snapshot from the server.
STREAM_ROUTES: dict[str, tuple[str, str]] = {
    "/v3/watch": ("etcdserverpb.Watch", "Watch"),
    "/v3/lease/keepalive": ("etcdserverpb.Lease", "LeaseKeepAlive"),
    "/v3/maintenance/snapshot": ("etcdserverpb.Maintenance", "Snapshot"),
}
STREAMING = frozenset(STREAM_ROUTES)
#: Request messages one streaming POST may carry (a body is at most a few MiB anyway).
MAX_STREAM_REQUESTS = 10_000
#: etcd 3.4 registers the gateway under both prefixes.
_PREFIX_ALIASES = ("/v3beta/",)

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


#: Go's http.StatusText for the statuses above, as a stream error spells them.
_STATUS_TEXT = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def http_status(code: grpc.StatusCode) -> int:
    return _HTTP_STATUS.get(code, 500)


def canonical_path(path: str) -> str:
    """``/v3beta/kv/range`` -> ``/v3/kv/range``: the alias prefixes map onto ``/v3/``."""
    for alias in _PREFIX_ALIASES:
        if path.startswith(alias):
            return "/v3/" + path[len(alias) :]
    return path


@dataclass(frozen=True, slots=True)
class GatewayReply:
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class GatewayStream:
    """A streaming answer: its HTTP status (known once the first message or error came),
    the chunks to send (each one whole JSON line), and how to end the call early."""

    status: int
    chunks: AsyncIterator[bytes]
    cancel: Callable[[], None]


@dataclass(frozen=True, slots=True)
class _Method:
    path: str  # the gRPC method path, /etcdserverpb.KV/Range
    request: Any  # message classes
    response: Any
    client_streaming: bool = False


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _error(code: grpc.StatusCode, text: str) -> GatewayReply:
    body = {"error": text, "message": text, "code": code.value[0]}
    return GatewayReply(http_status(code), _compact(body))


def _stream_error(code: grpc.StatusCode, text: str) -> bytes:
    """grpc-gateway v1's streamChunk for an error (no line delimiter follows it)."""
    status = http_status(code)
    error = {
        "grpc_code": code.value[0],
        "http_code": status,
        "message": text,
        "http_status": _STATUS_TEXT.get(status, "Unknown"),
    }
    return _compact({"error": error})


def _result_line(message: Any) -> bytes:
    result = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return _compact({"result": result}) + b"\n"


def _parse_messages(text: str, message_class: Any, limit: int) -> list[Any]:
    """The JSON messages written one after another in ``text`` (grpc-gateway reads a
    streaming body with a JSON decoder: whitespace between messages, none needed)."""
    decoder = json.JSONDecoder()
    messages: list[Any] = []
    position = 0
    while len(messages) < limit:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            break
        value, position = decoder.raw_decode(text, position)
        message = message_class()
        json_format.ParseDict(value, message, ignore_unknown_fields=True)
        messages.append(message)
    return messages


class _NotReady(Exception):
    pass


_NOT_READY_TEXT = "kvorum: the member is not serving clients yet"


async def _chunks_of(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def _relay(call: Any, first: Any) -> AsyncIterator[bytes]:
    """The stream's messages as result lines; an error ends it with an error chunk."""
    yield _result_line(first)
    while True:
        try:
            message = await call.read()
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                yield _stream_error(exc.code(), exc.details() or "")
            return
        if message is grpc.aio.EOF:
            return
        yield _result_line(message)


class Gateway:
    """Translate ``/v3/...`` JSON requests into calls on the member's gRPC listener."""

    def __init__(self, grpc_target: str | None) -> None:
        from kvorum.api.pb.etcdserverpb import rpc_pb2  # noqa: F401  (fills the pool)

        self._target = grpc_target
        self._channel: grpc.aio.Channel | None = None
        pool = descriptor_pool.Default()
        self._methods: dict[str, _Method] = {}
        self._streams: dict[str, _Method] = {}
        for table, routes in ((self._methods, ROUTES), (self._streams, STREAM_ROUTES)):
            for http_path, (service, name) in routes.items():
                method = pool.FindServiceByName(service).methods_by_name[name]
                table[http_path] = _Method(
                    f"/{service}/{name}",
                    message_factory.GetMessageClass(method.input_type),
                    message_factory.GetMessageClass(method.output_type),
                    method.client_streaming,
                )

    def serves(self, path: str) -> bool:
        path = canonical_path(path)
        return path in self._methods or path in self._streams

    def streams(self, path: str) -> bool:
        return canonical_path(path) in self._streams

    def connect(self, grpc_target: str) -> None:
        """Dial ``grpc_target`` from now on (the member's internal gRPC listener, known only
        once the gRPC server is bound)."""
        self._target = grpc_target

    def _get_channel(self) -> grpc.aio.Channel:
        if self._target is None:
            # Not serving yet: the same answer as a client port that is not bound yet.
            raise _NotReady
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
        method = self._methods.get(canonical_path(path))
        if method is None:
            return _error(grpc.StatusCode.UNIMPLEMENTED, f"{path} streams; use open_stream")
        request = method.request()
        try:
            text = body.decode() if body.strip() else "{}"
            json_format.Parse(text, request, ignore_unknown_fields=True)
        except (json_format.ParseError, UnicodeDecodeError) as exc:
            return _error(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            channel = self._get_channel()
        except _NotReady:
            return _error(grpc.StatusCode.UNAVAILABLE, _NOT_READY_TEXT)
        rpc = channel.unary_unary(
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

    async def open_stream(
        self, path: str, body: bytes, token: str | None = None
    ) -> GatewayReply | GatewayStream:
        """Start the streaming call at ``path`` with the JSON messages in ``body``; a reply
        for a call that could not start (a body that is not JSON: grpc-gateway answers 500,
        code 2), else the stream, its status known from the first message or error."""
        method = self._streams[canonical_path(path)]
        try:
            text = body.decode() if body.strip() else "{}"
            limit = MAX_STREAM_REQUESTS if method.client_streaming else 1
            requests = _parse_messages(text, method.request, limit)
        except (ValueError, json_format.ParseError) as exc:  # JSONDecodeError is a ValueError
            return _error(grpc.StatusCode.UNKNOWN, str(exc))
        try:
            channel = self._get_channel()
        except _NotReady:
            return _error(grpc.StatusCode.UNAVAILABLE, _NOT_READY_TEXT)
        metadata = (("token", token),) if token else None
        call: Any
        if method.client_streaming:
            rpc = channel.stream_stream(
                method.path,
                request_serializer=method.request.SerializeToString,
                response_deserializer=method.response.FromString,
            )
            # A finite iterator: once it is drained the sending side is closed, as
            # grpc-gateway's CloseSend at the body's end. A watch stays open after it.
            call = rpc(iter(requests), metadata=metadata)
        else:
            rpc_one = channel.unary_stream(
                method.path,
                request_serializer=method.request.SerializeToString,
                response_deserializer=method.response.FromString,
            )
            call = rpc_one(requests[0] if requests else method.request(), metadata=metadata)
        try:
            first = await call.read()
        except grpc.aio.AioRpcError as exc:
            error_chunk = _stream_error(exc.code(), exc.details() or "")
            return GatewayStream(http_status(exc.code()), _chunks_of([error_chunk]), call.cancel)
        if first is grpc.aio.EOF:
            return GatewayStream(200, _chunks_of([]), call.cancel)
        return GatewayStream(200, _relay(call, first), call.cancel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
