"""The client-facing `grpc.aio` server, and the servicers of every etcd service on it.

Sizes as etcd sets them: a request may be up to `--max-request-bytes` plus 512 KiB of gRPC
overhead (larger ones are refused by gRPC itself, before any servicer sees them; the servicers
apply etcd's own `max_request_bytes` check to what they propose), and responses may be as
large as gRPC allows (math.MaxInt32). Streams per connection and keepalive follow the flags.
Watch is served when the caller passes the member's `WatchService`, Lease when it passes a
`LeaseMember`, and Lock and Election (built on KV, Lease and Watch, as etcd builds them) when
it passes both. The caller binds the listeners (`add_insecure_port` / `add_secure_port`) and
starts the server. Auth is served when the caller passes an `AuthMember`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from kvorum.api.auth import AuthInterceptor, AuthServicer
from kvorum.api.cluster import ClusterServicer
from kvorum.api.election import ElectionServicer
from kvorum.api.kv import KVServicer
from kvorum.api.lease import LeaseServicer
from kvorum.api.lock import LocalClient, LockServicer
from kvorum.api.maintenance import MaintenanceServicer
from kvorum.api.member import AuthMember, LeaseMember, Member
from kvorum.api.pb.etcdserverpb import rpc_pb2_grpc
from kvorum.api.pb.v3electionpb import v3election_pb2_grpc
from kvorum.api.pb.v3lockpb import v3lock_pb2_grpc
from kvorum.api.validate import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS, Limits
from kvorum.api.watch import WatchService, WatchServicer
from kvorum.config import ServerConfig

__all__ = [
    "GRPC_OVERHEAD_BYTES",
    "MAX_SEND_BYTES",
    "GrpcOptions",
    "add_servicers",
    "build_server",
    "channel_options",
]

#: etcd's allowance for gRPC framing on top of --max-request-bytes.
GRPC_OVERHEAD_BYTES = 512 * 1024
#: math.MaxInt32: etcd lets gRPC send responses of any size it can frame.
MAX_SEND_BYTES = 2**31 - 1
# gRPC core takes 32-bit signed integers for its channel arguments.
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class GrpcOptions:
    """The flags that shape the client gRPC server, with etcd 3.4's defaults."""

    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_txn_ops: int = DEFAULT_MAX_TXN_OPS
    max_concurrent_streams: int = 2**32 - 1
    keepalive_min_time_s: float = 5.0
    keepalive_interval_s: float = 2 * 60 * 60.0
    keepalive_timeout_s: float = 20.0

    @classmethod
    def from_config(cls, config: ServerConfig) -> GrpcOptions:
        return cls(
            max_request_bytes=config.max_request_bytes,
            max_txn_ops=config.max_txn_ops,
            max_concurrent_streams=config.max_concurrent_streams,
            keepalive_min_time_s=config.grpc_keepalive_min_time_s,
            keepalive_interval_s=config.grpc_keepalive_interval_s,
            keepalive_timeout_s=config.grpc_keepalive_timeout_s,
        )

    @property
    def limits(self) -> Limits:
        return Limits(max_txn_ops=self.max_txn_ops, max_request_bytes=self.max_request_bytes)


def channel_options(options: GrpcOptions) -> list[tuple[str, Any]]:
    """The gRPC core arguments for `options` (a list, as `grpc.aio.server` takes them)."""
    return [
        (
            "grpc.max_receive_message_length",
            min(options.max_request_bytes + GRPC_OVERHEAD_BYTES, _INT32_MAX),
        ),
        ("grpc.max_send_message_length", MAX_SEND_BYTES),
        ("grpc.max_concurrent_streams", min(options.max_concurrent_streams, _INT32_MAX)),
        # etcd's enforcement policy: clients may ping every min_time, even without a stream
        # open (etcdctl and clientv3 keep idle connections alive that way).
        (
            "grpc.http2.min_ping_interval_without_data_ms",
            int(options.keepalive_min_time_s * 1000),
        ),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.keepalive_time_ms", min(int(options.keepalive_interval_s * 1000), _INT32_MAX)),
        ("grpc.keepalive_timeout_ms", int(options.keepalive_timeout_s * 1000)),
        # A second server on a taken port must fail to bind (as etcd's does), not silently
        # share the port with the first through SO_REUSEPORT.
        ("grpc.so_reuseport", 0),
    ]


class HandlerWrapper(Protocol):
    """Wraps one method's handler once, when it is registered (the metrics and auth
    interceptors' `wrap`): unlike a grpc.aio interceptor, it costs a call nothing to find."""

    def wrap(self, method: str, handler: Any) -> Any: ...


