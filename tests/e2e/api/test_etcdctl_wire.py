"""The real etcdctl 3.4 talks to a gRPC server built on our generated code.

A small in-process server implements KV.Range/Put, Cluster.MemberList and Maintenance.Status
with fixed, test-chosen data. The official ``/usr/bin/etcdctl`` (installed by
``scripts/ensure-debian-packages``) runs against it, and each test checks both directions of
the wire: etcdctl printed exactly what the server returned (so our field numbers and types
decode as etcd's), and the server received exactly the request etcdctl meant to send (so
etcd's encoding decodes as ours).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import Message

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.api.pb.mvccpb import kv_pb2

ETCDCTL = Path("/usr/bin/etcdctl")
ETCDCTL_TIMEOUT_S = 20.0
SERVER_WORKERS = 4

# Test-chosen fixed data. IDs above 2**63 check that uint64 survives both encoders.
CLUSTER_ID = 0x1C2D3E4F5A6B7C8D
MEMBER_ID = 0x8E9E05C52164694D
LEARNER_ID = 0xABCDEF
HEADER = rpc_pb2.ResponseHeader(
    cluster_id=CLUSTER_ID, member_id=MEMBER_ID, revision=42, raft_term=7
)
KV_A = kv_pb2.KeyValue(
    key=b"/kvorum/e2e/a",
    value="wert ü 1".encode(),
    create_revision=3,
    mod_revision=41,
    version=5,
    lease=0x1234,
)
KV_B = kv_pb2.KeyValue(
    key=b"/kvorum/e2e/b", value=b"two", create_revision=9, mod_revision=9, version=1
)
MEMBERS = [
    rpc_pb2.Member(
        ID=MEMBER_ID,
        name="alpha",
        peerURLs=["http://127.0.0.1:2380"],
        clientURLs=["http://127.0.0.1:2379", "http://127.0.0.1:22379"],
    ),
    # Not started yet: no name, no client URLs; and a learner.
    rpc_pb2.Member(ID=LEARNER_ID, peerURLs=["http://127.0.0.2:2380"], isLearner=True),
]
STATUS = rpc_pb2.StatusResponse(
    header=HEADER,
    version="3.4.23",
    dbSize=24576,
    leader=MEMBER_ID,
    raftIndex=1234,
    raftTerm=7,
    raftAppliedIndex=1233,
    errors=["memberID:10276657743932975437 alarm:NOSPACE"],
    dbSizeInUse=16384,
)
# etcd 3.4 answers a read below the compaction point with this status (seen from a real etcd).
COMPACTED_REVISION = 2
COMPACTED_MESSAGE = "etcdserver: mvcc: required revision has been compacted"


@dataclass
class Recorder:
    """Requests the servicers received, in arrival order (servicers run on pool threads)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: list[tuple[str, Message]] = field(default_factory=list)

    def add(self, method: str, request: Message) -> None:
        with self.lock:
            self.calls.append((method, request))

    def take(self) -> list[tuple[str, Message]]:
        with self.lock:
            calls, self.calls = self.calls, []
        return calls


class FixedKV(rpc_pb2_grpc.KVServicer):  # type: ignore[misc]
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def Range(self, request: rpc_pb2.RangeRequest, context: grpc.ServicerContext) -> Message:
        self.recorder.add("Range", request)
        if request.revision == COMPACTED_REVISION:
            context.abort(grpc.StatusCode.OUT_OF_RANGE, COMPACTED_MESSAGE)
        kvs = [KV_A, KV_B] if request.range_end else [KV_A]
        return rpc_pb2.RangeResponse(header=HEADER, kvs=kvs, count=len(kvs))

    def Put(self, request: rpc_pb2.PutRequest, context: grpc.ServicerContext) -> Message:
        self.recorder.add("Put", request)
        return rpc_pb2.PutResponse(header=HEADER)


