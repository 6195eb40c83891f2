"""The member's metrics: etcd's spelling on the page, the gRPC interceptor's counts over a
real in-process grpc.aio server, and the heartbeat round-trip tracker."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.raft import Message, MessageType
from kvorum.server.metrics import (
    DISK_BUCKETS_S,
    PEER_RTT_BUCKETS_S,
    GrpcMetricsInterceptor,
    MemberSnapshot,
    ServerMetrics,
)


def sample(text: str, name: str, labels: str = "") -> float | None:
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def snapshot(**changes: Any) -> MemberSnapshot:
    base: dict[str, Any] = {
        "member_id": 0x8E9E05C52164694D,
        "version": "3.4.23",
        "leader_id": 0x8E9E05C52164694D,
        "is_leader": True,
        "is_learner": False,
        "committed_index": 12,
        "applied_index": 11,
        "proposals_pending": 2,
        "proposals_failed": 1,
        "heartbeat_send_failures": 3,
        "quota_backend_bytes": 2 * 1024**3,
        "db_size_bytes": 45056,
        "db_size_in_use_bytes": 28672,
        "current_revision": 7,
        "compact_revision": -1,
        "watch_streams": 2,
        "watchers": 5,
        "slow_watchers": 1,
    }
    base.update(changes)
    return MemberSnapshot(**base)


def test_buckets_are_etcds() -> None:
    assert DISK_BUCKETS_S[0] == 0.001 and len(DISK_BUCKETS_S) == 14
    assert DISK_BUCKETS_S[-1] == pytest.approx(8.192)
    assert PEER_RTT_BUCKETS_S[0] == 0.0001 and len(PEER_RTT_BUCKETS_S) == 16
    assert PEER_RTT_BUCKETS_S[-1] == pytest.approx(3.2768)


def test_scrape_reads_the_member_and_spells_series_as_etcd() -> None:
    metrics = ServerMetrics()
    metrics.source = lambda: snapshot()
    metrics.on_leader_change(5, 2)
    metrics.on_leader_change(0, 3)  # leader lost: not a change etcd counts
    metrics.on_leader_change(6, 4)
    metrics.record_health(True)
    metrics.record_health(False)
    metrics.record_health(False)
    metrics.wal_fsync_duration.observe(0.0015)
    text = metrics.exposition().decode()

    assert sample(text, "etcd_server_has_leader") == 1
    assert sample(text, "etcd_server_is_leader") == 1
    assert sample(text, "etcd_server_leader_changes_seen_total") == 2
    assert sample(text, "etcd_server_proposals_committed_total") == 12
    assert sample(text, "etcd_server_proposals_applied_total") == 11
    assert sample(text, "etcd_server_proposals_pending") == 2
    assert sample(text, "etcd_server_proposals_failed_total") == 1
    assert sample(text, "etcd_server_heartbeat_send_failures_total") == 3
    assert sample(text, "etcd_server_id", '{server_id="8e9e05c52164694d"}') == 1
    assert sample(text, "etcd_server_version", '{server_version="3.4.23"}') == 1
    assert sample(text, "etcd_mvcc_db_total_size_in_use_in_bytes") == 28672
    assert sample(text, "etcd_debugging_mvcc_watch_stream_total") == 2
    assert sample(text, "etcd_debugging_mvcc_watcher_total") == 5
    assert sample(text, "etcd_debugging_mvcc_slow_watcher_total") == 1
    # etcd's two health counters have no _total, yet are counters.
    assert sample(text, "etcd_server_health_success") == 1
    assert sample(text, "etcd_server_health_failures") == 2
    assert "# TYPE etcd_server_health_failures counter" in text
    # etcd types the proposal indexes as gauges, _total notwithstanding.
    assert "# TYPE etcd_server_proposals_committed_total gauge" in text
    assert sample(text, "etcd_disk_wal_fsync_duration_seconds_bucket", '{le="0.001"}') == 0
    assert sample(text, "etcd_disk_wal_fsync_duration_seconds_bucket", '{le="0.002"}') == 1
    assert "_created" not in text
    assert sample(text, "process_open_fds") is not None


def test_without_a_member_the_page_still_serves() -> None:
    text = ServerMetrics().exposition().decode()
    assert sample(text, "etcd_server_has_leader") is None
    assert sample(text, "etcd_server_leader_changes_seen_total") == 0


def test_no_leader_reads_zero() -> None:
    metrics = ServerMetrics()
    metrics.source = lambda: snapshot(leader_id=0, is_leader=False)
    text = metrics.exposition().decode()
    assert sample(text, "etcd_server_has_leader") == 0
    assert sample(text, "etcd_server_is_leader") == 0


def test_heartbeat_round_trips_per_peer() -> None:
    metrics = ServerMetrics()
    now = [10.0]
    tracker = type(metrics.peer_rtt)(metrics.peer_round_trip_time, clock=lambda: now[0])
    tracker.sent(
        [Message(MessageType.APP, to=2, frm=1), Message(MessageType.HEARTBEAT, to=2, frm=1)]
    )
    now[0] += 0.003
    tracker.sent([Message(MessageType.HEARTBEAT, to=2, frm=1)])  # one timed at a time
    now[0] += 0.002
    tracker.received(Message(MessageType.APP_RESP, to=1, frm=2))  # ignored
    tracker.received(Message(MessageType.HEARTBEAT_RESP, to=1, frm=2))
    tracker.received(Message(MessageType.HEARTBEAT_RESP, to=1, frm=2))  # nothing outstanding
    # A heartbeat whose answer never came is dropped after a second, not measured.
    tracker.sent([Message(MessageType.HEARTBEAT, to=3, frm=1)])
    now[0] += 5.0
    tracker.sent([Message(MessageType.HEARTBEAT, to=3, frm=1)])
    now[0] += 0.001
    tracker.received(Message(MessageType.HEARTBEAT_RESP, to=1, frm=3))
    text = metrics.exposition().decode()
    name = "etcd_network_peer_round_trip_time_seconds"
    assert sample(text, f"{name}_count", '{To="2"}') == 1
    assert sample(text, f"{name}_sum", '{To="2"}') == pytest.approx(0.005)
    assert sample(text, f"{name}_count", '{To="3"}') == 1
    assert sample(text, f"{name}_sum", '{To="3"}') == pytest.approx(0.001)


class _KV(rpc_pb2_grpc.KVServicer):  # type: ignore[misc]
    async def Put(self, request: Any, context: Any) -> Any:
        return rpc_pb2.PutResponse()

    async def Range(self, request: Any, context: Any) -> Any:
        await context.abort(
            grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision"
        )

    async def DeleteRange(self, request: Any, context: Any) -> Any:
        raise RuntimeError("a bug")


class _Lease(rpc_pb2_grpc.LeaseServicer):  # type: ignore[misc]
    async def LeaseKeepAlive(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        async for request in request_iterator:
            yield rpc_pb2.LeaseKeepAliveResponse(ID=request.ID, TTL=5)


async def _drive(metrics: ServerMetrics) -> None:
    server = grpc.aio.server(interceptors=[GrpcMetricsInterceptor(metrics)])
    rpc_pb2_grpc.add_KVServicer_to_server(_KV(), server)  # type: ignore[no-untyped-call]
    rpc_pb2_grpc.add_LeaseServicer_to_server(_Lease(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            kv = rpc_pb2_grpc.KVStub(channel)  # type: ignore[no-untyped-call]
            for _ in range(3):
                await kv.Put(rpc_pb2.PutRequest(key=b"a"), timeout=5)
            for call, code in ((kv.Range, "OUT_OF_RANGE"), (kv.DeleteRange, "UNKNOWN")):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call(
                        rpc_pb2.RangeRequest(key=b"a")
                        if call is kv.Range
                        else rpc_pb2.DeleteRangeRequest(key=b"a"),
                        timeout=5,
                    )
                assert err.value.code().name == code
            lease = rpc_pb2_grpc.LeaseStub(channel)  # type: ignore[no-untyped-call]
            stream = lease.LeaseKeepAlive(timeout=5)
            for i in range(2):
                await stream.write(rpc_pb2.LeaseKeepAliveRequest(ID=i + 1))
                assert (await stream.read()).TTL == 5
            await stream.done_writing()
            assert await stream.read() == grpc.aio.EOF
    finally:
        await server.stop(None)


def test_grpc_counters_by_method_and_code() -> None:
    metrics = ServerMetrics()
    asyncio.run(_drive(metrics))
    text = metrics.exposition().decode()

    def handled(method: str, service: str, kind: str, code: str) -> float | None:
        labels = (
            f'{{grpc_code="{code}",grpc_method="{method}",'
            f'grpc_service="etcdserverpb.{service}",grpc_type="{kind}"}}'
        )
        return sample(text, "grpc_server_handled_total", labels)

    def started(method: str, service: str, kind: str) -> float | None:
        labels = (
            f'{{grpc_method="{method}",grpc_service="etcdserverpb.{service}",grpc_type="{kind}"}}'
        )
        return sample(text, "grpc_server_started_total", labels)

    assert started("Put", "KV", "unary") == 3
    assert handled("Put", "KV", "unary", "OK") == 3
    assert handled("Range", "KV", "unary", "OutOfRange") == 1
    assert handled("Range", "KV", "unary", "OK") == 0
    assert handled("DeleteRange", "KV", "unary", "Unknown") == 1
    assert started("LeaseKeepAlive", "Lease", "bidi_stream") == 1
    assert handled("LeaseKeepAlive", "Lease", "bidi_stream", "OK") == 1
    # Methods never called are on the page at 0, every code, as etcd pre-sets them.
    assert started("Watch", "Watch", "bidi_stream") == 0
    assert handled("Snapshot", "Maintenance", "server_stream", "Unavailable") == 0
    assert handled("MemberAdd", "Cluster", "unary", "DataLoss") == 0
