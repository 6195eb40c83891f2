"""A member's Prometheus metrics, under etcd 3.4's names, types, help texts and buckets.

Operators' dashboards and alerts are written against etcd's ``/metrics``; kvorum exposes the
same series where it has the same quantity, so they work unchanged. Names, help texts and
bucket boundaries were copied from a real etcd 3.4.23's ``/metrics`` (not from memory).

Three kinds of series, chosen by what each costs on the hot path:

- **read at scrape time** (`_MemberCollector`): gauges and counters whose value the member
  already keeps -- leader, indexes, db sizes, late heartbeats. Nothing runs per request;
  the scrape reads them on the event loop, where they are consistent.
- **observed as they happen**: the WAL fsync and backend commit histograms (one
  ``observe`` per fsync / per LMDB commit, the fsync from the WAL's worker thread --
  prometheus-client's histograms take a lock, so that is safe).
- **per RPC**: ``grpc_server_started_total`` / ``grpc_server_handled_total`` from a
  ``grpc.aio`` server interceptor (`GrpcMetricsInterceptor`), with etcd's (go-grpc-prometheus)
  labels and every method of every served service pre-set to 0, as etcd does.

Each member owns its own ``CollectorRegistry`` (several members may share a test process),
with prometheus-client's ``process_*`` and ``python_*`` collectors -- the Python twins of
etcd's ``process_*`` and ``go_*``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kvorum.raft import Message, MessageType

if TYPE_CHECKING:
    from kvorum.server.member import KvorumMember
    from kvorum.watch.hub import WatchHub

__all__ = [
    "CONTENT_TYPE",
    "DISK_BUCKETS_S",
    "ETCD_CLUSTER_VERSION",
    "ETCD_CLUSTER_VERSION_FULL",
    "PEER_RTT_BUCKETS_S",
    "SERVED_SERVICES",
    "GrpcMetricsInterceptor",
    "MemberSnapshot",
    "PeerRttTracker",
    "ServerMetrics",
    "member_snapshot",
]

#: What a scrape is answered with (Prometheus text format 0.0.4, as etcd's promhttp).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: etcd's disk histograms: prometheus.ExponentialBuckets(0.001, 2, 14) -> 1 ms .. 8.192 s.
DISK_BUCKETS_S = tuple(0.001 * 2**k for k in range(14))
#: etcd's peer round-trip histogram: ExponentialBuckets(0.0001, 2, 16) -> 0.1 ms .. 3.2768 s.
PEER_RTT_BUCKETS_S = tuple(0.0001 * 2**k for k in range(16))

#: etcd reports the cluster version's major.minor in ``etcd_cluster_version``.
ETCD_CLUSTER_VERSION = "3.4"

#: The services whose methods start at 0 on the page: the etcdserverpb services a kvorum
#: member serves. etcd pre-sets only its etcdserverpb services too (Lock and Election are
#: registered after its metrics), so their series appear with their first call, here as there.
SERVED_SERVICES = (
    "etcdserverpb.KV",
    "etcdserverpb.Watch",
    "etcdserverpb.Lease",
    "etcdserverpb.Cluster",
    "etcdserverpb.Maintenance",
)


#: etcd's counters whose names lack the _total suffix (kept as etcd spells them).
_UNSUFFIXED_COUNTERS = (b"etcd_server_health_success", b"etcd_server_health_failures")

#: The cluster version /version reports: kvorum members all speak etcd 3.4's API.
ETCD_CLUSTER_VERSION_FULL = "3.4.0"


@dataclass(frozen=True, slots=True)
class MemberSnapshot:
    """What the scrape-time series read from the member, taken at one moment."""

    member_id: int
    version: str
    leader_id: int
    is_leader: bool
    is_learner: bool
    committed_index: int
    applied_index: int
    proposals_pending: int
    proposals_failed: int
    heartbeat_send_failures: int
    quota_backend_bytes: int
    db_size_bytes: int
    db_size_in_use_bytes: int
    current_revision: int
    compact_revision: int
    watch_streams: int
    watchers: int
    slow_watchers: int


def member_snapshot(
    member: KvorumMember, quota_backend_bytes: int, watches: WatchHub
) -> MemberSnapshot:
    """Read `member`'s state for a scrape (on the event loop, which owns that state)."""
    from kvorum.server.member import ETCD_VERSION

    raft = member.raft
    me = member.membership.member(member.id)
    return MemberSnapshot(
        member_id=member.id,
        version=ETCD_VERSION,
        leader_id=raft.leader_id,
        is_leader=raft.is_leader,
        is_learner=me.is_learner if me is not None else False,
        committed_index=raft.commit_index,
        applied_index=raft.applied_index,
        # Proposers waiting for their entry to be applied (etcd: proposals in flight).
        proposals_pending=len(raft.wait),
        # Plain counters the raft shell keeps; getattr keeps a scrape working on a shell
        # that does not count them (they read 0 then).
        proposals_failed=int(getattr(raft, "proposals_failed_count", 0)),
        heartbeat_send_failures=int(getattr(raft, "heartbeat_late_count", 0)),
        quota_backend_bytes=quota_backend_bytes,
        db_size_bytes=member.backend.size_bytes(),
        db_size_in_use_bytes=member.backend.size_in_use_bytes(),
        current_revision=member.store.current_revision,
        compact_revision=member.store.compact_revision,
        watch_streams=watches.stream_count(),
        watchers=watches.watcher_count(),
        slow_watchers=watches.slow_watcher_count(),
    )