class FixedCluster(rpc_pb2_grpc.ClusterServicer):  # type: ignore[misc]
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def MemberList(
        self, request: rpc_pb2.MemberListRequest, context: grpc.ServicerContext
    ) -> Message:
        self.recorder.add("MemberList", request)
        return rpc_pb2.MemberListResponse(header=HEADER, members=MEMBERS)


class FixedMaintenance(rpc_pb2_grpc.MaintenanceServicer):  # type: ignore[misc]
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def Status(self, request: rpc_pb2.StatusRequest, context: grpc.ServicerContext) -> Message:
        self.recorder.add("Status", request)
        return STATUS


@dataclass(frozen=True, slots=True)
class Endpoint:
    port: int
    recorder: Recorder

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    if not ETCDCTL.exists():
        pytest.skip(f"{ETCDCTL} not installed (run scripts/ensure-debian-packages)")
    recorder = Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=SERVER_WORKERS))
    rpc_pb2_grpc.add_KVServicer_to_server(FixedKV(recorder), server)
    rpc_pb2_grpc.add_ClusterServicer_to_server(FixedCluster(recorder), server)
    rpc_pb2_grpc.add_MaintenanceServicer_to_server(FixedMaintenance(recorder), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield Endpoint(port, recorder)
    finally:
        server.stop(grace=None).wait()


def run_etcdctl(ep: Endpoint, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run the real etcdctl against the endpoint, with no ETCDCTL_* settings leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    cmd = [str(ETCDCTL), f"--endpoints={ep.address}", "--dial-timeout=3s", *args]
    return subprocess.run(cmd, env=env, capture_output=True, timeout=ETCDCTL_TIMEOUT_S, check=False)


def etcdctl(ep: Endpoint, *args: str) -> str:
    """Run etcdctl and return its stdout; fail on a non-zero exit."""
    proc = run_etcdctl(ep, *args)
    assert proc.returncode == 0, f"etcdctl {args} exited {proc.returncode}: {proc.stderr!r}"
    return proc.stdout.decode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


HEADER_JSON = {"cluster_id": CLUSTER_ID, "member_id": MEMBER_ID, "revision": 42, "raft_term": 7}


def test_put_sends_key_and_value(endpoint: Endpoint) -> None:
    endpoint.recorder.take()
    out = etcdctl(endpoint, "put", "/kvorum/e2e/a", "wert ü 1")
    assert out == "OK\n"
    # Whole-message equality: etcdctl set key and value and nothing else.
    assert endpoint.recorder.take() == [
        ("Put", rpc_pb2.PutRequest(key=b"/kvorum/e2e/a", value="wert ü 1".encode()))
    ]


def test_get_prints_returned_kv(endpoint: Endpoint) -> None:
    endpoint.recorder.take()
    out = etcdctl(endpoint, "get", "/kvorum/e2e/a")
    assert out == "/kvorum/e2e/a\nwert ü 1\n"
    assert endpoint.recorder.take() == [("Range", rpc_pb2.RangeRequest(key=b"/kvorum/e2e/a"))]


def test_get_prefix_sends_range_end(endpoint: Endpoint) -> None:
    endpoint.recorder.take()
    out = etcdctl(endpoint, "get", "--prefix", "/kvorum/e2e/")
    assert out == "/kvorum/e2e/a\nwert ü 1\n/kvorum/e2e/b\ntwo\n"
    # The prefix's range end is the prefix with its last byte incremented: '/' + 1 == '0'.
    assert endpoint.recorder.take() == [
        ("Range", rpc_pb2.RangeRequest(key=b"/kvorum/e2e/", range_end=b"/kvorum/e2e0"))
    ]


def test_get_options_reach_the_server(endpoint: Endpoint) -> None:
    endpoint.recorder.take()
    etcdctl(
        endpoint,
        "get",
        "/kvorum/e2e/a",
        "/kvorum/e2e/z",
        "--rev=40",
        "--limit=1",
        "--order=DESCEND",
        "--sort-by=MODIFY",
        "--consistency=s",
        "--keys-only",
    )
    expected = rpc_pb2.RangeRequest(
        key=b"/kvorum/e2e/a",
        range_end=b"/kvorum/e2e/z",
        revision=40,
        limit=1,
        sort_order=rpc_pb2.RangeRequest.DESCEND,
        sort_target=rpc_pb2.RangeRequest.MOD,
        serializable=True,
        keys_only=True,
    )
    assert endpoint.recorder.take() == [("Range", expected)]


def test_get_json_prints_every_field(endpoint: Endpoint) -> None:
    out = etcdctl(endpoint, "get", "/kvorum/e2e/a", "-w", "json")
    # etcdctl marshals the Go struct: snake_case names, zero values omitted, bytes as base64,
    # 64-bit integers as JSON numbers (json.loads keeps them exact).
    assert json.loads(out) == {
        "header": HEADER_JSON,
        "kvs": [
            {
                "key": b64(KV_A.key),
                "create_revision": 3,
                "mod_revision": 41,
                "version": 5,
                "value": b64(KV_A.value),
                "lease": 0x1234,
            }
        ],
        "count": 1,
    }


def test_member_list_simple_and_json(endpoint: Endpoint) -> None:
    endpoint.recorder.take()
    out = etcdctl(endpoint, "member", "list")
    assert out == (
        "8e9e05c52164694d, started, alpha, http://127.0.0.1:2380, "
        "http://127.0.0.1:2379,http://127.0.0.1:22379, false\n"
        "abcdef, unstarted, , http://127.0.0.2:2380, , true\n"
    )
    assert endpoint.recorder.take() == [("MemberList", rpc_pb2.MemberListRequest())]
    assert json.loads(etcdctl(endpoint, "member", "list", "-w", "json")) == {
        "header": HEADER_JSON,
        "members": [
            {
                "ID": MEMBER_ID,
                "name": "alpha",
                "peerURLs": ["http://127.0.0.1:2380"],
                "clientURLs": ["http://127.0.0.1:2379", "http://127.0.0.1:22379"],
            },
            {"ID": LEARNER_ID, "peerURLs": ["http://127.0.0.2:2380"], "isLearner": True},
        ],
    }


def test_endpoint_status_simple_and_json(endpoint: Endpoint) -> None:
    endpoint.recorder.take()
    out = etcdctl(endpoint, "endpoint", "status")
    # endpoint, member ID (hex), version, db size (SI units), is leader, is learner,
    # raft term, raft index, raft applied index, errors
    assert out == (
        f"{endpoint.address}, 8e9e05c52164694d, 3.4.23, 25 kB, true, false, 7, 1234, 1233, "
        "memberID:10276657743932975437 alarm:NOSPACE\n"
    )
    assert endpoint.recorder.take() == [("Status", rpc_pb2.StatusRequest())]
    assert json.loads(etcdctl(endpoint, "endpoint", "status", "-w", "json")) == [
        {
            "Endpoint": endpoint.address,
            "Status": {
                "header": HEADER_JSON,
                "version": "3.4.23",
                "dbSize": 24576,
                "leader": MEMBER_ID,
                "raftIndex": 1234,
                "raftTerm": 7,
                "raftAppliedIndex": 1233,
                "errors": ["memberID:10276657743932975437 alarm:NOSPACE"],
                "dbSizeInUse": 16384,
            },
        }
    ]


def test_error_status_reaches_etcdctl(endpoint: Endpoint) -> None:
    """etcdctl shows the gRPC status message verbatim: etcd's error texts are part of the API."""
    endpoint.recorder.take()
    proc = run_etcdctl(endpoint, "get", "/kvorum/e2e/a", f"--rev={COMPACTED_REVISION}")
    assert proc.returncode == 1
    assert proc.stdout == b""
    assert proc.stderr.decode().splitlines()[-1] == f"Error: {COMPACTED_MESSAGE}"
    # OUT_OF_RANGE is not retried by etcdctl's client: exactly one request arrived.
    assert endpoint.recorder.take() == [
        ("Range", rpc_pb2.RangeRequest(key=b"/kvorum/e2e/a", revision=COMPACTED_REVISION))
    ]
