"""The member's HTTP endpoints on ``--listen-metrics-urls``, against real processes.

- during puts the fsync and commit histograms and the gRPC counters move;
- the metric names the issue lists are on kvorum's page with the type, help text and bucket
  boundaries a real etcd 3.4 gives them, and ``/version`` has etcd's shape;
- ``/health`` turns unhealthy on the survivor when two of three members die (quorum lost) and
  healthy again once they are back -- on the metrics URL and on the client URL, where etcd
  serves it beside gRPC; ``/readyz``, ``/livez`` and ``?serializable=true`` say which read
  still works.
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.server.metrics import SERVED_SERVICES
from kvorum.testing import ETCD, Cluster, binary_for
from tests.e2e.obs.helpers import (
    MetricsCluster,
    Reply,
    http_get,
    normalise_bound,
    parse_exposition,
    wait_for,
)

PUTS = 40
RPC_TIMEOUT_S = 10.0
# A lost quorum shows once the survivor's check-quorum steps it down or its read times out
# (1 s); a loaded CI machine gets generous room.
UNHEALTHY_WITHIN_S = 20.0
HEALTHY_AGAIN_WITHIN_S = 30.0

#: The series the issue names, which etcd 3.4 exposes on a 1-member cluster too.
ETCD_NAMES = (
    "etcd_server_has_leader",
    "etcd_server_is_leader",
    "etcd_server_leader_changes_seen_total",
    "etcd_server_proposals_committed_total",
    "etcd_server_proposals_applied_total",
    "etcd_server_proposals_pending",
    "etcd_server_proposals_failed_total",
    "etcd_server_heartbeat_send_failures_total",
    "etcd_server_health_success",
    "etcd_server_health_failures",
    "etcd_server_quota_backend_bytes",
    "etcd_server_id",
    "etcd_server_version",
    "etcd_cluster_version",
    "etcd_disk_wal_fsync_duration_seconds",
    "etcd_disk_backend_commit_duration_seconds",
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_mvcc_db_total_size_in_use_in_bytes",
    "etcd_debugging_mvcc_current_revision",
    "etcd_debugging_mvcc_compact_revision",
    "etcd_debugging_mvcc_watch_stream_total",
    "etcd_debugging_mvcc_watcher_total",
    "etcd_debugging_mvcc_slow_watcher_total",
    "grpc_server_started_total",
    "grpc_server_handled_total",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_virtual_memory_bytes",
)


def _kvorum() -> list[str]:
    command = binary_for("kvorum")
    if not Path(command[0]).exists():
        pytest.skip(f"{command[0]} is not installed")
    return command


def _put(cluster: Cluster, index: int, key: bytes) -> None:
    cluster.member(index).kv_stub().Put(
        rpc_pb2.PutRequest(key=key, value=b"v"), timeout=RPC_TIMEOUT_S
    )


def test_metrics_move_during_puts(tmp_path: Path) -> None:
    with MetricsCluster(_kvorum(), 1, base_dir=tmp_path) as c:
        url = c.metrics_url(0) + "/metrics"
        before = parse_exposition(http_get(url).body)
        for i in range(PUTS):
            _put(c, 0, f"k{i}".encode())
        try:
            c.member(0).kv_stub().Range(
                rpc_pb2.RangeRequest(key=b"k", revision=10**9), timeout=RPC_TIMEOUT_S
            )
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.OUT_OF_RANGE

        commit = "etcd_disk_backend_commit_duration_seconds_count"

        def scrape() -> Reply:
            return http_get(url)

        # The backend commits its batch on a 100 ms interval: wait for one after the puts.
        reply = wait_for(
            "a backend commit after the puts",
            scrape,
            lambda r: parse_exposition(r.body).value(commit) > before.value(commit),
            10.0,
        )
        assert reply.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        after = parse_exposition(reply.body)

    fsync = "etcd_disk_wal_fsync_duration_seconds_count"
    assert after.value(fsync) >= before.value(fsync) + 1
    assert after.value("etcd_disk_wal_fsync_duration_seconds_sum") > 0
    assert after.value(commit) > before.value(commit)
    put_ok = {"grpc_method": "Put", "grpc_code": "OK", "grpc_type": "unary"}
    assert after.total("grpc_server_handled_total", **put_ok) == PUTS
    assert after.total("grpc_server_started_total", grpc_method="Put") == PUTS
    out_of_range = {"grpc_method": "Range", "grpc_code": "OutOfRange"}
    ranges = {k: v for k, v in after.samples.items() if 'grpc_method="Range"' in k and v}
    assert after.total("grpc_server_handled_total", **out_of_range) == 1, ranges
    committed = "etcd_server_proposals_committed_total"
    assert after.value(committed) >= before.value(committed) + PUTS
    assert after.value("etcd_server_proposals_applied_total") == after.value(committed)
    assert after.value("etcd_server_has_leader") == 1
    assert after.value("etcd_server_is_leader") == 1
    assert after.value("etcd_server_leader_changes_seen_total") == 1
    assert after.value("etcd_debugging_mvcc_current_revision") == 1 + PUTS
    assert after.value("etcd_mvcc_db_total_size_in_bytes") > 0


def test_names_types_and_version_match_etcd(tmp_path: Path) -> None:
    if not Path(ETCD).exists():
        pytest.skip(f"{ETCD} is not installed")
    # etcd serves /metrics and /version on its client URL too; kvorum on its metrics URL.
    with Cluster(ETCD, 1, base_dir=tmp_path / "etcd") as e:
        _put(e, 0, b"a")
        etcd = parse_exposition(http_get(e.endpoints[0] + "/metrics").body)
        etcd_version = json.loads(http_get(e.endpoints[0] + "/version").body)
    with MetricsCluster(_kvorum(), 1, base_dir=tmp_path / "kvorum") as k:
        _put(k, 0, b"a")
        ours = parse_exposition(http_get(k.metrics_url(0) + "/metrics").body)
        version_reply = http_get(k.metrics_url(0) + "/version")
        status = k.status(0)

    for name in ETCD_NAMES:
        assert name in etcd.types, f"{name} is not on etcd's page: the list is wrong"
        assert ours.types.get(name) == etcd.types[name], name
        assert ours.helps.get(name) == etcd.helps[name], name
    for histogram in (
        "etcd_disk_wal_fsync_duration_seconds",
        "etcd_disk_backend_commit_duration_seconds",
    ):
        theirs = [normalise_bound(b) for b in etcd.buckets(histogram)]
        assert [normalise_bound(b) for b in ours.buckets(histogram)] == theirs
    # Every gRPC series etcd pre-sets for the services both serve, kvorum pre-sets as well
    # (kvorum serves neither Auth yet nor grpc.health.v1).
    served = [f'grpc_service="{s}"' for s in SERVED_SERVICES]
    for key in etcd.samples:
        if key.startswith("grpc_server_handled_total{") and any(s in key for s in served):
            assert key in ours.samples, key

    version = json.loads(version_reply.body)
    assert version_reply.status == 200
    assert sorted(version) == sorted(etcd_version) == ["etcdcluster", "etcdserver"]
    assert version["etcdserver"] == status.version == etcd_version["etcdserver"]
    assert version["etcdcluster"] == etcd_version["etcdcluster"] == "3.4.0"


def test_health_follows_quorum(tmp_path: Path) -> None:
    with MetricsCluster(_kvorum(), 3, base_dir=tmp_path) as c:
        for i in range(3):
            for url in (c.metrics_url(i), c.endpoints[i]):
                reply = http_get(url + "/health")
                assert (reply.status, reply.body) == (200, '{"health":"true"}'), url
        leader = c.leader_index()
        assert leader is not None
        # The leader times heartbeats to its followers: the round-trip histogram moves.
        metrics = parse_exposition(http_get(c.metrics_url(leader) + "/metrics").body)
        assert metrics.total("etcd_network_peer_round_trip_time_seconds_count") > 0
        assert ("etcd_network_peer_round_trip_time_seconds", "histogram") in metrics.types.items()

        survivor = (leader + 1) % 3
        for i in range(3):
            if i != survivor:
                c.kill(i)
        base = c.metrics_url(survivor)
        down = wait_for(
            "/health unhealthy after quorum loss",
            lambda: http_get(base + "/health"),
            lambda r: r.status == 503,
            UNHEALTHY_WITHIN_S,
        )
        assert down.body == '{"health":"false"}\n'
        client_down = http_get(c.endpoints[survivor] + "/health")
        assert (client_down.status, client_down.body) == (503, '{"health":"false"}\n')
        ready = http_get(base + "/readyz?verbose")
        assert ready.status == 503
        assert "[-]linearizable_read failed:" in ready.body
        assert "[+]serializable_read ok" in ready.body
        assert ready.body.endswith("readyz check failed\n")
        # A local read still works: liveness holds, and so does the 3.5-style serializable
        # health check (no leader needed).
        assert http_get(base + "/livez").body == "ok\n"
        serializable = http_get(base + "/health?serializable=true")
        assert (serializable.status, serializable.body) == (200, '{"health":"true"}')
        failures = parse_exposition(http_get(base + "/metrics").body)
        assert failures.value("etcd_server_health_failures") >= 2
        assert failures.value("etcd_server_has_leader") == 0
        # The client URL serves the same page (one registry per member).
        on_client_port = parse_exposition(http_get(c.endpoints[survivor] + "/metrics").body)
        assert on_client_port.value("etcd_server_has_leader") == 0
        assert on_client_port.types == failures.types

        for i in range(3):
            if i != survivor:
                c.restart(i, wait=False)
        for i in range(3):
            wait_for(
                f"/health of member {i} healthy again",
                lambda i=i: http_get(c.metrics_url(i) + "/health"),
                lambda r: r.status == 200 and r.body == '{"health":"true"}',
                HEALTHY_AGAIN_WITHIN_S,
            )
            # The restarted members serve their client URL once published.
            wait_for(
                f"/health of member {i} on its client URL",
                lambda i=i: http_get(c.endpoints[i] + "/health"),
                lambda r: r.status == 200 and r.body == '{"health":"true"}',
                HEALTHY_AGAIN_WITHIN_S,
            )
        assert http_get(base + "/readyz").body == "ok\n"