class _MemberCollector(Collector):
    """The series whose values the member already holds, read when Prometheus scrapes."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        # Nothing to describe ahead of a scrape: the registry then never calls `collect`
        # at registration, before the member exists.
        return ()

    def collect(self) -> Iterable[Metric]:
        m = self._metrics
        snap = m.pinned_snapshot
        if snap is None and m.source is not None:
            snap = m.source()
        yield CounterMetricFamily(
            "etcd_server_leader_changes_seen",
            "The number of leader changes seen.",
            value=m.leader_changes_seen,
        )
        # Counters without the _total suffix in etcd; prometheus-client would add one to a
        # counter, so they are built as gauges and retyped in `exposition`.
        yield _gauge(
            "etcd_server_health_success",
            "The total number of successful health checks",
            m.health_success,
        )
        yield _gauge(
            "etcd_server_health_failures",
            "The total number of failed health checks",
            m.health_failures,
        )
        if snap is None:
            return
        yield _gauge(
            "etcd_server_has_leader",
            "Whether or not a leader exists. 1 is existence, 0 is not.",
            1 if snap.leader_id else 0,
        )
        yield _gauge(
            "etcd_server_is_leader",
            "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            1 if snap.is_leader else 0,
        )
        yield _gauge(
            "etcd_server_is_learner",
            "Whether or not this member is a learner. 1 if is, 0 otherwise.",
            1 if snap.is_learner else 0,
        )
        # etcd types these two as gauges despite the _total suffix: they are raft indexes.
        yield _gauge(
            "etcd_server_proposals_committed_total",
            "The total number of consensus proposals committed.",
            snap.committed_index,
        )
        yield _gauge(
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied.",
            snap.applied_index,
        )
        yield _gauge(
            "etcd_server_proposals_pending",
            "The current number of pending proposals to commit.",
            snap.proposals_pending,
        )
        yield CounterMetricFamily(
            "etcd_server_proposals_failed",
            "The total number of failed proposals seen.",
            value=snap.proposals_failed,
        )
        yield CounterMetricFamily(
            "etcd_server_heartbeat_send_failures",
            "The total number of leader heartbeat send failures (likely overloaded from "
            "slow disk).",
            value=snap.heartbeat_send_failures,
        )
        yield _gauge(
            "etcd_server_quota_backend_bytes",
            "Current backend storage quota size in bytes.",
            snap.quota_backend_bytes,
        )
        yield _labelled_one(
            "etcd_server_id",
            "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
            "server_id",
            f"{snap.member_id:x}",
        )
        yield _labelled_one(
            "etcd_server_version",
            "Which version is running. 1 for 'server_version' label with current version.",
            "server_version",
            snap.version,
        )
        yield _labelled_one(
            "etcd_cluster_version",
            "Which version is running. 1 for 'cluster_version' label with current cluster version",
            "cluster_version",
            ETCD_CLUSTER_VERSION,
        )
        yield _gauge(
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes.",
            snap.db_size_bytes,
        )
        yield _gauge(
            "etcd_debugging_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes.",
            snap.db_size_bytes,
        )
        yield _gauge(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes.",
            snap.db_size_in_use_bytes,
        )
        yield _gauge(
            "etcd_debugging_mvcc_current_revision",
            "The current revision of store.",
            snap.current_revision,
        )
        yield _gauge(
            "etcd_debugging_mvcc_compact_revision",
            "The revision of the last compaction in store.",
            snap.compact_revision,
        )
        yield _gauge(
            "etcd_debugging_mvcc_watch_stream_total",
            "Total number of watch streams.",
            snap.watch_streams,
        )
        yield _gauge(
            "etcd_debugging_mvcc_watcher_total", "Total number of watchers.", snap.watchers
        )
        yield _gauge(
            "etcd_debugging_mvcc_slow_watcher_total",
            "Total number of unsynced slow watchers.",
            snap.slow_watchers,
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _labelled_one(name: str, documentation: str, label: str, value: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    family.add_metric([value], 1)
    return family


class ServerMetrics:
    """One member's registry and the instruments the member's layers report to."""

    def __init__(self) -> None:
        # etcd's Go client exposes no `_created` series; without this every counter and
        # histogram would have a twin (a process-wide switch of prometheus-client).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.wal_fsync_duration = Histogram(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
            buckets=DISK_BUCKETS_S,
            registry=self.registry,
        )
        self.backend_commit_duration = Histogram(
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend.",
            buckets=DISK_BUCKETS_S,
            registry=self.registry,
        )
        self.peer_round_trip_time = Histogram(
            "etcd_network_peer_round_trip_time_seconds",
            "Round-Trip-Time histogram between peers",
            ["To"],
            buckets=PEER_RTT_BUCKETS_S,
            registry=self.registry,
        )
        self.peer_rtt = PeerRttTracker(self.peer_round_trip_time)
        self.grpc_started = Counter(
            "grpc_server_started",
            "Total number of RPCs started on the server.",
            ["grpc_type", "grpc_service", "grpc_method"],
            registry=self.registry,
        )
        self.grpc_handled = Counter(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            ["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
            registry=self.registry,
        )
        # Counted here (not read from raft): a leader listener sees every change.
        self.leader_changes_seen = 0
        self.health_success = 0
        self.health_failures = 0
        #: Where the scrape-time series come from; None until the member is built.
        self.source: Callable[[], MemberSnapshot] | None = None
        #: The member's state for the scrape under way in a thread (taken on the loop).
        self.pinned_snapshot: MemberSnapshot | None = None
        self._scrape_lock = asyncio.Lock()
        self.registry.register(_MemberCollector(self))

    def on_leader_change(self, leader_id: int, term: int) -> None:
        """A raft leader listener: etcd counts a change each time a (new) leader is known."""
        del term
        if leader_id != 0:
            self.leader_changes_seen += 1

    def record_health(self, healthy: bool) -> None:
        if healthy:
            self.health_success += 1
        else:
            self.health_failures += 1

    async def exposition_async(self) -> bytes:
        """``exposition`` for the event loop: the member's state is read here, on the loop
        that owns it (well under a millisecond), and the page is written in a thread, so a
        scrape (about 10-20 ms of Python for some 600 series) never blocks the loop in one
        piece -- the GIL hands the loop its turn every few milliseconds meanwhile."""
        async with self._scrape_lock:
            self.pinned_snapshot = self.source() if self.source is not None else None
            try:
                return await asyncio.to_thread(self.exposition)
            finally:
                self.pinned_snapshot = None

    def exposition(self) -> bytes:
        """Every series in Prometheus text format (what ``GET /metrics`` returns)."""
        text = generate_latest(self.registry)
        for name in _UNSUFFIXED_COUNTERS:
            text = text.replace(b"# TYPE " + name + b" gauge\n", b"# TYPE " + name + b" counter\n")
        return text


# --- peer round trips ---------------------------------------------------------------------


class PeerRttTracker:
    """Round trips to each peer, timed on the leader's raft heartbeats.

    etcd times a dedicated probe over its peer HTTP pipeline; kvorum's peer protocol has no
    probe, so the leader times each heartbeat to the heartbeat response from the same peer:
    the network both ways plus the follower's loop turn -- the delay an election timeout has
    to absorb. One heartbeat per peer is timed at a time; a timing whose response never came
    (a lost heartbeat) is dropped after `stale_s` so it never reads as a huge round trip.
    Only the leader sends heartbeats, so only the leader's series move.
    """

    def __init__(
        self,
        histogram: Histogram,
        clock: Callable[[], float] = time.perf_counter,
        stale_s: float = 1.0,
    ) -> None:
        self._histogram = histogram
        self._clock = clock
        self._stale_s = stale_s
        self._sent_at_s: dict[int, float] = {}
        self._children: dict[int, Any] = {}

    def sent(self, messages: Iterable[Message]) -> None:
        now_s = self._clock()
        for msg in messages:
            if msg.type == MessageType.HEARTBEAT:
                started = self._sent_at_s.get(msg.to)
                if started is None or now_s - started > self._stale_s:
                    self._sent_at_s[msg.to] = now_s

    def received(self, msg: Message) -> None:
        if msg.type != MessageType.HEARTBEAT_RESP:
            return
        started = self._sent_at_s.pop(msg.frm, None)
        if started is None:
            return
        child = self._children.get(msg.frm)
        if child is None:
            child = self._children[msg.frm] = self._histogram.labels(f"{msg.frm:x}")
        child.observe(self._clock() - started)

    def receiving(self, receive: Callable[[Message], None]) -> Callable[[Message], None]:
        """`receive` (the raft node's) with every inbound message shown to the tracker."""

        def observed(msg: Message) -> None:
            self.received(msg)
            receive(msg)

        return observed

    def sending(self, transport: _Transport) -> _Transport:
        """`transport` with every outbound batch shown to the tracker."""
        return _MeasuredTransport(transport, self)


class _Transport(Protocol):
    """The raft node's view of the peer transport (``kvorum.server.raftnode.Transport``)."""

    def send(self, messages: Iterable[Message]) -> None: ...

    def add_peer(self, peer_id: int, urls: Sequence[str]) -> None: ...

    def remove_peer(self, peer_id: int) -> None: ...


class _MeasuredTransport:
    def __init__(self, inner: _Transport, tracker: PeerRttTracker) -> None:
        self._inner = inner
        self._tracker = tracker

    def send(self, messages: Iterable[Message]) -> None:
        batch = messages if isinstance(messages, list | tuple) else list(messages)
        self._tracker.sent(batch)
        self._inner.send(batch)

    def add_peer(self, peer_id: int, urls: Sequence[str]) -> None:
        self._inner.add_peer(peer_id, urls)

    def remove_peer(self, peer_id: int) -> None:
        self._inner.remove_peer(peer_id)


# --- gRPC ---------------------------------------------------------------------------------

#: Wrapped handlers kept (one per method; etcd's services have about 50 methods).
MAX_WRAPPED_METHODS = 1024

#: go-grpc-prometheus's grpc_code values: the names of Go's codes.Code, in Go's spelling.
_GO_CODE_NAMES: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}