class _WrappingRegistrar:
    """Stands in for the server while the generated `add_*Servicer_to_server` functions run,
    and registers every method handler wrapped by `wrappers` (the first outermost)."""

    def __init__(self, server: grpc.aio.Server, wrappers: Sequence[HandlerWrapper]) -> None:
        self._server = server
        self._wrappers = tuple(reversed(wrappers))

    def _wrapped(self, method: str, handler: Any) -> Any:
        for wrapper in self._wrappers:
            handler = wrapper.wrap(method, handler)
        return handler

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self._server.add_registered_method_handlers(
            service,
            {name: self._wrapped(f"/{service}/{name}", h) for name, h in handlers.items()},
        )

    def add_generic_rpc_handlers(self, generic_handlers: Sequence[Any]) -> None:
        # The generated code registers each service twice: by method name (above) and as a
        # generic handler, which grpc consults for methods it did not find by name.
        self._server.add_generic_rpc_handlers(
            tuple(_WrappedGenericHandler(g, self._wrapped) for g in generic_handlers)
        )


class _WrappedGenericHandler(grpc.GenericRpcHandler):  # type: ignore[misc]
    """A generic handler whose answers are wrapped, once per method (bounded by the
    number of methods the inner handler serves)."""

    def __init__(self, inner: Any, wrapped: Callable[[str, Any], Any]) -> None:
        self._inner = inner
        self._wrapped_of = wrapped
        self._cache: dict[str, tuple[Any, Any]] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        cached = self._cache.get(method)
        if cached is None or cached[0] is not handler:
            cached = (handler, self._wrapped_of(method, handler))
            self._cache[method] = cached
        return cached[1]


def add_servicers(
    server: grpc.aio.Server,
    member: Member,
    options: GrpcOptions,
    watch: WatchService | None = None,
    lease: LeaseMember | None = None,
    auth: AuthMember | None = None,
) -> None:
    """Register KV, Cluster and Maintenance for `member` on `server`, Watch over `watch`
    and Lease over `lease` when given, Lock and Election when both are, Auth over `auth`."""
    rpc_pb2_grpc.add_KVServicer_to_server(KVServicer(member, options.limits), server)  # type: ignore[no-untyped-call]
    rpc_pb2_grpc.add_ClusterServicer_to_server(ClusterServicer(member), server)  # type: ignore[no-untyped-call]
    rpc_pb2_grpc.add_MaintenanceServicer_to_server(MaintenanceServicer(member), server)  # type: ignore[no-untyped-call]
    if watch is not None:
        rpc_pb2_grpc.add_WatchServicer_to_server(WatchServicer(member, watch), server)  # type: ignore[no-untyped-call]
    if lease is not None:
        rpc_pb2_grpc.add_LeaseServicer_to_server(LeaseServicer(lease), server)  # type: ignore[no-untyped-call]
    if watch is not None and lease is not None:
        local = LocalClient(member, lease, watch, options.limits, auth=auth)
        v3lock_pb2_grpc.add_LockServicer_to_server(LockServicer(local), server)  # type: ignore[no-untyped-call]
        v3election_pb2_grpc.add_ElectionServicer_to_server(ElectionServicer(local), server)  # type: ignore[no-untyped-call]
    if auth is not None:
        rpc_pb2_grpc.add_AuthServicer_to_server(AuthServicer(auth), server)  # type: ignore[no-untyped-call]


def build_server(
    member: Member,
    options: GrpcOptions | None = None,
    *,
    extra_options: Sequence[tuple[str, Any]] = (),
    watch: WatchService | None = None,
    lease: LeaseMember | None = None,
    auth: AuthMember | None = None,
    interceptors: Sequence[Any] = (),
) -> grpc.aio.Server:
    """A `grpc.aio` server (not yet bound or started) serving KV, Cluster, Maintenance, and
    Watch and Lease when `watch` and `lease` are given (Lock and Election with both);
    Auth when `auth` is; `interceptors` wrap every RPC (the metrics interceptor)."""
    opts = options or GrpcOptions()
    # With Auth served, every other call is checked in one place (the auth interceptor).
    checks = [AuthInterceptor(auth)] if auth is not None else []
    # Interceptors that can wrap a handler once at registration do so; a grpc.aio
    # interceptor proper costs every call a chain of coroutines just to find its handler.
    wrappers = [i for i in [*interceptors, *checks] if hasattr(i, "wrap")]
    per_call = [i for i in interceptors if not hasattr(i, "wrap")]
    server = grpc.aio.server(
        options=[*channel_options(opts), *extra_options], interceptors=per_call or None
    )
    registrar: Any = _WrappingRegistrar(server, wrappers) if wrappers else server
    add_servicers(registrar, member, opts, watch, lease, auth)
    return server