def _grpc_type(client_streaming: bool, server_streaming: bool) -> str:
    if client_streaming and server_streaming:
        return "bidi_stream"
    if client_streaming:
        return "client_stream"
    if server_streaming:
        return "server_stream"
    return "unary"


class _MethodCounters:
    """The counter children of one method, resolved once (label lookups cost per call)."""

    __slots__ = ("handled", "started")

    def __init__(self, metrics: ServerMetrics, kind: str, service: str, method: str) -> None:
        self.started = metrics.grpc_started.labels(kind, service, method)
        self.handled = {
            code: metrics.grpc_handled.labels(kind, service, method, name)
            for code, name in _GO_CODE_NAMES.items()
        }

    def finish(
        self, context: grpc.aio.ServicerContext[Any, Any], exc: BaseException | None
    ) -> None:
        code = context.code()
        if code is None:
            if exc is None:
                code = grpc.StatusCode.OK
            elif isinstance(exc, asyncio.CancelledError | GeneratorExit):
                # The client went away (a cancelled call, a closed stream).
                code = grpc.StatusCode.CANCELLED
            else:
                code = grpc.StatusCode.UNKNOWN
        child = self.handled.get(code)
        if child is not None:
            child.inc()


class GrpcMetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Counts every RPC's start and end, labelled as etcd's go-grpc-prometheus labels them.

    Cost per RPC: one cached dict lookup to find the wrapped handler, two counter
    increments. The wrapped handler is built once per method and reused.
    """

    def __init__(self, metrics: ServerMetrics, services: Sequence[str] = SERVED_SERVICES) -> None:
        self._metrics = metrics
        self._methods: dict[str, _MethodCounters] = {}
        # method path -> (the handler the server gave, its wrapped twin); bounded by the
        # number of methods served
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}
        self._preregister(services)

    def _preregister(self, services: Sequence[str]) -> None:
        """Every method of every served service at 0, as etcd's registry starts out."""
        from google.protobuf import descriptor_pool

        # Importing the generated module adds its services to the default pool.
        from kvorum.api.pb.etcdserverpb import rpc_pb2  # noqa: F401

        pool = descriptor_pool.Default()
        for full_name in services:
            try:
                descriptor = pool.FindServiceByName(full_name)
            except KeyError:
                continue
            for method in descriptor.methods:
                kind = _grpc_type(method.client_streaming, method.server_streaming)
                self._counters(f"/{full_name}/{method.name}", kind)

    def _counters(self, path: str, kind: str) -> _MethodCounters:
        counters = self._methods.get(path)
        if counters is None:
            service, _, method = path.lstrip("/").rpartition("/")
            counters = _MethodCounters(self._metrics, kind, service, method)
            self._methods[path] = counters
        return counters

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        return self.wrap(handler_call_details.method, await continuation(handler_call_details))

    def wrap(self, path: str, handler: Any) -> Any:
        """`handler` of method `path`, counted. `build_server` calls this once per method when
        the services are registered, so that a call pays for two counter increments only, not
        for grpc.aio's interceptor machinery (a chain of coroutines per call)."""
        if handler is None:
            return handler
        cached = self._wrapped.get(path)
        if cached is not None and cached[0] is handler:
            return cached[1]
        kind = _grpc_type(handler.request_streaming, handler.response_streaming)
        wrapped = _wrap_handler(handler, self._counters(path, kind))
        if len(self._wrapped) < MAX_WRAPPED_METHODS or path in self._wrapped:
            self._wrapped[path] = (handler, wrapped)
        return wrapped


def _wrap_handler(handler: Any, counters: _MethodCounters) -> Any:
    for attr in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
        behavior = getattr(handler, attr)
        if behavior is None:
            continue
        if inspect.isasyncgenfunction(behavior):
            return handler._replace(**{attr: _wrap_generator(behavior, counters)})
        if inspect.iscoroutinefunction(behavior):
            return handler._replace(**{attr: _wrap_coroutine(behavior, counters)})
    return handler  # a synchronous behaviour: not served by kvorum, left uncounted


def _wrap_coroutine(
    behavior: Callable[[Any, Any], Awaitable[Any]], counters: _MethodCounters
) -> Callable[[Any, Any], Awaitable[Any]]:
    async def counted(request: Any, context: Any) -> Any:
        counters.started.inc()
        try:
            response = await behavior(request, context)
        except BaseException as exc:
            counters.finish(context, exc)
            raise
        counters.finish(context, None)
        return response

    return counted


def _wrap_generator(
    behavior: Callable[[Any, Any], AsyncIterator[Any]], counters: _MethodCounters
) -> Callable[[Any, Any], AsyncIterator[Any]]:
    async def counted(request: Any, context: Any) -> AsyncIterator[Any]:
        counters.started.inc()
        try:
            async for response in behavior(request, context):
                yield response
        except BaseException as exc:
            counters.finish(context, exc)
            raise
        counters.finish(context, None)

    return counted
